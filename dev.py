#!/usr/bin/env python3
"""Netværk on one machine: `python3 dev.py run` starts NATS, an SMTP sink and the three services;
`python3 dev.py test [pytest args...]` runs the tests.

Standard library only until it has made .venv and re-executed itself with it (then it may use netvaerk_shared).
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
import urllib.request
from collections import deque, namedtuple
from pathlib import Path

if sys.version_info < (3, 11):
    sys.exit("dev.py needs Python 3.11 or newer; this is %s. Run it with e.g. python3.11 dev.py ..."
             % sys.version.split()[0])

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
VENV_PY = VENV / "bin" / "python"
STAMP = VENV / ".netvaerk-install-stamp"
VAR = ROOT / "var"
SERVICES = {"members": 8001, "meetings": 8002, "notifications": 8003}
SINK_HOST, SINK_PORT = "127.0.0.1", 1025
READY_TIMEOUT = 30.0
DEMO_GROUPS = [
    {"name": f"Offentlig digitalisering {side}", "slug": f"offentlig-digitalisering-{slug}", "region": region,
     "description": f"Netværk for it- og digitaliseringsfolk i kommuner, regioner og staten {side} for Storebælt. "
                    "Vi deler erfaringer med SKI-aftaler, udbud, databeskyttelse og fælles offentlige løsninger.",
     "topics": ["digitalisering", "SKI", "databeskyttelse"]}
    for side, slug, region in (("øst", "oest", "Øst"), ("vest", "vest", "Vest"))
]

Child = namedtuple("Child", "name proc tail log_file pump")


class Abort(Exception):
    """Something the developer must fix; the message says what."""


def say(message, err=False):
    print(f"dev: {message}", file=sys.stderr if err else sys.stdout, flush=True)


# ---------------------------------------------------------------------------------------------------------- bootstrap

def install_hash():
    digest = hashlib.sha256()
    files = [ROOT / "shared" / "pyproject.toml", *sorted((ROOT / "services").glob("*/pyproject.toml")), ROOT / "dev.py"]
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def bootstrap(command, args):
    """Make .venv and install the packages when their pyproject files changed, then re-run inside .venv."""
    os.environ.setdefault("NETVAERK_DEV_T0", str(time.time()))  # "ready in" counts from here, installs included
    if not VENV_PY.exists():
        say("creating .venv")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    wanted = install_hash()
    if not STAMP.exists() or STAMP.read_text().strip() != wanted:
        say("installing packages into .venv (pip)")
        pip = [str(VENV_PY), "-m", "pip", "install"]
        editables = ["-e", "./shared[dev]"] + [arg for svc in SERVICES for arg in ("-e", f"./services/{svc}")]
        # one call for all four, so the local netvaerk-shared satisfies the services' dependency on it
        for cmd in (pip + ["-q", "--upgrade", "pip"], pip + editables):
            if subprocess.run(cmd, cwd=ROOT).returncode != 0:
                sys.exit(f"dev: failed: {' '.join(cmd)}")
        STAMP.write_text(wanted + "\n")
    os.execv(str(VENV_PY), [str(VENV_PY), str(ROOT / "dev.py"), "_" + command, *args])


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
    request = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": f"Bearer {token}", "Accept": "application/json", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        raise RuntimeError(f"{method} {url} -> {error.code}: {error.read()[:300].decode(errors='replace')}") from None


def port_taken(port, host="127.0.0.1"):
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


def without_credentials(url):
    return ",".join(part.split("://", 1)[0] + "://" + part.split("://", 1)[1].rsplit("@", 1)[-1]
                    if "://" in part else part.rsplit("@", 1)[-1] for part in url.split(","))


def api_token():
    if os.environ.get("API_TOKEN"):
        return os.environ["API_TOKEN"], "env API_TOKEN"
    path = VAR / "api-token"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as token_file:
            token_file.write(secrets.token_urlsafe(32) + "\n")
    os.chmod(path, 0o600)
    return path.read_text().strip(), str(path.relative_to(ROOT))


# ----------------------------------------------------------------------------------------------------------- children

def pump(name, proc, log_file, tail, lock):
    """Copy a child's output to the terminal (prefixed with its name) and to its log file."""
    with open(log_file, "ab") as log:
        for raw in iter(proc.stdout.readline, b""):
            log.write(raw)
            log.flush()
            line = raw.decode(errors="replace").rstrip("\r\n")
            tail.append(line)
            with lock:
                print(f"{name:<13}| {line}", flush=True)


def spawn(name, cmd, env, lock, preexec):
    log_file = VAR / "log" / f"{name}.log"
    with open(log_file, "ab") as log:
        log.write(f"--- dev.py run {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n".encode())
    # own session: Ctrl-C reaches only dev.py, which stops the children in order
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=preexec)
    tail = deque(maxlen=30)
    thread = threading.Thread(target=pump, args=(name, proc, log_file, tail, lock), daemon=True)
    thread.start()
    return Child(name, proc, tail, log_file, thread)


def died(child, what):
    child.pump.join(2)
    tail = "\n".join(child.tail) or "(no output)"
    return Abort(f"{child.name} {what} (exit code {child.proc.returncode}). "
                 f"Last lines of {child.log_file.relative_to(ROOT)}:\n{tail}")


def wait_until(child, probe, what, deadline):
    """Poll `probe` until it holds; fail with the child's last lines if it dies or `deadline` (monotonic) passes."""
    while True:
        if child.proc.poll() is not None:
            raise died(child, f"exited before it was {what}")
        if probe():
            return
        if time.monotonic() > deadline:
            raise Abort(f"{child.name} was not {what}. "
                        f"Last lines of {child.log_file.relative_to(ROOT)}:\n" + "\n".join(child.tail))
        time.sleep(0.1)


def stop_all(services, sink, nats_server, stop_process):
    """Services first (SIGTERM, 10 s, then kill), then the sink, then NATS if we started it."""
    for child in services:
        if child.proc.poll() is None:
            child.proc.terminate()  # all at once: they share the 10 s
    deadline = time.monotonic() + 10
    for child in services:
        stop_process(child.proc, timeout=max(0.0, deadline - time.monotonic()))
    if sink:
        stop_process(sink.proc)
    if nats_server:
        nats_server.stop()
    for child in [*services, *([sink] if sink else [])]:
        child.pump.join(1)


# ---------------------------------------------------------------------------------------------------------- commands

def seed(token):
    """The two demo groups, unless they exist already. Tolerant: the run goes on without them."""
    base = f"http://127.0.0.1:{SERVICES['members']}"
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


def pick_nats(infra):
    """env NATS_URL, else a server already answering on 4222, else our own (its store in var/nats survives runs)."""
    if os.environ.get("NATS_URL"):
        return os.environ["NATS_URL"], None, "from env NATS_URL"
    if infra.nats_answers("nats://127.0.0.1:4222"):
        return "nats://127.0.0.1:4222", None, "already running, not managed by dev.py"
    server = infra.start_nats(VAR / "nats", port=4222, monitor_port=8222, log_file=VAR / "log" / "nats.log")
    return server.url, server, "started by dev.py, store var/nats, log var/log/nats.log"


def start_sink(env, lock, infra):
    if port_taken(SINK_PORT):
        raise Abort(f"port {SINK_PORT} (SMTP sink) is already in use: another dev.py run? Or set SMTP_HOST.")
    cmd = [sys.executable, "-m", "netvaerk_shared.testing.smtp_sink", "--host", SINK_HOST, "--port", str(SINK_PORT),
           "--maildir", str(VAR / "mail")]
    sink = spawn("smtp-sink", cmd, env, lock, infra.child_preexec())
    wait_until(sink, lambda: port_taken(SINK_PORT), f"listening on {SINK_HOST}:{SINK_PORT} within 10 s",
               time.monotonic() + 10)
    return sink


def start_service(svc, port, env, lock, infra):
    if port_taken(port):
        raise Abort(f"port {port} ({svc}) is already in use: another dev.py run?")
    env = dict(env, DATABASE_URL=os.environ.get(f"{svc.upper()}_DATABASE_URL") or infra.sqlite_url(VAR / f"{svc}.db"))
    cmd = [sys.executable, "-m", "uvicorn", f"{svc}.entrypoints.http:app", "--host", "127.0.0.1", "--port", str(port),
           "--no-access-log"]
    return spawn(svc, cmd, env, lock, infra.child_preexec())


def run():
    from netvaerk_shared.testing import infra

    started = float(os.environ.pop("NETVAERK_DEV_T0", time.time()))
    for sub in ("nats", "mail", "log"):
        (VAR / sub).mkdir(parents=True, exist_ok=True)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # all end the run like Ctrl-C (even if SIGINT
        signal.signal(sig, signal.default_int_handler)            # came in ignored, as in a background job)
    lock, services, sink, nats_server, code = threading.Lock(), [], None, None, 0
    try:
        nats_url, nats_server, nats_note = pick_nats(infra)
        monitor = nats_server.monitor_url if nats_server else None
        if not monitor and "127.0.0.1:4222" in nats_url and http_status("http://127.0.0.1:8222/healthz") == 200:
            monitor = "http://127.0.0.1:8222"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if os.environ.get("SMTP_HOST"):
            smtp = (os.environ["SMTP_HOST"], os.environ.get("SMTP_PORT", "1025"))
            mail_note = f"SMTP {smtp[0]}:{smtp[1]} (from env SMTP_HOST)"
        else:
            sink, smtp = start_sink(env, lock, infra), (SINK_HOST, str(SINK_PORT))
            mail_note = f"SMTP sink {SINK_HOST}:{SINK_PORT} -> Maildir var/mail"
        token, token_note = api_token()

        env.update(NATS_URL=nats_url, API_TOKEN=token, ENVIRONMENT="development")
        mail_env = dict(env, SMTP_HOST=smtp[0], SMTP_PORT=smtp[1],
                        MAIL_FROM=env.get("MAIL_FROM", "netvaerk@example.org"))
        for svc, port in SERVICES.items():
            services.append(start_service(svc, port, mail_env if svc == "notifications" else env, lock, infra))
        deadline = time.monotonic() + READY_TIMEOUT
        for child, port in zip(services, SERVICES.values(), strict=True):
            url = f"http://127.0.0.1:{port}/readyz"
            wait_until(child, lambda u=url: http_status(u) == 200, f"ready at {url} within {READY_TIMEOUT:.0f} s",
                       deadline)
        say(f"all services ready {time.time() - started:.1f} s after the command started")

        seed(token)
        lines = [f"  {svc:<14} http://127.0.0.1:{port}   docs http://127.0.0.1:{port}/docs"
                 for svc, port in SERVICES.items()]
        lines += [f"  {'NATS':<14} {without_credentials(nats_url)}   monitor {monitor or '(unknown)'}   ({nats_note})",
                  f"  {'mail':<14} {mail_note}",
                  f"  {'API token':<14} {token_note}   (header: Authorization: Bearer <token>)",
                  f"  {'logs':<14} var/log/<name>.log   databases: *_DATABASE_URL or var/<service>.db"]
        with lock:
            print("\nNetværk is running:\n" + "\n".join(lines) + "\nCtrl-C stops everything.\n", flush=True)

        while True:
            for child in [*services, *([sink] if sink else [])]:
                if child.proc.poll() is not None:
                    raise died(child, "stopped unexpectedly")
            if nats_server and nats_server.process.poll() is not None:
                raise Abort(f"nats-server stopped unexpectedly (exit code {nats_server.process.returncode}); "
                            f"see {nats_server.log_file}")
            time.sleep(0.5)
    except KeyboardInterrupt:
        say("stopping")
    except (Abort, RuntimeError) as error:  # RuntimeError: infra.start_nats could not start NATS (log tail included)
        say(str(error), err=True)
        code = 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # let the shutdown finish
        stop_all(services, sink, nats_server, infra.stop_process)
        say("stopped" + (" (with errors, see above)" if code else ""))
    return code


def test(args):
    proc = subprocess.Popen([sys.executable, "-m", "pytest", *args], cwd=ROOT)
    while proc.poll() is None:
        with contextlib.suppress(KeyboardInterrupt):  # pytest got the same Ctrl-C and finishes its report
            proc.wait()
    code = proc.returncode
    if code == 5:
        say("pytest collected no tests (exit code 5): counted as a failure", err=True)
        return 1
    return code


def main(argv):
    command, args = (argv[0] if argv else ""), argv[1:]
    if command in ("run", "test"):
        bootstrap(command, args)
    if command == "_run":
        return run()
    if command == "_test":
        return test(args)
    print(__doc__.strip() + "\n\nusage: python3 dev.py run | python3 dev.py test [pytest args...]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
