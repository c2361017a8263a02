#!/usr/bin/env python3
"""Netværk on one machine. Usage:

    python3 dev.py run                          NATS, an SMTP sink and the three services, kept running until Ctrl-C
    python3 dev.py test [pytest args...]        the tests (pyproject's testpaths): two pytest processes at once, one
                                                for tests/ (+ a few service folders, by measured time) with a
                                                nats-server of its own, one for the rest (NATS_URL if set); both
                                                get the pytest args, stream their output prefixed "a|" / "b|" (kept
                                                in var/log/test-a.log, test-b.log), then their short summaries and
                                                one combined line; non-zero if either fails or collects nothing.
                                                Test paths, node ids, -k, -m, --lf, --pdb ... or
                                                NETVAERK_TEST_SERIAL=1: one pytest process, as given
    python3 dev.py lint                         ruff check, ruff format --check and mypy over the tree (CI runs it)
    python3 dev.py lock [uv pip compile args...]
                                                refresh requirements/*.lock from requirements/*.in and the pyproject
                                                files (exact versions with hashes, from PyPI, with uv); keeps the
                                                pins it can, `--upgrade` or `--upgrade-package NAME` moves them
    python3 dev.py mail [--wait N] [--timeout S]
                                                the mail the SMTP sink received (var/mail); --wait N waits until there
                                                are at least N messages (default timeout 30 s), non-zero on timeout

`run` starts its own nats-server (store var/nats) unless NATS_URL is set; when 4222, 8222 or the sink's 1025 are
taken it uses free ports and says which. A child that exits is restarted with backoff; the others keep serving.
NETVAERK_VAR moves var/ elsewhere and NETVAERK_PORT_BASE (default 8000) the service ports (base+1 .. base+3), so a
second checkout can run beside the first.

Standard library only until it has made .venv and re-executed itself with it (then it may use netvaerk_shared);
`mail` needs no .venv. .venv gets exactly requirements/dev.lock (pip --require-hashes), then the local packages
editable with --no-deps; it is installed again whenever a lock file, a pyproject file or dev.py changed.
"""

import contextlib
import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from datetime import UTC
from pathlib import Path

if sys.version_info < (3, 11):
    sys.exit(
        "dev.py needs Python 3.11 or newer; this is %s. Run it with e.g. python3.11 dev.py ..." % sys.version.split()[0]
    )

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
VENV_PY = VENV / "bin" / "python"
STAMP = VENV / ".netvaerk-install-stamp"
REQUIREMENTS = ROOT / "requirements"
DEV_LOCK, RUNTIME_LOCK = REQUIREMENTS / "dev.lock", REQUIREMENTS / "runtime.lock"
UV_VERSION = "0.13.8"  # what `dev.py lock` resolves with (fetched into .venv on first use)
LOCK_PYTHON = "3.11"  # the oldest Python the locks are for (the images run 3.11)
VAR = Path(os.environ.get("NETVAERK_VAR") or ROOT / "var").resolve()
try:
    PORT_BASE = int(os.environ.get("NETVAERK_PORT_BASE") or 8000)
except ValueError:
    sys.exit(f"dev: NETVAERK_PORT_BASE must be a number, not {os.environ['NETVAERK_PORT_BASE']!r}")
SERVICES = {"members": PORT_BASE + 1, "meetings": PORT_BASE + 2, "notifications": PORT_BASE + 3}
GATEWAY_PORT = PORT_BASE  # the web gateway: the members' pages and /api/
HOST = "127.0.0.1"
SINK_PORT, NATS_PORT, NATS_MONITOR_PORT = 1025, 4222, 8222  # preferred; free ones when these are taken
READY_TIMEOUT = 30.0
START_ATTEMPTS = 3  # during the initial start: a child that exits this often before it is ready aborts the run
BACKOFF_MIN, BACKOFF_MAX, STABLE_AFTER = 0.5, 10.0, 30.0  # restart delay doubles; resets once a child stayed up
TAIL_LINES = 30
DEMO_GROUPS = [
    {
        "name": f"Offentlig digitalisering {side}",
        "slug": f"offentlig-digitalisering-{slug}",
        "region": region,
        "description": f"Netværk for it- og digitaliseringsfolk i kommuner, regioner og staten {side} for Storebælt. "
        "Vi deler erfaringer med SKI-aftaler, udbud, databeskyttelse og fælles offentlige løsninger.",
        "topics": ["digitalisering", "SKI", "databeskyttelse"],
    }
    for side, slug, region in (("øst", "oest", "Øst"), ("vest", "vest", "Vest"))
]


class Abort(Exception):
    """Something the developer must fix; the message says what."""


def say(message, err=False):
    print(f"dev: {message}", file=sys.stderr if err else sys.stdout, flush=True)


def show(path):
    """A path as the developer should read it: relative to the checkout when inside it."""
    try:
        return str(Path(path).relative_to(ROOT))
    except ValueError:
        return str(path)


# ---------------------------------------------------------------------------------------------------------- bootstrap


LOCAL_PACKAGES = ["shared", "shared/testing", *(f"services/{svc}" for svc in SERVICES), "services/gateway"]


def install_hash():
    digest = hashlib.sha256()
    files = [
        *(ROOT / path / "pyproject.toml" for path in LOCAL_PACKAGES),
        DEV_LOCK,
        RUNTIME_LOCK,
        ROOT / "dev.py",
    ]
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def make_venv():
    if not VENV_PY.exists():
        say("creating .venv")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)


def bootstrap(command, args):
    """Make .venv and install the lock and the local packages when they changed, then re-run inside .venv."""
    os.environ.setdefault("NETVAERK_DEV_T0", str(time.time()))  # "ready in" counts from here, installs included
    make_venv()
    wanted = install_hash()
    if not STAMP.exists() or STAMP.read_text().strip() != wanted:
        say(f"installing {show(DEV_LOCK)} and the local packages into .venv (pip)")
        pip = [str(VENV_PY), "-m", "pip"]
        editables = [arg for path in LOCAL_PACKAGES for arg in ("-e", f"./{path}")]
        steps = [
            # every third-party package, exactly as locked: a file whose hash is not in the lock is refused
            pip + ["install", "--require-hashes", "-r", show(DEV_LOCK)],
            # the local packages, editable; their dependencies came from the lock, their build backend too
            pip + ["install", "-q", "--no-deps", "--no-build-isolation", *editables],
        ]
        for cmd in steps:
            if subprocess.run(cmd, cwd=ROOT).returncode != 0:
                sys.exit(f"dev: failed: {' '.join(cmd)}")
        if subprocess.run(pip + ["check"], cwd=ROOT).returncode != 0:
            sys.exit(f"dev: a pyproject file asks for what {show(DEV_LOCK)} lacks: run `python3 dev.py lock`")
        STAMP.write_text(wanted + "\n")
    os.execv(str(VENV_PY), [str(VENV_PY), str(ROOT / "dev.py"), "_" + command, *args])


def lock(args):
    """requirements/dev.lock, then runtime.lock within its versions, with uv (pinned, fetched into .venv)."""
    import tomllib

    make_venv()
    uv = VENV / "bin" / "uv"
    version = subprocess.run([str(uv), "--version"], capture_output=True, text=True).stdout if uv.exists() else ""
    if version.split()[1:2] != [UV_VERSION]:
        say(f"fetching uv {UV_VERSION} into .venv")
        cmd = [str(VENV_PY), "-m", "pip", "install", "-q", f"uv=={UV_VERSION}"]
        if subprocess.run(cmd, cwd=ROOT).returncode != 0:
            sys.exit(f"dev: failed: {' '.join(cmd)}")
    local = [tomllib.loads((ROOT / path / "pyproject.toml").read_text())["project"]["name"] for path in LOCAL_PACKAGES]
    compile_ = [
        str(uv),
        "pip",
        "compile",
        "--universal",  # one lock for every platform (Linux x86_64 and aarch64 among them), markers where they differ
        "--python-version",
        LOCK_PYTHON,
        "--generate-hashes",
        "--quiet",
        "--custom-compile-command",
        "python3 dev.py lock",
        *(arg for name in local for arg in ("--no-emit-package", name)),  # installed from the tree, --no-deps
        *args,
    ]
    for cmd in (
        compile_ + [show(REQUIREMENTS / "dev.in"), "-o", show(DEV_LOCK)],
        compile_ + [show(REQUIREMENTS / "runtime.in"), "--constraint", show(DEV_LOCK), "-o", show(RUNTIME_LOCK)],
    ):
        if subprocess.run(cmd, cwd=ROOT).returncode != 0:
            return 1
    say(f"{show(DEV_LOCK)} and {show(RUNTIME_LOCK)} written; the next dev.py run/test/lint installs them")
    return 0


# ------------------------------------------------------------------------------------------------------------ helpers


def http_status(url, timeout=1.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError, ValueError):
        return None


def http_json(method, url, token, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        raise RuntimeError(f"{method} {url} -> {error.code}: {error.read()[:300].decode(errors='replace')}") from None


def port_taken(port, host=HOST):
    """Something accepts connections on the port (what "is it up yet?" asks)."""
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


def port_free(port, host=HOST):
    """We could listen on the port (SO_REUSEADDR, as the servers do: a closed port's TIME_WAIT does not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def without_credentials(url):
    return ",".join(
        part.split("://", 1)[0] + "://" + part.split("://", 1)[1].rsplit("@", 1)[-1]
        if "://" in part
        else part.rsplit("@", 1)[-1]
        for part in url.split(",")
    )


def api_token():
    return secret_file("API_TOKEN", "api-token")


def secret_file(variable, name):
    """(the secret, where it came from): the environment variable, else var/<name>, made once (mode 600)."""
    if os.environ.get(variable):
        return os.environ[variable], f"env {variable}"
    path = VAR / name
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as token_file:
            token_file.write(secrets.token_urlsafe(32) + "\n")
    os.chmod(path, 0o600)
    return path.read_text().strip(), show(path)


def file_tail(path, lines=TAIL_LINES):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:]) or "(empty log)"
    except OSError:
        return "(no log)"


# ----------------------------------------------------------------------------------------------------------- children


class Child:
    """A process dev.py keeps running: how to start it, how to tell it is ready, its output and its restart backoff.

    `launch(child)` starts the process and returns its Popen; `probe()` says whether it serves yet.
    """

    def __init__(self, name, launch, probe, what, log_file):
        self.name, self.launch, self.probe, self.what, self.log_file = name, launch, probe, what, log_file
        self.proc, self.pump, self.tail = None, None, deque(maxlen=TAIL_LINES)
        self.ready, self.started_at, self.restart_at = False, 0.0, None
        self.delay, self.failed_starts, self.restarted = BACKOFF_MIN, 0, False

    def start(self):
        self.ready, self.restart_at = False, None
        self.proc = self.launch(self)
        self.started_at = time.monotonic()

    def last_lines(self):
        if self.pump is None:  # its output goes straight to its log file (nats-server)
            return file_tail(self.log_file)
        self.pump.join(2)
        return "\n".join(self.tail) or "(no output)"


def pump(child, proc, lock):
    """Copy a child's output to the terminal (prefixed with its name) and to its log file."""
    with open(child.log_file, "ab") as log:
        for raw in iter(proc.stdout.readline, b""):
            log.write(raw)
            log.flush()
            line = raw.decode(errors="replace").rstrip("\r\n")
            child.tail.append(line)
            with lock:
                print(f"{child.name:<13}| {line}", flush=True)


def spawn(child, cmd, env, lock, preexec):
    with open(child.log_file, "ab") as log:
        log.write(f"--- dev.py run {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n".encode())
    # own session: Ctrl-C reaches only dev.py, which stops the children in order
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=preexec,
    )
    child.pump = threading.Thread(target=pump, args=(child, proc, lock), daemon=True)
    child.pump.start()
    return proc


def tick(children, starting):
    """One round of supervision: note who became ready, restart (with backoff) who exited or is due.

    While `starting`, a child that exits START_ATTEMPTS times before it was ever ready aborts the run.
    """
    now = time.monotonic()
    for child in children:
        if child.proc is None:
            if child.restart_at is not None and now >= child.restart_at:
                try:
                    child.start()
                except (OSError, RuntimeError) as error:  # RuntimeError: infra.start_nats gave up
                    child.proc = None
                    schedule_restart(child, now, f"could not be started ({str(error).splitlines()[0]})", starting)
            continue
        code = child.proc.poll()
        if code is None:
            if not child.ready and child.probe():
                child.ready, child.failed_starts = True, 0
                if child.restarted:
                    child.restarted = False
                    say(f"{child.name} is back (ready)")
            continue
        if now - child.started_at >= STABLE_AFTER:
            child.delay = BACKOFF_MIN
        was_ready, child.proc = child.ready, None
        if child.pump is not None:
            child.pump.join(1)  # its last words reach the terminal before ours
        schedule_restart(
            child,
            now,
            f"exited (code {code})"
            if was_ready or not starting
            else f"exited before it was {child.what} (code {code})",
            starting,
        )


def schedule_restart(child, now, what, starting):
    if not child.ready:
        child.failed_starts += 1
    if starting and child.failed_starts >= START_ATTEMPTS:
        raise Abort(
            f"{child.name} {what}, {child.failed_starts} times. "
            f"Last lines of {show(child.log_file)}:\n{child.last_lines()}"
        )
    child.ready, child.restarted, child.restart_at = False, True, now + child.delay
    say(f"{child.name} {what}; restarting in {child.delay:g} s", err=True)
    child.delay = min(child.delay * 2, BACKOFF_MAX)


def bring_up(children, everyone, timeout=READY_TIMEOUT):
    """Start `children` together and wait until each is ready, restarting any that die (a few times) and keeping
    `everyone` (them included) supervised meanwhile."""
    for child in children:
        child.start()
    deadline = time.monotonic() + timeout
    while True:
        tick(everyone, starting=True)
        if all(child.ready for child in children):
            return
        if time.monotonic() > deadline:
            late = next(child for child in children if not child.ready)
            raise Abort(
                f"{late.name} was not {late.what} within {timeout:.0f} s. "
                f"Last lines of {show(late.log_file)}:\n{late.last_lines()}"
            )
        time.sleep(0.1)


def stop_all(services, others, stop_process):
    """Services first (SIGTERM, 10 s, then kill), then the others in order (the sink, then NATS if we started it)."""
    for child in services:
        if child.proc is not None and child.proc.poll() is None:
            child.proc.terminate()  # all at once: they share the 10 s
    deadline = time.monotonic() + 10
    for child in services:
        if child.proc is not None:
            stop_process(child.proc, timeout=max(0.0, deadline - time.monotonic()))
    for child in others:
        if child.proc is not None:
            stop_process(child.proc)
    for child in [*services, *others]:
        if child.pump is not None:
            child.pump.join(1)


# ---------------------------------------------------------------------------------------------------------- commands


def seed(token):
    """The two demo groups, unless they exist already. Tolerant: the run goes on without them."""
    base = f"http://{HOST}:{SERVICES['members']}"
    try:
        listing = http_json("GET", f"{base}/groups", token)
        if isinstance(listing, dict):
            listing = next((listing[k] for k in ("items", "groups", "data") if isinstance(listing.get(k), list)), [])
        slugs = {group.get("slug") for group in listing or [] if isinstance(group, dict)}
        created = []
        for group in DEMO_GROUPS:
            if group["slug"] not in slugs:
                http_json("POST", f"{base}/groups", token, group)
                created.append(group["slug"])
        say(f"demo groups created: {', '.join(created)}" if created else "demo groups already there")
    except Exception as error:
        say(f"seeding demo data failed, running on without it: {error}", err=True)


DEMO_PEOPLE = [
    {
        "name": "Mette Eksempel",
        "email": "mette.eksempel@example.org",
        "job_title": "Digitaliseringskonsulent",
        "organisation": {"name": "Eksempel Kommune", "kind": "public_authority", "cvr": None},
        "locale": "da",
        "consents": ["meeting_invitations", "reminders", "show_email"],
        "role": "member",
    },
    {
        "name": "Lars Prøvesen",
        "email": "lars.proevesen@example.org",
        "job_title": "Netværkskoordinator",
        "organisation": {"name": "Eksempel IT A/S", "kind": "supplier", "cvr": None},
        "locale": "da",
        "consents": ["meeting_invitations", "reminders", "show_email"],
        "role": "coordinator",
    },
]


def seed_people(token, gateway_env):
    """The demo member and the demo coordinator (of the first demo group; also the gateway's administrator), unless
    they exist already; returns the lines the banner shows. Tolerant like seed()."""
    base = f"http://{HOST}:{SERVICES['members']}"
    lines = []
    try:
        groups = http_json("GET", f"{base}/groups", token)
        group = next(g for g in groups if g.get("slug") == DEMO_GROUPS[0]["slug"])
        for person in DEMO_PEOPLE:
            found = http_json("GET", f"{base}/admin/members?q={urllib.parse.quote(person['email'])}", token)
            hit = next((m for m in found.get("items", []) if m.get("email") == person["email"]), None)
            if hit is None:
                body = {k: v for k, v in person.items() if k != "role"}
                hit = http_json("POST", f"{base}/members", token, body)
                member_id = hit["member_id"]
                http_json("POST", f"{base}/groups/{group['group_id']}/members", token, {"member_id": member_id})
                if person["role"] == "coordinator":
                    http_json(
                        "PUT",
                        f"{base}/groups/{group['group_id']}/members/{member_id}/role",
                        token,
                        {"role": "coordinator"},
                    )
            if person["role"] == "coordinator":
                subprocess.run(
                    [sys.executable, "-m", "gateway.entrypoints.cli", "add-admin", person["email"]],
                    env=gateway_env,
                    cwd=ROOT,
                    capture_output=True,
                    timeout=60,
                    check=False,
                )
            lines.append(
                f"  {person['role']:<14} {person['email']}"
                + ("  (also administrator)" if person["role"] == "coordinator" else "")
            )
    except Exception as error:
        say(f"seeding the demo people failed, running on without them: {error}", err=True)
    return lines


def preferred_or_free(port, infra):
    """`port` when we can have it, else a free one; and a note for the banner when it had to be another."""
    if port_free(port):
        return port, ""
    return infra.free_port(HOST), f"{port} was taken"


def nats_child(infra):
    """Our own nats-server, store var/nats (it survives runs). Restarts keep its ports: the services know them."""
    port, port_note = preferred_or_free(NATS_PORT, infra)
    monitor_port, monitor_note = preferred_or_free(NATS_MONITOR_PORT, infra)
    log_file = VAR / "log" / "nats.log"

    def launch(child):
        try:
            server = infra.start_nats(
                VAR / "nats", host=HOST, port=child.port, monitor_port=child.monitor_port, log_file=log_file
            )
        except RuntimeError as error:
            if child.restarted or "address already in use" not in str(error):
                raise
            # a port we found free was taken before the server bound it: pick again, once, on the first start
            child.port, child.monitor_port = infra.free_port(HOST), infra.free_port(HOST)
            child.notes.append("the first ports were taken")
            server = infra.start_nats(
                VAR / "nats", host=HOST, port=child.port, monitor_port=child.monitor_port, log_file=log_file
            )
        return server.process

    child = Child("nats", launch, lambda: True, "healthy", log_file)  # start_nats returns once /healthz says so
    child.port, child.monitor_port = port, monitor_port
    child.notes = [note for note in (port_note, monitor_note) if note]
    return child


def sink_child(env, lock, infra):
    port, note = preferred_or_free(SINK_PORT, infra)
    cmd = [
        sys.executable,
        "-m",
        "netvaerk_testing.smtp_sink",
        "--host",
        HOST,
        "--port",
        str(port),
        "--maildir",
        str(VAR / "mail"),
    ]
    child = Child(
        "smtp-sink",
        lambda c: spawn(c, cmd, env, lock, infra.child_preexec()),
        lambda: port_taken(port),
        f"listening on {HOST}:{port}",
        VAR / "log" / "smtp-sink.log",
    )
    child.port, child.note = port, note
    return child


def service_child(svc, port, env, lock, infra):
    if not port_free(port):
        raise Abort(
            f"port {port} ({svc}) is already in use: another dev.py run? NETVAERK_PORT_BASE moves the service ports."
        )
    env = dict(env, DATABASE_URL=os.environ.get(f"{svc.upper()}_DATABASE_URL") or infra.sqlite_url(VAR / f"{svc}.db"))
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        f"{svc}.entrypoints.http:app",
        "--host",
        HOST,
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
    ]
    url = f"http://{HOST}:{port}/readyz"
    return Child(
        svc,
        lambda c: spawn(c, cmd, env, lock, infra.child_preexec()),
        lambda: http_status(url) == 200,
        f"ready at {url}",
        VAR / "log" / f"{svc}.log",
    )


def run():
    from netvaerk_testing import infra

    started = float(os.environ.pop("NETVAERK_DEV_T0", time.time()))
    for sub in ("nats", "mail", "log"):
        (VAR / sub).mkdir(parents=True, exist_ok=True)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # all end the run like Ctrl-C (even if SIGINT
        signal.signal(sig, signal.default_int_handler)  # came in ignored, as in a background job)
    lock, services, others, code = threading.Lock(), [], [], 0  # others: what stops after the services, in order
    try:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if os.environ.get("NATS_URL"):
            nats_url, nats_note = os.environ["NATS_URL"], "from env NATS_URL"
        else:
            nats = nats_child(infra)
            others.insert(0, nats)
            bring_up([nats], others)
            nats_url = f"nats://{HOST}:{nats.port}"
            nats_note = "; ".join(
                [
                    f"monitor http://{HOST}:{nats.monitor_port}",
                    "started by dev.py",
                    f"store {show(VAR / 'nats')}",
                    f"log {show(nats.log_file)}",
                    *nats.notes,
                ]
            )
        if os.environ.get("SMTP_HOST"):
            smtp = (os.environ["SMTP_HOST"], os.environ.get("SMTP_PORT", "1025"))
            mail_note = f"SMTP {smtp[0]}:{smtp[1]} (from env SMTP_HOST)"
        else:
            sink = sink_child(env, lock, infra)
            others.insert(0, sink)
            bring_up([sink], others)
            smtp = (HOST, str(sink.port))
            mail_note = (
                f"SMTP sink {HOST}:{sink.port} -> Maildir {show(VAR / 'mail')}   "
                f"(list it: python3 dev.py mail{'; ' + sink.note if sink.note else ''})"
            )
        token, token_note = api_token()
        gateway_key, _ = secret_file("GATEWAY_TOKEN_KEY", "gateway-token-key")

        env.update(NATS_URL=nats_url, API_TOKEN=token, GATEWAY_TOKEN_KEY=gateway_key, ENVIRONMENT="development")
        mail_env = dict(
            env, SMTP_HOST=smtp[0], SMTP_PORT=smtp[1], MAIL_FROM=env.get("MAIL_FROM", "netvaerk@example.org")
        )
        for svc, port in SERVICES.items():
            services.append(service_child(svc, port, mail_env if svc == "notifications" else env, lock, infra))
        gateway_url = f"http://{HOST}:{GATEWAY_PORT}"
        gateway_env = dict(
            env,
            PUBLIC_URL=os.environ.get("PUBLIC_URL") or gateway_url,
            DATABASE_URL=os.environ.get("GATEWAY_DATABASE_URL") or infra.sqlite_url(VAR / "gateway.db"),
            **{f"{svc.upper()}_URL": f"http://{HOST}:{port}" for svc, port in SERVICES.items()},
        )
        services.append(service_child("gateway", GATEWAY_PORT, gateway_env, lock, infra))
        bring_up(services, [*services, *others])
        say(f"all services ready {time.time() - started:.1f} s after the command started")

        seed(token)
        people = seed_people(token, gateway_env)
        lines = [f"  {'web':<14} {gateway_url}   (the members' pages; API docs {gateway_url}/api/docs)"]
        lines += [
            f"  {svc:<14} http://{HOST}:{port}   docs http://{HOST}:{port}/docs" for svc, port in SERVICES.items()
        ]
        if people:
            lines += [f"  {'sign in':<14} at {gateway_url}/login as one of these (then: python3 dev.py mail)"]
            lines += people
        lines += [
            f"  {'NATS':<14} {without_credentials(nats_url)}   ({nats_note})",
            f"  {'mail':<14} {mail_note}",
            f"  {'API token':<14} {token_note}   (header: Authorization: Bearer <token>)",
            f"  {'logs':<14} {show(VAR / 'log')}/<name>.log   databases: *_DATABASE_URL or {show(VAR)}/<service>.db",
        ]
        with lock:
            print("\nNetværk is running:\n" + "\n".join(lines) + "\nCtrl-C stops everything.\n", flush=True)

        children = [*services, *others]
        while True:
            tick(children, starting=False)
            time.sleep(0.2)
    except KeyboardInterrupt:
        say("stopping")
    except (Abort, RuntimeError) as error:  # RuntimeError: infra.start_nats could not start NATS (log tail included)
        say(str(error), err=True)
        code = 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # let the shutdown finish
        stop_all(services, others, infra.stop_process)
        say("stopped" + (" (with errors, see above)" if code else ""))
    return code


# `dev.py test` without test paths runs the testpaths of pyproject.toml as two pytest processes at once (2 cores).
# Shard "a" takes these (balanced by --durations=0 timings) and its own nats-server: the plugin's JetStream stream
# names are fixed and it deletes them before each test, so two processes must not share one NATS. Shard "b" takes
# every other testpath (a new one lands there) and NATS_URL when set. Both share DATABASE_URL (unique database names).
# Measured on 2 cores, both at once: with tests/ alone ~520 s against ~700 s for the rest; these two folders
# (~90 s) moved across make it ~670 s each (add --durations=0: var/log/test-*.log then shows where it goes).
TEST_SHARD_A = ["tests", "services/meetings/tests/integration", "services/notifications/tests/contract"]
# pytest options whose value is the next argument (so that value is not taken for a test path)
PYTEST_VALUE_OPTIONS = {
    *("-k", "-m", "-p", "-c", "-o", "-W", "-r", "--deselect", "--ignore", "--ignore-glob", "--durations"),
    *("--durations-min", "--maxfail", "--tb", "--rootdir", "--basetemp", "--confcutdir", "--junitxml", "--junit-xml"),
    *("--log-level", "--log-file", "--log-cli-level", "--log-file-level", "--log-format", "--log-date-format"),
    *("--import-mode", "--capture", "--color", "--code-highlight", "--show-capture", "--override-ini"),
    *("--config-file", "--inifile", "--pythonwarnings", "--doctest-glob", "--asyncio-mode", "--verbosity"),
    *("--hypothesis-seed", "--hypothesis-profile", "--hypothesis-verbosity", "--lfnf", "--last-failed-no-failures"),
}
# with these, one process as before: they choose the tests (-k, -m, --lf ...), talk to the terminal or only report
PYTEST_SERIAL_OPTIONS = {
    *("-k", "-m", "--lf", "--last-failed", "--ff", "--failed-first", "--sw", "--stepwise", "--sw-skip"),
    *("--stepwise-skip", "--pdb", "--trace", "-h", "--help", "-V", "--version", "--fixtures", "--fixtures-per-test"),
    *("--markers", "--co", "--collect-only", "--setup-plan"),
}


def test(args):
    shards = test_shards(args)
    if shards:
        return test_in_parallel(shards, args)
    proc = subprocess.Popen([sys.executable, "-m", "pytest", *args], cwd=ROOT)
    while proc.poll() is None:
        with contextlib.suppress(KeyboardInterrupt):  # pytest got the same Ctrl-C and finishes its report
            proc.wait()
    code = proc.returncode
    if code == 5:
        say("pytest collected no tests (exit code 5): counted as a failure", err=True)
        return 1
    return code


def test_shards(args):
    """{"a": [pytest args], "b": [...]} for a run of the whole suite; None when `args` name tests (paths, node ids,
    -k, -m, --lf ...) or NETVAERK_TEST_SERIAL=1: then one process, as before."""
    import tomllib

    if os.environ.get("NETVAERK_TEST_SERIAL", "") not in ("", "0"):
        return None
    taking_value = False
    for arg in args:
        if taking_value:
            taking_value = False
            continue
        name = arg.split("=", 1)[0]
        if name in PYTEST_SERIAL_OPTIONS or (arg[:2] in ("-k", "-m") and len(arg) > 2):
            return None
        if arg.startswith("-"):
            taking_value = "=" not in arg and arg in PYTEST_VALUE_OPTIONS
            continue
        return None  # a test path or node id, as pytest reads every other argument
    with open(ROOT / "pyproject.toml", "rb") as file:
        testpaths = tomllib.load(file).get("tool", {}).get("pytest", {}).get("ini_options", {}).get("testpaths", [])

    def inside(path, folder):
        return path == folder or path.startswith(folder.rstrip("/") + "/")

    a = [path for path in TEST_SHARD_A if any(inside(path, top) for top in testpaths) and (ROOT / path).exists()]
    b = [path for path in testpaths if not any(inside(path, moved) for moved in a)]
    if not a or not b:
        return None
    ignores = [f"--ignore={path}" for path in a if any(inside(path, top) for top in b)]  # a folder inside b's
    return {"a": [*a, *args], "b": [*b, *ignores, *args]}


def test_in_parallel(shards, args):
    """Both shards at once, each in its own session (Ctrl-C here is passed on to both: pytest finishes its report;
    a second Ctrl-C again, a third kills them), output streamed with a prefix and kept in var/log/test-<shard>.log;
    then each shard's short summary and one combined line. Non-zero when either shard failed or collected nothing."""
    import re

    from netvaerk_testing import infra

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # all stop the run like Ctrl-C
        signal.signal(sig, signal.default_int_handler)
    (VAR / "log").mkdir(parents=True, exist_ok=True)
    lock, running, started = threading.Lock(), {}, time.monotonic()
    say(
        "two pytest processes at once (NETVAERK_TEST_SERIAL=1 for one): "
        + "; ".join(f"{name}: {' '.join(p for p in cmd if p not in args)}" for name, cmd in shards.items())
    )

    def stream(name, proc, log_path):
        with open(log_path, "wb") as log:
            for raw in iter(proc.stdout.readline, b""):
                log.write(raw)
                log.flush()
                with lock:
                    print(f"{name}| {raw.decode(errors='replace').rstrip()}", flush=True)

    try:
        for name, cmd in shards.items():
            env = dict(os.environ, PYTHONUNBUFFERED="1")
            if name == "a":
                env.pop("NATS_URL", None)  # the plugin starts a nats-server of its own for this shard
            proc = subprocess.Popen(
                [sys.executable, "-m", "pytest", *cmd],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal's Ctrl-C reaches only dev.py, which passes it on once
                preexec_fn=infra.child_preexec(),  # and they do not outlive dev.py
            )
            log_path = VAR / "log" / f"test-{name}.log"
            pump_thread = threading.Thread(target=stream, args=(name, proc, log_path), daemon=True)
            pump_thread.start()
            running[name] = (proc, pump_thread, log_path)
        ended, interrupts = {}, 0
        while len(ended) < len(running):
            try:
                for name, (proc, _, _) in running.items():
                    if name not in ended and proc.poll() is not None:
                        ended[name] = time.monotonic() - started
                time.sleep(0.2)
            except KeyboardInterrupt:
                interrupts += 1
                sig = signal.SIGINT if interrupts < 3 else signal.SIGKILL
                say(f"stopping the tests ({'again' if interrupts == 2 else sig.name})", err=True)
                for proc, _, _ in running.values():
                    if proc.poll() is None:
                        with contextlib.suppress(ProcessLookupError):
                            proc.send_signal(sig)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # let the shutdown finish
        for proc, _, _ in running.values():
            infra.stop_process(proc, timeout=30)  # only after an error here: they have all ended otherwise
    codes, counts, lines = {}, {}, []
    for name, (proc, pump_thread, log_path) in running.items():
        pump_thread.join(5)
        codes[name] = proc.returncode
        text = log_path.read_text(errors="replace").splitlines()
        start = max((i for i, line in enumerate(text) if "short test summary info" in line), default=len(text) - 1)
        last = text[-1].strip(" =") if text else "(no output)"
        for number, what in re.findall(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected)", last):
            what = "errors" if what == "error" else what
            counts[what] = counts.get(what, 0) + int(number)
        lines.append(f"--- shard {name} ({show(log_path)}), exit code {proc.returncode}, {ended.get(name, 0):.0f} s:")
        lines.extend(text[max(start, 0) :])
    print("\n".join(lines), flush=True)
    for name, code in codes.items():
        if code == 5:
            say(f"shard {name}: pytest collected no tests (exit code 5): counted as a failure", err=True)
    summary = ", ".join(f"{number} {what}" for what, number in counts.items()) or "no counts"
    times = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in ended.items())
    failed = [name for name, code in codes.items() if code]
    say(
        f"tests: {summary} in {time.monotonic() - started:.0f} s ({times})"
        + (f"; FAILED: shard {', '.join(failed)}" if failed else "")
    )
    code = next((code for code in codes.values() if code), 0)
    return 1 if code == 5 else code if code >= 0 else 128 - code  # killed by a signal: as a shell says it


# --------------------------------------------------------------------------------------------------------------- mail


def read_mail(maildir):
    """(received, To, Subject, attachment names) of every message in the Maildir's new/ and cur/, oldest first."""
    import email
    import email.policy
    from datetime import datetime

    found = []
    for sub in ("new", "cur"):
        folder = maildir / sub
        for path in sorted(folder.iterdir()) if folder.is_dir() else ():
            try:
                with open(path, "rb") as file:
                    message = email.message_from_binary_file(file, policy=email.policy.default)
                mtime = path.stat().st_mtime
            except FileNotFoundError:  # a reader moved it from new/ to cur/ meanwhile: seen there, or next round
                continue
            when = None
            with contextlib.suppress(TypeError, ValueError, AttributeError):
                when = datetime.fromisoformat(str(message["X-Netvaerk-Received-At"]))  # the sink's stamp (UTC)
            if when is None:
                with contextlib.suppress(TypeError, ValueError, AttributeError):
                    when = message["Date"].datetime
            when = when or datetime.fromtimestamp(mtime, UTC)
            if when.tzinfo is None:
                when = when.astimezone()
            attachments = [
                part.get_filename() or "(unnamed)"
                for part in message.walk()
                if part.get_content_disposition() == "attachment"
            ]
            found.append(
                (when, str(message["To"] or "(no To)"), str(message["Subject"] or "(no subject)"), attachments)
            )
    return sorted(found, key=lambda item: item[0])


def mail(args):
    import argparse

    parser = argparse.ArgumentParser(
        prog="python3 dev.py mail", description=f"List the messages the SMTP sink stored in {show(VAR / 'mail')}."
    )
    parser.add_argument("--wait", type=int, default=0, metavar="N", help="wait until there are at least N messages")
    parser.add_argument(
        "--timeout", type=float, default=30.0, metavar="S", help="how long --wait waits, in seconds (default 30)"
    )
    options = parser.parse_args(args)
    maildir = VAR / "mail"
    deadline = time.monotonic() + options.timeout
    while True:
        messages = read_mail(maildir)
        if len(messages) >= options.wait or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    for when, to, subject, attachments in messages:
        extra = f"   [{', '.join(attachments)}]" if attachments else ""
        print(f"{when.astimezone():%Y-%m-%d %H:%M:%S}  {to}  {subject}{extra}", flush=True)
    if len(messages) < options.wait:
        say(
            f"timed out after {options.timeout:g} s waiting for {options.wait} message(s) in {show(maildir)}: "
            f"{len(messages)} there",
            err=True,
        )
        return 1
    if not messages:
        say(f"no messages in {show(maildir)}")
    return 0


def lint(args):
    """ruff's linter, then its formatter in check mode (`ruff format .` fixes what the second one finds), then mypy
    (its files and settings: [tool.mypy] in pyproject.toml)."""
    ruff = [sys.executable, "-m", "ruff"]
    checked = subprocess.run([*ruff, "check", str(ROOT), *args], cwd=ROOT).returncode
    formatted = subprocess.run([*ruff, "format", "--check", str(ROOT)], cwd=ROOT).returncode
    if formatted:
        say("run `.venv/bin/ruff format .` to format the files above", err=True)
    typed = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT).returncode
    return checked or formatted or typed


def main(argv):
    command, args = (argv[0] if argv else ""), argv[1:]
    if command in ("run", "test", "lint"):
        bootstrap(command, args)
    if command == "_lint":
        return lint(args)
    if command == "_run":
        return run()
    if command == "_test":
        return test(args)
    if command == "lock":
        return lock(args)
    if command == "mail":
        try:
            return mail(args)
        except KeyboardInterrupt:
            return 130
    print(__doc__.strip(), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
