#!/usr/bin/env python3
"""Benchmarks of the meetings service, each beside a baseline measured in the same run on the same machine. It is a
benchmark, not a test: nothing here asserts a time.

    .venv/bin/python bench/meetings.py [--figures ics,rsvp] [--backend both] [--years 10] [--per-year 4]
        [--members 200] [--capacity 150] [--rounds 5]

- ics: a group's calendar feed with `--years` years of meetings (`--per-year` a year, each with a four-item agenda,
  every tenth cancelled, sequences 0-3), read the way GET /calendar/{token}.ics reads it: the route itself through
  the app in-process (httpx ASGITransport: edge, bearer check, token lookup, the meetings and agendas from the
  database, the document, its ETag), a conditional GET answered 304, the view alone (database + document) and the
  writer alone (meetings already in memory). Time per feed (median and p95 of `--repeat`) and the peak of Python
  memory allocated while building one feed (tracemalloc). Baseline: the same calendar (same events, properties and
  VTIMEZONE span) built with the icalendar package directly (`Calendar`/`Event`/`Timezone.from_tzid`, `to_ical()`)
  from the same meetings in memory. Both documents are parsed back with icalendar and must hold the same events.
- rsvp: `--members` members on a group's roster (seeded into the service's own tables, as the MEMBERS events would
  leave them) all answer `PUT /meetings/{id}/rsvps/{member_id}` "attending" at once, one keep-alive connection
  each, against a real uvicorn process of the meetings app (uvicorn_flags(): uvloop, httptools; RUN_RELAY=false, so
  the outbox rows of RsvpRecorded wait and the relay takes no CPU), a fresh meeting of `--capacity` seats per round,
  `--rounds` rounds after one warm-up round. Requests/s of each burst (members / time from the first request sent to
  the last answer) and p50/p95/p99 of every answer. Afterwards each meeting's answers are read back: confirmed +
  waitlisted must be `--members`, confirmed exactly the capacity, the waiting list 1..n in arrival order. Baseline: a
  bare FastAPI app on the same uvicorn flags taking the same requests (same paths, headers and body, parsed into
  the same enum) and answering with the same body the service gave, no database.

Each figure is a function `figure_<name>(infra, backend, args) -> dict` registered in FIGURES; see bench/README.md
("bench/meetings.py") for what the figures mean and the last run's numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

BENCH = Path(__file__).resolve().parent
# This file is bench/meetings.py: with bench/ on sys.path, `import meetings` would find it instead of the service.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
_spec = importlib.util.spec_from_file_location("pipeline", BENCH / "pipeline.py")
assert _spec is not None and _spec.loader is not None
pipeline = importlib.util.module_from_spec(_spec)
sys.modules["pipeline"] = pipeline
_spec.loader.exec_module(pipeline)

import httpx  # noqa: E402
import icalendar  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from meetings import proposal_views  # noqa: E402
from meetings.adapters import ics, orm  # noqa: E402
from meetings.bootstrap import bootstrap  # noqa: E402
from meetings.config import Settings  # noqa: E402
from meetings.entrypoints.http import create_app  # noqa: E402
from meetings.service_layer.proposals import token_digest  # noqa: E402
from netvaerk_shared.db import create_engine  # noqa: E402

ROOT = BENCH.parent
CPH = ZoneInfo("Europe/Copenhagen")
TOKEN = "bench-api-token"


def pct(values: list[float], q: float) -> float:
    return pipeline.pct(values, q)


def out(line: str = "") -> None:
    pipeline.out(line)


# ------------------------------------------------------------------------------------------------------------ ics
def _group_meetings(years: int, per_year: int) -> list[dict[str, Any]]:
    """`years` years of a group's meetings from 2022 on, `per_year` a year, 13:00-16:00 Copenhagen time."""
    rows = []
    first = date(2022, 1, 1)
    step = 365 // per_year
    for i in range(years * per_year):
        day = first + timedelta(days=i * step + 10)
        starts = datetime(day.year, day.month, day.day, 13, tzinfo=CPH).astimezone(UTC)
        rows.append(
            {
                "id": uuid.uuid4(),
                "title": f"Netværksmøde {i + 1}: data, AI og ansvar",
                "starts_at": starts,
                "ends_at": starts + timedelta(hours=3),
                "timezone": "Europe/Copenhagen",
                "venue_name": "Rådhuset, mødesal 2",
                "venue_address": "Rådhuspladsen 1, 1550 København V",
                "venue_host_organisation": "Eksempel Kommune",
                "online_url": "https://meet.example.org/netvaerk-oest",
                "capacity": 40,
                "sequence": i % 4,
                "scheduled_at": starts - timedelta(days=60),
                "status": "cancelled" if i % 10 == 9 else "scheduled",
            }
        )
    return rows


AGENDA = (
    ("check_in", "Runde: hvad optager jer?", 30, None, None),
    ("talk", "AI i sagsbehandlingen, erfaringer", 45, "Mette Eksempel", "Eksempel Kommune"),
    ("break", "Kaffe", 15, None, None),
    ("discussion", "Udbud, SKI-aftaler og databeskyttelse", 60, None, None),
)


async def _fill(url: str, years: int, per_year: int) -> tuple[uuid.UUID, str, int]:
    engine = create_engine(url)
    group_id = uuid.uuid4()
    token = "B" * 43
    rows = _group_meetings(years, per_year)
    async with engine.begin() as conn:
        await conn.run_sync(orm.metadata.create_all)
        await conn.execute(
            insert(orm.groups),
            {"id": group_id, "name": "Offentlig digitalisering øst", "slug": "oest", "region": "Øst"},
        )
        await conn.execute(insert(orm.meetings), [{**r, "group_id": group_id} for r in rows])
        await conn.execute(
            insert(orm.agenda_items),
            [
                {
                    "meeting_id": r["id"],
                    "position": p,
                    "kind": k,
                    "title": t,
                    "minutes": m,
                    "speaker": s,
                    "speaker_organisation": o,
                    "tags": ["databeskyttelse"],
                }
                for r in rows
                for p, (k, t, m, s, o) in enumerate(AGENDA, start=1)
            ],
        )
        await conn.execute(
            insert(orm.calendar_feeds),
            {
                "id": uuid.uuid4(),
                "token_sha256": token_digest(token),
                "group_id": group_id,
                "created_at": datetime.now(UTC),
            },
        )
    await engine.dispose()
    return group_id, token, len(rows)


def icalendar_direct(name: str, meetings: list[ics.CalendarMeeting], timezone: Any = None) -> bytes:
    """The baseline: the same calendar as ics.calendar() writes, built with the icalendar package. `timezone`: a
    VTIMEZONE built before (as ics.vtimezone() keeps its own for the next feed); without it one is built."""
    cal = icalendar.Calendar()
    cal.add("version", "2.0")
    cal.add("prodid", ics.PRODID)
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("name", name)
    cal.add("x-wr-calname", name)
    cal.add("refresh-interval", timedelta(hours=1), parameters={"VALUE": "DURATION"})
    cal.add("x-published-ttl", "PT1H")
    cal.add_component(timezone or _icalendar_zone(meetings))
    for m in meetings:
        ev = icalendar.Event()
        ev.add("uid", ics.uid(m.meeting_id))
        ev.add("dtstamp", m.changed_at)
        ev.add("dtstart", m.starts_at.astimezone(CPH))
        ev.add("dtend", m.ends_at.astimezone(CPH))
        ev.add("sequence", m.sequence)
        ev.add("status", "CANCELLED" if m.status == "cancelled" else "CONFIRMED")
        ev.add("summary", m.title)
        ev.add("location", ", ".join(p for p in (m.venue_name, m.venue_address) if p))
        if m.online_url:
            ev.add("url", m.online_url)
        ev.add("description", ics._description(m))
        ev.add("transp", "OPAQUE")
        cal.add_component(ev)
    return cal.to_ical()


def _icalendar_zone(meetings: list[ics.CalendarMeeting]) -> Any:
    first = min(m.starts_at for m in meetings).date().replace(month=1, day=1) - timedelta(days=1)
    last = max(m.ends_at for m in meetings).date().replace(month=12, day=31) + timedelta(days=2)
    return icalendar.Timezone.from_tzid("Europe/Copenhagen", first_date=first, last_date=last)


async def _timed(fn: Callable[[], Awaitable[Any]], repeat: int) -> tuple[list[float], Any]:
    result = await fn()  # warm-up (caches, pool)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = await fn()
        times.append((time.perf_counter() - t0) * 1000)
    return times, result


async def _peak(fn: Callable[[], Awaitable[Any]]) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        await fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _same_events(ours: bytes, theirs: bytes) -> bool:
    def key(doc: bytes) -> list[tuple]:
        cal = icalendar.Calendar.from_ical(doc)
        return sorted(
            (str(e["UID"]), e.decoded("DTSTART").astimezone(UTC), int(e["SEQUENCE"]), str(e["STATUS"]))
            for e in cal.walk("VEVENT")
        )

    return key(ours) == key(theirs)


async def figure_ics(infra_: Any, backend: str, args: argparse.Namespace) -> dict:
    url = await infra_.database(backend, "ics")
    try:
        group_id, token, count = await _fill(url, args.years, args.per_year)
        settings = Settings(database_url=url, nats_url=infra_.nats.url, api_token=TOKEN)
        runtime = bootstrap(settings)
        app = create_app()
        app.state.runtime = runtime  # the routes reach it so; no lifespan: no consumers or relay run meanwhile
        app.state.edge.set(per_minute=0, max_body=1_000_000, token=TOKEN)
        # as a service logs (JSON lines, access log included), but to a file; httpx's own lines are the client's
        pipeline.configure_logging("INFO", Path(infra_.workdir) / "meetings-bench.log")
        logging.getLogger("httpx").setLevel("WARNING")
        engine = runtime.engine
        feed = await proposal_views.feed_by_token(engine, token)
        assert feed is not None
        async with engine.connect() as conn:
            meetings = await proposal_views.calendar_meetings(
                conn, orm.meetings.c.group_id == group_id, with_group=False
            )
        name = "Offentlig digitalisering øst"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench") as client:

            async def http_get() -> httpx.Response:
                r = await client.get(f"/calendar/{token}.ics", headers=headers)
                assert r.status_code == 200, r.text
                return r

            http_times, response = await _timed(http_get, args.repeat)
            etag = response.headers["etag"]

            async def http_304() -> httpx.Response:
                r = await client.get(f"/calendar/{token}.ics", headers={**headers, "If-None-Match": etag})
                assert r.status_code == 304
                return r

            not_modified, _ = await _timed(http_304, args.repeat)

        async def view() -> str:
            return await proposal_views.feed_document(engine, feed)

        async def writer() -> str:
            return ics.calendar(name, meetings)

        async def writer_cold() -> str:
            ics.vtimezone.cache_clear()  # the VTIMEZONE written anew, as for the first feed after a start
            return ics.calendar(name, meetings)

        async def baseline() -> bytes:
            return icalendar_direct(name, meetings)

        zone = _icalendar_zone(meetings)

        async def baseline_zone_kept() -> bytes:
            return icalendar_direct(name, meetings, zone)

        view_times, _ = await _timed(view, args.repeat)
        writer_times, document = await _timed(writer, args.repeat)
        cold_times, _ = await _timed(writer_cold, args.repeat)
        base_times, theirs = await _timed(baseline, args.repeat)
        kept_times, _ = await _timed(baseline_zone_kept, args.repeat)
        peaks = {
            "view": await _peak(view),
            "writer": await _peak(writer),
            "writer_cold": await _peak(writer_cold),
            "icalendar": await _peak(baseline),
            "icalendar_zone_kept": await _peak(baseline_zone_kept),
        }
        await engine.dispose()
        ours = response.content
        assert ours == document.encode("utf-8")
        return {
            "meetings": count,
            "bytes": len(ours),
            "icalendar_bytes": len(theirs),
            "same_events": _same_events(ours, theirs),
            "http_ms": _stats(http_times),
            "http_304_ms": _stats(not_modified),
            "view_ms": _stats(view_times),
            "writer_ms": _stats(writer_times),
            "writer_cold_ms": _stats(cold_times),
            "icalendar_ms": _stats(base_times),
            "icalendar_zone_kept_ms": _stats(kept_times),
            "peak_bytes": peaks,
        }
    finally:
        await infra_.drop(url)


def _stats(ms: list[float]) -> dict[str, float]:
    return {"p50": statistics.median(ms), "p95": pct(ms, 95)}


def ics_lines(backend: str, r: dict) -> list[str]:
    kb = 1024

    def row(label: str, key: str, peak: str | None = None) -> str:
        t = r[f"{key}_ms"]
        line = f"  {label:<40} p50 {t['p50']:8.2f} ms  p95 {t['p95']:8.2f} ms"
        return line + (f"  peak {r['peak_bytes'][peak] / kb:6,.0f} KiB" if peak else "")

    w, c = r["writer_ms"]["p50"], r["writer_cold_ms"]["p50"]
    base, kept = r["icalendar_ms"]["p50"], r["icalendar_zone_kept_ms"]["p50"]
    p = r["peak_bytes"]
    return [
        f"ics        {backend:<10}  {r['meetings']} meetings, {r['bytes'] / kb:,.0f} KiB "
        f"(icalendar's document {r['icalendar_bytes'] / kb:,.0f} KiB; same events parsed back: {r['same_events']})",
        row("GET /calendar/{token}.ics (ASGI)", "http"),
        row("GET, If-None-Match -> 304", "http_304"),
        row("view: database + document", "view", "view"),
        row("writer, VTIMEZONE kept (as served)", "writer", "writer"),
        row("writer, VTIMEZONE anew", "writer_cold", "writer_cold"),
        row("baseline: icalendar, VTIMEZONE anew", "icalendar", "icalendar"),
        row("baseline: icalendar, VTIMEZONE kept", "icalendar_zone_kept", "icalendar_zone_kept"),
        f"  ratios (icalendar / ours, like for like): time {base / c:.1f}x (zone anew), {kept / w:.1f}x (zone kept); "
        f"memory {p['icalendar'] / max(1, p['writer_cold']):.1f}x, "
        f"{p['icalendar_zone_kept'] / max(1, p['writer']):.1f}x; "
        f"whole GET / icalendar build (zone kept) {r['http_ms']['p50'] / kept:.2f}",
    ]


# ----------------------------------------------------------------------------------------------------------- rsvp
BARE_RSVP_APP = """
import json, os
from enum import StrEnum
from uuid import UUID

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict

ANSWER = json.load(open(os.environ["BARE_ANSWER"]))


class Response(StrEnum):
    attending = "attending"
    tentative = "tentative"
    declined = "declined"


class RsvpIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    response: Response


app = FastAPI()


@app.put("/meetings/{meeting_id}/rsvps/{member_id}")
async def answer(meeting_id: UUID, member_id: UUID, body: RsvpIn) -> dict:
    return {**ANSWER, "meeting_id": str(meeting_id), "member_id": str(member_id), "response": body.response}
"""


async def _seed_roster(url: str, members: int, rounds: int, capacity: int) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """A group, its roster (what MemberJoined leaves in group_members) and one coming meeting per round, written
    into the service's own tables after it migrated them."""
    engine = create_engine(url)
    group_id = uuid.uuid4()
    member_ids = [uuid.uuid4() for _ in range(members)]
    meeting_ids = [uuid.uuid4() for _ in range(rounds)]
    now = datetime.now(UTC)
    starts = (now + timedelta(days=30)).replace(hour=12, minute=0, second=0, microsecond=0)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(orm.groups),
                {"id": group_id, "name": "Offentlig digitalisering øst", "slug": "oest", "region": "Øst"},
            )
            await conn.execute(
                insert(orm.group_members),
                [
                    {"group_id": group_id, "member_id": m, "role": "member", "joined_at": now - timedelta(days=1)}
                    for m in member_ids
                ],
            )
            await conn.execute(
                insert(orm.meetings),
                [
                    {
                        "id": mid,
                        "group_id": group_id,
                        "title": f"Netværksmøde {i + 1}: data, AI og ansvar",
                        "starts_at": starts + timedelta(days=i),
                        "ends_at": starts + timedelta(days=i, hours=3),
                        "timezone": "Europe/Copenhagen",
                        "venue_name": "Rådhuset, mødesal 2",
                        "capacity": capacity,
                        "sequence": 0,
                        "scheduled_at": now,
                        "status": "scheduled",
                    }
                    for i, mid in enumerate(meeting_ids)
                ],
            )
    finally:
        await engine.dispose()
    return member_ids, meeting_ids


BODY = {"response": "attending"}


async def _one(client: Any, path: str, start: asyncio.Event, got: list[tuple[int, float, bytes]]) -> None:
    await start.wait()
    t = time.perf_counter()
    status, body = await client.request("PUT", path, BODY)
    got.append((status, time.perf_counter() - t, body))


async def _bursts(port: int, pid: int, meeting_ids: list[uuid.UUID], member_ids: list[uuid.UUID]) -> dict:
    """One keep-alive connection per member; per meeting, every member's PUT at once (the first meeting: warm-up)."""
    import psutil

    server = psutil.Process(pid)
    rates: list[float] = []
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    cpu = elapsed_total = 0.0
    sample: bytes = b""
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(pipeline.LeanHttp(port, pipeline.TOKEN)) for _ in range(len(member_ids))
        ]
        for n, meeting_id in enumerate(meeting_ids):
            start = asyncio.Event()
            got: list[tuple[int, float, bytes]] = []
            tasks = [
                asyncio.create_task(_one(c, f"/meetings/{meeting_id}/rsvps/{m}", start, got))
                for c, m in zip(clients, member_ids, strict=True)
            ]
            await asyncio.sleep(0.05)  # every task waits on the event
            cpu0 = sum(server.cpu_times()[:2])
            t0 = time.perf_counter()
            start.set()
            await asyncio.gather(*tasks)
            elapsed = time.perf_counter() - t0
            if n == 0:
                sample = next(b for s, _, b in got if s == 200)
                continue  # warm-up: connections, caches, the pool
            cpu += sum(server.cpu_times()[:2]) - cpu0
            elapsed_total += elapsed
            rates.append(len(got) / elapsed)
            latencies.extend(x for _, x, _ in got)
            for s, _, _ in got:
                statuses[s] = statuses.get(s, 0) + 1
    return {
        "rate_median": statistics.median(rates),
        "rates": rates,
        "p50_ms": pct(latencies, 50) * 1e3,
        "p95_ms": pct(latencies, 95) * 1e3,
        "p99_ms": pct(latencies, 99) * 1e3,
        "max_ms": max(latencies) * 1e3,
        "statuses": statuses,
        "server_cpu_share": cpu / elapsed_total,
        "sample": sample,
    }


async def _seats_hold(port: int, meeting_ids: list[uuid.UUID], members: int, capacity: int) -> list[dict]:
    """Each meeting's answers as the service gives them: the counts, and the waiting list in arrival order."""
    checks = []
    async with pipeline.LeanHttp(port, pipeline.TOKEN) as client:
        for meeting_id in meeting_ids:
            status, body = await client.request("GET", f"/meetings/{meeting_id}/rsvps")
            if status != 200:
                raise RuntimeError(f"GET /meetings/{meeting_id}/rsvps -> {status}: {body[:300]!r}")
            seats = json.loads(body)
            answers = seats["answers"]
            waiting = [a for a in answers if a["status"] == "waitlisted"]
            arrivals = [a["arrival"] for a in answers]
            checks.append(
                {
                    "confirmed": seats["confirmed"],
                    "waitlisted": seats["waitlisted"],
                    "all_answered": seats["confirmed"] + seats["waitlisted"] == members == len(answers),
                    "capacity_holds": seats["confirmed"] == min(capacity, members),
                    "waiting_list_in_order": [a["waitlist_position"] for a in waiting]
                    == list(range(1, len(waiting) + 1))
                    and [a["arrival"] for a in waiting] == sorted(a["arrival"] for a in waiting)
                    and min((a["arrival"] for a in waiting), default=members + 1)
                    > max((a["arrival"] for a in answers if a["status"] == "confirmed"), default=0),
                    "arrivals_distinct": len(set(arrivals)) == len(arrivals),
                }
            )
    return checks


async def figure_rsvp(infra_: Any, backend: str, args: argparse.Namespace) -> dict:
    url = await infra_.database(backend, "rsvp")
    workdir = Path(infra_.workdir)
    try:
        port = pipeline.infra.free_port()
        log = workdir / f"meetings-rsvp-{backend}.log"
        env = pipeline.service_env("meetings", url, infra_.nats.url, RUN_RELAY="false")
        proc = pipeline.spawn_service("meetings", port, env, log)
        try:
            await pipeline.wait_ready(proc, port, log)  # it migrated its database
            member_ids, meeting_ids = await _seed_roster(url, args.members, args.rounds + 1, args.capacity)
            service = await _bursts(port, proc.pid, meeting_ids, member_ids)
            checks = await _seats_hold(port, meeting_ids, args.members, args.capacity)
        finally:
            pipeline.infra.stop_process(proc)
        answer_file = workdir / "rsvp-answer.json"
        answer_file.write_bytes(service.pop("sample"))
        (workdir / "bare_rsvp_app.py").write_text(BARE_RSVP_APP, encoding="utf-8")
        bare_port = pipeline.infra.free_port()
        bare_log = workdir / "bare-rsvp.log"
        bare_env = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL")}
        bare_env.update(PYTHONUNBUFFERED="1", BARE_ANSWER=str(answer_file))
        with open(bare_log, "ab") as logf:
            bare = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "bare_rsvp_app:app", "--app-dir", str(workdir)]
                + ["--host", "127.0.0.1", "--port", str(bare_port), *pipeline.uvicorn_flags()],
                cwd=workdir,
                env=bare_env,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + 30
            while pipeline.http_status(f"http://127.0.0.1:{bare_port}/docs") != 200:
                if time.monotonic() > deadline or bare.poll() is not None:
                    raise RuntimeError(f"bare app did not start:\n{bare_log.read_text()[-2000:]}")
                await asyncio.sleep(0.05)
            baseline = await _bursts(bare_port, bare.pid, meeting_ids, member_ids)
            baseline.pop("sample")
        finally:
            pipeline.infra.stop_process(bare)
        return {
            "members": args.members,
            "capacity": args.capacity,
            "rounds": args.rounds,
            "service": service,
            "bare": baseline,
            "ratio": service["rate_median"] / baseline["rate_median"],
            "checks": checks,
            "all_hold": all(all(v for k, v in c.items() if isinstance(v, bool)) for c in checks),
        }
    finally:
        await infra_.drop(url)


def rsvp_lines(backend: str, r: dict) -> list[str]:
    def row(label: str, x: dict) -> str:
        return (
            f"  {label:<40} {x['rate_median']:7,.0f} req/s (rounds {', '.join(f'{v:,.0f}' for v in x['rates'])})  "
            f"p50 {x['p50_ms']:7.1f}  p95 {x['p95_ms']:7.1f}  p99 {x['p99_ms']:7.1f} ms  "
            f"server CPU {x['server_cpu_share']:.0%}  statuses {x['statuses']}"
        )

    c = r["checks"]
    return [
        f"rsvp       {backend:<10}  {r['members']} members at once, {r['capacity']} seats, {r['rounds']} rounds "
        "(+1 warm-up)",
        row("PUT /meetings/{id}/rsvps/{member} (uvicorn)", r["service"]),
        row("baseline: bare FastAPI, same requests", r["bare"]),
        f"  ratio service / bare {r['ratio']:.2f}; after each round confirmed+waitlisted = "
        f"{sorted({x['confirmed'] + x['waitlisted'] for x in c})}, confirmed = {sorted({x['confirmed'] for x in c})}, "
        f"waitlisted = {sorted({x['waitlisted'] for x in c})}; every check holds: {r['all_hold']}",
    ]


# Each figure: (function, the lines it prints).
FIGURES: dict[str, tuple[Callable[..., Awaitable[dict]], Callable[[str, dict], list[str]]]] = {
    "ics": (figure_ics, ics_lines),
    "rsvp": (figure_rsvp, rsvp_lines),
}


async def main(args: argparse.Namespace) -> int:
    backends = ["postgresql", "sqlite"] if args.backend == "both" else [args.backend]
    figures = [f.strip() for f in args.figures.split(",") if f.strip()]
    unknown = set(figures) - set(FIGURES)
    if unknown:
        raise SystemExit(f"unknown figures: {', '.join(sorted(unknown))} (known: {', '.join(FIGURES)})")
    results: dict[str, Any] = {"machine": pipeline.machine(), "args": vars(args), "figures": {}}
    with tempfile.TemporaryDirectory(prefix="bench-meetings-") as tmp:
        infra_ = pipeline.Infra(Path(tmp), backends)
        try:
            out(f"machine: {json.dumps(results['machine'], ensure_ascii=False)}")
            if infra_.pg_admin:
                out(f"postgresql: {infra_.pg_note} {await infra_.pg_settings()}")
            for figure in figures:
                run, lines = FIGURES[figure]
                for backend in backends:
                    r = await run(infra_, backend, args)
                    results["figures"][f"{figure}/{backend}"] = r
                    for line in lines(backend, r):
                        out(line)
        finally:
            await infra_.close()
    target = ROOT / "var" / "bench" / f"meetings-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    out(f"results: {target.relative_to(ROOT)}")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--figures", default=",".join(FIGURES), help=f"comma-separated: {', '.join(FIGURES)}")
    p.add_argument("--backend", choices=("postgresql", "sqlite", "both"), default="both")
    p.add_argument("--years", type=int, default=10, help="ics: years of meetings in the group's feed")
    p.add_argument("--per-year", type=int, default=4, help="ics: meetings a year")
    p.add_argument("--repeat", type=int, default=200, help="ics: feeds built per timing")
    p.add_argument("--members", type=int, default=200, help="rsvp: members on the roster, all answering at once")
    p.add_argument("--capacity", type=int, default=150, help="rsvp: the meeting's seats")
    p.add_argument("--rounds", type=int, default=5, help="rsvp: bursts timed (each on a fresh meeting)")
    return p.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(parse_args())))
