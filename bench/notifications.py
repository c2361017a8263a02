#!/usr/bin/env python3
"""Benchmark of the notifications service's fan-out, beside raw aiosmtplib measured in the same run on the same
machine. It is a benchmark, not a test: nothing here asserts a time.

    .venv/bin/python bench/notifications.py [--members 10000] [--backend postgresql|sqlite]

- fanout: a real uvicorn process of the notifications app (its consumers, its delivery worker, its relay) on a fresh
  database, the bench's own nats-server, and an SMTP sink (aiosmtpd) in a process of its own. A group of N members
  arrives as MEMBERS events (group.created, N member.registered, N member.joined: published to JetStream as the
  members service's relay would); the N welcome mails they cause are waited out. Then one meeting.scheduled for the
  group: timed from its publish until the sink has taken N invitations (each personalised, with its ICS). emails/s,
  and the service's peak RSS during the fan-out (sampled every 50 ms). Then checked: every member got exactly one
  invitation and one welcome, each a text/calendar METHOD:REQUEST with the meeting's UID.
- baseline: raw aiosmtplib sending N prebuilt messages — copies of an invitation the sink received, each to its own
  recipient — to the same sink over one connection, one after the other, as the service's worker sends (one
  connection, in order); timed from the first send to the sink's count reaching N.

See bench/README.md ("bench/notifications.py") for what the figures mean and the last run's numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
# bench/ on sys.path would let `import notifications` find this file instead of the service
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
_spec = importlib.util.spec_from_file_location("pipeline", BENCH / "pipeline.py")
assert _spec is not None and _spec.loader is not None
pipeline = importlib.util.module_from_spec(_spec)
sys.modules["pipeline"] = pipeline
_spec.loader.exec_module(pipeline)

import psutil  # noqa: E402

from netvaerk_shared import contracts  # noqa: E402
from netvaerk_shared.envelope import CONTENT_TYPE, make_event, to_bytes  # noqa: E402

ROOT = BENCH.parent
PY = sys.executable
AIMS = {"fanout": 0.50}
GROUP_ID = uuid.UUID("5e1f0000-0000-4000-8000-000000000001")

# ------------------------------------------------------------------------------------------------------ the sink

SINK = r'''
"""An SMTP sink in a process of its own: takes every message, writes one JSON line per message to the log (flushed),
keeps the first invitation's raw bytes (for the baseline's prebuilt messages)."""
import asyncio, json, sys, time
from aiosmtpd.smtp import SMTP

port, log_path, sample_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
log = open(log_path, "a", buffering=1)
sampled = False


class Handler:
    async def handle_DATA(self, server, session, envelope):
        global sampled
        data = envelope.content if isinstance(envelope.content, bytes) else envelope.content.encode()
        calendar = b"text/calendar" in data
        if calendar and not sampled and b"X-Bench-Copy" not in data:
            with open(sample_path, "wb") as f:
                f.write(data)
            sampled = True
        log.write(json.dumps({"t": time.time(), "to": envelope.rcpt_tos, "cal": calendar,
                              "copy": b"X-Bench-Copy" in data, "bytes": len(data)}) + "\n")
        return "250 OK"


async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Handler(), data_size_limit=10_000_000), "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()

asyncio.run(main())
'''


class Sink:
    def __init__(self, workdir: Path) -> None:
        self.port = pipeline.infra.free_port()
        self.log = workdir / "sink.jsonl"
        self.sample = workdir / "invitation.eml"
        script = workdir / "sink.py"
        script.write_text(SINK)
        self.proc = subprocess.Popen(
            [PY, str(script), str(self.port), str(self.log), str(self.sample)],
            stdout=subprocess.PIPE,
            stderr=open(workdir / "sink.err", "wb"),  # noqa: SIM115 - lives as long as the process
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"the SMTP sink did not start: {(workdir / 'sink.err').read_text()[-2000:]}")
        self._offset = 0
        self.lines: list[dict[str, Any]] = []

    def read(self) -> list[dict[str, Any]]:
        """Every message taken so far (appends what was written since the last read)."""
        if self.log.exists():
            with open(self.log, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
            complete = chunk.rfind(b"\n") + 1
            self._offset += complete
            self.lines.extend(json.loads(line) for line in chunk[:complete].splitlines() if line)
        return self.lines

    def stop(self) -> None:
        pipeline.infra.stop_process(self.proc)


async def wait_for(predicate: Any, timeout: float, what: str, poll: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(poll)


# ------------------------------------------------------------------------------------------------------ the events


async def publish(js: Any, events: list[contracts.EventData]) -> None:
    """As the relay publishes: structured CloudEvents, Nats-Msg-Id = event id, every PubAck awaited."""
    futures = []
    for data in events:
        event = make_event(data)
        headers = {"Nats-Msg-Id": event.id, "Content-Type": CONTENT_TYPE}
        futures.append(await js.publish_async(data.nats_subject(), to_bytes(event), headers=headers))
        if len(futures) >= 1000:
            await asyncio.gather(*futures)
            futures.clear()
    await asyncio.gather(*futures)


def group_events(n: int) -> tuple[list[contracts.EventData], list[uuid.UUID]]:
    now = datetime.now(UTC)
    members = [uuid.uuid4() for _ in range(n)]
    out: list[contracts.EventData] = [
        contracts.GroupCreated(
            group_id=GROUP_ID,
            name="Offentlig digitalisering øst",
            slug="offentlig-digitalisering-oest",
            region="Øst",
            description="Netværk for it- og digitaliseringsfolk øst for Storebælt.",
            topics=("digitalisering", "SKI"),
        )
    ]
    organisation = contracts.Organisation(id=uuid.uuid4(), name="Eksempel Kommune", kind="public_authority")
    for i, member_id in enumerate(members):
        out.append(
            contracts.MemberRegistered(
                member_id=member_id,
                name=f"Søren Æblegård {i}",
                email=f"fanout-{i}@example.org",
                organisation=organisation,
                job_title="Digitaliseringschef",
                locale="da" if i % 4 else "en",
                registered_at=now,
            )
        )
    for member_id in members:
        out.append(contracts.MemberJoined(member_id=member_id, group_id=GROUP_ID, role="member", joined_at=now))
    return out, members


def meeting_event() -> contracts.MeetingScheduled:
    start = (datetime.now(UTC) + timedelta(days=40)).replace(hour=12, minute=0, second=0, microsecond=0)
    return contracts.MeetingScheduled(
        meeting_id=uuid.uuid4(),
        group_id=GROUP_ID,
        title="Netværksmøde: SKI-aftaler og agile kontrakter",
        starts_at=start,
        ends_at=start + timedelta(hours=3),
        venue=contracts.Venue(name="Eksempel Kommune, mødelokale 2", address="Eksempelvej 1, 2100 København Ø"),
        capacity=200,
        agenda=(
            contracts.AgendaItem(position=1, kind="check_in", title="Check-in", minutes=30),
            contracts.AgendaItem(
                position=2, kind="talk", title="Agile kontrakter i praksis", speaker="Mette Eksempel", minutes=60
            ),
            contracts.AgendaItem(position=3, kind="discussion", title="Drøftelse", minutes=60),
        ),
    )


# ------------------------------------------------------------------------------------------------------ figures


async def figure_fanout(infra_: Any, backend: str, n: int, workdir: Path) -> dict:
    js_nc, js = await pipeline.connect_js(infra_.nats.url)
    sink = Sink(workdir)
    url = await infra_.database(backend, "notifications")
    port = pipeline.infra.free_port()
    log = workdir / f"notifications-{backend}.log"
    env = pipeline.service_env(
        "notifications",
        url,
        infra_.nats.url,
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=sink.port,
        LOG_LEVEL="WARNING",
    )
    proc = None
    try:
        for service in ("members", "meetings", "notifications"):
            await pipeline.reset_stream(js, service)
        proc = pipeline.spawn_service("notifications", port, env, log)
        await pipeline.wait_ready(proc, port, log)
        events, members = group_events(n)
        t_seed = time.perf_counter()
        await publish(js, events)
        await wait_for(lambda: len(sink.read()) >= n, 60 + n / 10, f"{n} welcome mails")
        seed_s = time.perf_counter() - t_seed
        await asyncio.sleep(1.0)
        welcomes = len(sink.read())

        service = psutil.Process(proc.pid)
        peak = service.memory_info().rss
        rss_before = peak
        meeting = meeting_event()
        t0 = time.perf_counter()
        wall0 = time.time()
        await publish(js, [meeting])

        def invitations() -> int:
            return sum(1 for m in sink.read() if m["cal"] and not m["copy"])

        deadline = time.monotonic() + 120 + n / 5
        while invitations() < n:
            peak = max(peak, service.memory_info().rss)
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"the fan-out stopped at {invitations()} of {n}:\n{pipeline.infra.log_tail(log)}")
            await asyncio.sleep(0.05)
        seconds = time.perf_counter() - t0
        await asyncio.sleep(1.0)  # anything sent twice would arrive now
        got = [m for m in sink.read() if m["cal"] and not m["copy"]]
        first = min(m["t"] for m in got) - wall0
        per_member: dict[str, int] = {}
        for m in got:
            for rcpt in m["to"]:
                per_member[rcpt] = per_member.get(rcpt, 0) + 1
        expected = {f"fanout-{i}@example.org" for i in range(n)}
        once = sorted(per_member) == sorted(expected) and all(v == 1 for v in per_member.values())
        sizes = sorted(m["bytes"] for m in got)
    finally:
        if proc is not None:
            pipeline.infra.stop_process(proc)
        await js_nc.close()

    try:
        baseline = await raw_smtp(sink, n)
    finally:
        sink.stop()
        await infra_.drop(url)
    return {
        "backend": backend,
        "members": n,
        "seed_s": seed_s,
        "welcomes": welcomes,
        "seconds": seconds,
        "first_mail_s": first,
        "rate": n / seconds,
        "exactly_once": once,
        "invitations": len(got),
        "message_bytes_p50": sizes[len(sizes) // 2],
        "rss_before_mb": rss_before / 2**20,
        "peak_rss_mb": peak / 2**20,
        "raw": baseline,
        "ratio": (n / seconds) / baseline["rate"],
        "members_sample": str(members[0]),
    }


async def raw_smtp(sink: Sink, n: int) -> dict:
    """N copies of the sink's first invitation, each to its own recipient, over one aiosmtplib connection in order."""
    import aiosmtplib

    raw = sink.sample.read_bytes()
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = raw.partition(b"\n\n")
    lines = [ln for ln in head.splitlines() if not ln.lower().startswith((b"to:", b"message-id:"))]
    messages = []
    for i in range(n):
        to = f"raw-{i}@example.org"
        headers = [*lines, f"To: {to}".encode(), f"Message-ID: <raw-{i}@bench.example.org>".encode()]
        headers.append(b"X-Bench-Copy: 1")
        messages.append((to, b"\r\n".join(headers) + b"\r\n\r\n" + body))
    before = sum(1 for m in sink.read() if m["copy"])
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=sink.port)
    await client.connect()
    t0 = time.perf_counter()
    try:
        for to, message in messages:
            await client.sendmail("netvaerk@example.org", [to], message)
    finally:
        with contextlib.suppress(Exception):
            await client.quit()
    await wait_for(lambda: sum(1 for m in sink.read() if m["copy"]) - before >= n, 60, "the raw copies")
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "rate": n / seconds, "bytes": len(messages[0][1])}


def table(results: list[dict]) -> list[str]:
    lines = [
        f"{'figure':8} {'backend':11} {'result':42} {'baseline (same run)':34} {'ratio':6} aim",
        "-" * 120,
    ]
    for r in results:
        ok = "ok" if r["ratio"] >= AIMS["fanout"] else "MISSED"
        result = f"{r['rate']:,.0f} emails/s, peak RSS {r['peak_rss_mb']:.0f} MB"
        raw = f"raw aiosmtplib {r['raw']['rate']:,.0f} emails/s"
        aim = f"≥ {AIMS['fanout']:.2f}  {ok}"
        lines.append(f"{'fanout':8} {r['backend']:11} {result:42} {raw:34} {r['ratio']:<6.2f} {aim}")
        each = "yes" if r["exactly_once"] else "NO"
        lines.append(
            f"{'':20} {r['members']:,} invitations in {r['seconds']:.1f} s (first after {r['first_mail_s']:.2f} s), "
            f"each once: {each}; RSS before {r['rss_before_mb']:.0f} MB; message {r['message_bytes_p50']:,} bytes"
        )
    return lines


async def main(args: argparse.Namespace) -> int:
    machine = pipeline.machine()
    workdir = Path(tempfile.mkdtemp(prefix="netvaerk-bench-notifications-"))
    backends = ["postgresql", "sqlite"] if args.backend == "both" else [args.backend]
    infra_ = pipeline.Infra(workdir, backends)
    print(
        f"netvaerk notifications benchmark — {machine.get('cpus')} CPUs, Python {sys.version.split()[0]}, "
        f"git {machine.get('git_head')}; database {infra_.pg_note or 'sqlite'}; work dir {workdir}",
        flush=True,
    )
    print(f"load average before: {os.getloadavg()[0]:.2f} (the machine may be shared)", flush=True)
    results = []
    try:
        for backend in backends:
            print(f"fanout ({backend}): {args.members:,} members ...", flush=True)
            r = await figure_fanout(infra_, backend, args.members, workdir)
            print(
                f"  seeded in {r['seed_s']:.1f} s ({r['welcomes']:,} welcome mails); fan-out {r['seconds']:.1f} s; "
                f"raw {r['raw']['seconds']:.1f} s",
                flush=True,
            )
            results.append(r)
    finally:
        await infra_.close()
    print(f"load average after: {os.getloadavg()[0]:.2f}\n")
    print("\n".join(table(results)))
    out = ROOT / "var" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (out / f"notifications-{stamp}.json").write_text(json.dumps({"machine": machine, "results": results}, indent=2))
    return 0 if all(r["exactly_once"] for r in results) else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--members", type=int, default=10_000)
    p.add_argument("--backend", choices=("postgresql", "sqlite", "both"), default="postgresql")
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
