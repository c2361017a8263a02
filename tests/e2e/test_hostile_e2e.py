"""End to end with real processes: no request a client sends can stop a pipeline. After each hostile request the next
ordinary change still flows through (its event is published; a join's welcome mail arrives), and a huge body, with
or without the token, is refused while it streams in without the process growing."""

from __future__ import annotations

import socket
import time
import uuid

import psutil
import pytest

from netvaerk_testing.plugin import wait_until

from .conftest import TOKEN

pytestmark = pytest.mark.e2e

HOSTILE = [
    ("members", "/groups", {"name": "Store emner", "region": "Øst", "topics": ["x" * 15_000] * 50}),
    ("members", "/groups", {"name": "Mange emner", "region": "Øst", "topics": ["SKI"] * 51}),
    (
        "members",
        "/members",
        {
            "name": "Evil\r\nBcc: victim@example.net",
            "email": "evil@example.org",
            "organisation": {"name": "Eksempel A/S", "kind": "supplier"},
            "job_title": "Chef",
        },
    ),
    (
        "members",
        "/members",
        {
            "name": "Nul\u0000Byte",
            "email": "nul@example.org",
            "organisation": {"name": "Eksempel A/S", "kind": "supplier"},
            "job_title": "Chef",
        },
    ),
    (
        "members",
        "/members",
        {
            "name": "Tom Organisation",
            "email": "tom@example.org",
            "organisation": {"name": "\u001d", "kind": "supplier"},
            "job_title": "Chef",
        },
    ),
    (
        "members",
        "/members",
        {
            "name": "Blank Titel",
            "email": "blank@example.org",
            "organisation": {"name": "Eksempel A/S", "kind": "supplier"},
            "job_title": " ",
        },
    ),
]


def _member(p, i: int) -> str:
    status, body = p.call(
        "members",
        "POST",
        "/members",
        {
            "name": f"Almindelig Deltager {i}",
            "email": f"almindelig{i}-{uuid.uuid4().hex[:6]}@example.org",
            "organisation": {"name": "Eksempel Kommune", "kind": "public_authority"},
            "job_title": "Konsulent",
        },
    )
    assert status == 201, body
    return body["member_id"]


async def test_after_each_hostile_request_the_next_join_still_gets_its_welcome(platform):
    p = platform
    status, group = p.call("members", "POST", "/groups", {"name": "Offentlig digitalisering vest", "region": "Vest"})
    assert status == 201, group
    for i, (service, path, body) in enumerate(HOSTILE):
        status, problem = p.call(service, "POST", path, body)
        assert 400 <= status < 500, (path, status, problem)
        assert problem["status"] == status and problem.get("errors"), problem
        member = _member(p, i)
        status, _ = p.call("members", "POST", f"/groups/{group['group_id']}/members", {"member_id": member})
        assert status == 201
        await wait_until(lambda n=i + 1: len(p.mails()) >= n, timeout=20, message=f"welcome {i + 1}")
    assert len(p.mails()) == len(HOSTILE)
    status, outbox = p.call("members", "GET", "/admin/outbox")
    assert status == 200 and outbox["unpublished"] == 0, outbox


def _send_huge(port: int, headers: str, total: int, chunk: int = 1 << 20) -> tuple[int, int]:
    """Send headers, then up to `total` bytes of body; (status answered, bytes of body the server let us send)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sent = 0
    try:
        sock.sendall(headers.encode())
        block = b"x" * chunk
        if "chunked" in headers:
            block = f"{chunk:x}\r\n".encode() + block + b"\r\n"
        sock.settimeout(0.05)
        while sent < total:
            try:
                if sock.recv(1, socket.MSG_PEEK):
                    break  # the server answered already
            except (TimeoutError, BlockingIOError):
                pass
            try:
                sock.settimeout(2)
                sock.sendall(block)
                sent += len(block)
                sock.settimeout(0.05)
            except OSError:
                break
        sock.settimeout(10)
        head = sock.recv(200).decode("latin-1")
        return int(head.split()[1]), sent
    finally:
        sock.close()


def test_a_100_mb_body_is_refused_while_it_streams_in_and_the_process_does_not_grow(platform):
    members = platform.services["members"]
    process = psutil.Process(members.proc.pid)
    before = process.memory_info().rss
    total = 100 << 20
    for auth, expected in (("", 401), (f"Authorization: Bearer {TOKEN}\r\n", 413)):
        for framing in (f"Content-Length: {total}\r\n", "Transfer-Encoding: chunked\r\n"):
            headers = (
                f"POST /groups HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/json\r\n{framing}\r\n"
            )
            started = time.monotonic()
            status, sent = _send_huge(members.port, headers, total)
            assert status == expected, (auth, framing, status)
            assert sent < 20 << 20, (auth, framing, sent)  # answered long before the 100 MB were in
            assert time.monotonic() - started < 10
    grown = process.memory_info().rss - before
    print(f"members RSS after four 100 MB attempts: {grown / 1e6:+.1f} MB")
    assert grown < 8 << 20, f"members grew by {grown / 1e6:.1f} MB"
    status, _ = platform.call("members", "GET", "/groups")
    assert status == 200  # and it serves on
