"""`python3 dev.py run` as a developer uses it, as a real process tree: its own NATS (never one that already answers
on 4222), a supervisor that restarts a child killed with -9 while the others keep serving, a clean Ctrl-C, and
`dev.py mail` reading what the SMTP sink received.

The run gets its own var/ (NETVAERK_VAR) and service ports (NETVAERK_PORT_BASE), so it does not meet a developer's
own `dev.py run`. The tests share one run and go in file order; the last one stops it.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
DEV = ROOT / "dev.py"
START_TIMEOUT = 60  # a first run in a fresh tree also creates .venv; here it is there already
NOT_INHERITED = (
    "NATS_URL",
    "SMTP_HOST",
    "SMTP_PORT",
    "API_TOKEN",
    "DATABASE_URL",
    "MEMBERS_DATABASE_URL",
    "MEETINGS_DATABASE_URL",
    "NOTIFICATIONS_DATABASE_URL",
    "NETVAERK_DEV_T0",
)


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def bindable(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def port_base() -> int:
    """Three free ports base+1..base+3, below the ephemeral range that free_port() and clients draw from."""
    for _ in range(200):
        base = random.randrange(20000, 32000)
        if all(bindable(base + i) for i in (1, 2, 3)):
            return base
    raise RuntimeError("no three consecutive free ports found")


def readyz(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


class DevRun:
    def __init__(self, var: Path, base: int) -> None:
        self.var, self.base = var, base
        self.ports = {"members": base + 1, "meetings": base + 2, "notifications": base + 3}
        self.env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
        self.env.update(NETVAERK_VAR=str(var), NETVAERK_PORT_BASE=str(base))
        self.nats_on_4222_before = listening(4222)
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, str(DEV), "run"],
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.process = psutil.Process(self.proc.pid)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        with open(self.var.parent / "dev-run.out", "w", encoding="utf-8") as copy:
            for raw in iter(self.proc.stdout.readline, b""):
                line = raw.decode(errors="replace").rstrip("\n")
                self.lines.append(line)
                copy.write(line + "\n")
                copy.flush()

    def output(self) -> str:
        return "\n".join(self.lines)

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.lines[-n:])

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"dev.py never printed {text!r} (exit code {self.proc.poll()}):\n{self.tail()}")

    def children(self) -> list[psutil.Process]:
        return self.process.children(recursive=True)

    def child(self, needle: str) -> psutil.Process:
        found = [p for p in self.children() if any(needle in part for part in p.cmdline())]
        assert len(found) == 1, f"expected one child process with {needle!r}, found {found}"
        return found[0]

    @property
    def token(self) -> str:
        return (self.var / "api-token").read_text().strip()

    def call(self, service: str, method: str, path: str, body=None):
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.ports[service]}{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())

    def mail(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(DEV), "mail", *args], cwd=ROOT, env=self.env, capture_output=True, timeout=60
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def dev_run(tmp_path_factory):
    run = DevRun(tmp_path_factory.mktemp("dev-run") / "var", port_base())
    leftovers: list[psutil.Process] = []
    try:
        run.wait_for("Ctrl-C stops everything.", START_TIMEOUT)
        leftovers = run.children()
        yield run
    finally:
        leftovers += run.children() if run.proc.poll() is None else []
        run.stop()
        for p in leftovers:  # whatever a failed test left behind
            if p.is_running():
                p.kill()


def test_it_starts_its_own_nats_and_gives_the_services_its_url(dev_run):
    line = dev_run.wait_for("  NATS ", 1)
    match = re.search(r"nats://127\.0\.0\.1:(\d+)", line)
    assert match and "started by dev.py" in line, line
    port = int(match.group(1))
    if dev_run.nats_on_4222_before:  # this machine's NATS (or a developer's) was there first: not joined
        assert port != 4222 and "4222 was taken" in line, line
    nats = dev_run.child("nats-server")
    args = nats.cmdline()
    assert args[args.index("-p") + 1] == str(port)
    assert args[args.index("-sd") + 1] == str(dev_run.var / "nats")
    for service in ("members", "meetings", "notifications"):
        assert dev_run.child(f"{service}.entrypoints.http").environ()["NATS_URL"] == f"nats://127.0.0.1:{port}"


def readme_try_it_block() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    after = text.split("Try it:", 1)[1]
    return after.split("```sh\n", 1)[1].split("```", 1)[0]


def test_the_readme_try_it_block_works_pasted_whole(dev_run):
    """What a newcomer pastes from the README's Quick start, as one block, against this run's ports and var/."""
    block = readme_try_it_block()
    for service, port in dev_run.ports.items():
        block = block.replace(f"localhost:{8000 + list(dev_run.ports).index(service) + 1}", f"localhost:{port}")
    block = block.replace("var/api-token", str(dev_run.var / "api-token"))
    block = block.replace("python3 dev.py mail", f"{sys.executable} {DEV} mail")
    done = subprocess.run(["bash", "-c", block], cwd=ROOT, env=dev_run.env, capture_output=True, timeout=120)
    out, err = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, out + err
    lines = out.splitlines()
    joined = json.loads(next(line for line in lines if line.startswith('{"member_id"')))
    assert joined["role"] == "member"
    meeting = json.loads(next(line for line in lines if line.startswith('{"meeting_id"')))
    assert meeting["title"] == "Forårsmøde" and len(meeting["agenda"]) == 2
    assert "Velkommen i Offentlig digitalisering øst" in out, out
    assert "invitation.ics" in out, out  # the second `mail --wait 2` saw the invitation
    assert "timed out" not in err, err


def test_mail_lists_the_welcome_mail(dev_run):
    status, groups = dev_run.call("members", "GET", "/groups")
    group_id = next(g["group_id"] for g in groups if g["slug"] == "offentlig-digitalisering-oest")
    before = dev_run.mail().stdout.decode().count("@")
    status, member = dev_run.call(
        "members",
        "POST",
        "/members",
        {
            "name": "Jens Eksempel",
            "email": "jens@example.org",
            "job_title": "Konsulent",
            "organisation": {"name": "Eksempel Kommune", "kind": "public_authority"},
        },
    )
    assert status == 201, member
    status, body = dev_run.call("members", "POST", f"/groups/{group_id}/members", {"member_id": member["member_id"]})
    assert status == 201, body

    listed = dev_run.mail("--wait", str(before + 1), "--timeout", "20")
    out = listed.stdout.decode()
    assert listed.returncode == 0, out + listed.stderr.decode()
    assert "Velkommen i Offentlig digitalisering øst" in out and "jens@example.org" in out, out

    waited = dev_run.mail("--wait", "99", "--timeout", "0.5")
    assert waited.returncode != 0
    assert "timed out" in waited.stderr.decode()
    assert "Velkommen i Offentlig digitalisering øst" in waited.stdout.decode()  # it still lists what is there


def test_a_killed_service_is_restarted_while_the_others_serve(dev_run):
    notifications = dev_run.child("notifications.entrypoints.http")
    notifications.send_signal(signal.SIGKILL)
    members_answers, deadline = [], time.monotonic() + 15
    while time.monotonic() < deadline:
        members_answers.append(readyz(dev_run.ports["members"]))
        if readyz(dev_run.ports["notifications"]) == 200:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"notifications did not answer /readyz 200 within 15 s:\n{dev_run.tail()}")
    assert set(members_answers) == {200}, members_answers
    assert dev_run.proc.poll() is None, dev_run.tail()
    assert dev_run.child("notifications.entrypoints.http").pid != notifications.pid
    dev_run.wait_for("dev: notifications exited (code -9); restarting in", 1)
    dev_run.wait_for("dev: notifications is back (ready)", 5)


def test_sigint_stops_everything(dev_run):
    children = dev_run.children()
    command_lines = " ".join(" ".join(p.cmdline()) for p in children)
    for needle in (
        "nats-server",
        "smtp_sink",
        "members.entrypoints",
        "meetings.entrypoints",
        "notifications.entrypoints",
    ):
        assert needle in command_lines, command_lines
    dev_run.proc.send_signal(signal.SIGINT)
    assert dev_run.proc.wait(30) == 0, dev_run.tail()
    dev_run.wait_for("dev: stopped", 2)
    still = [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not still, f"left running: {[p.cmdline() for p in still]}"
