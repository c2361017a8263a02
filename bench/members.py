#!/usr/bin/env python3
"""Benchmark of the members service's bulk import and its administration search, each beside a raw baseline
measured in the same run on the same machine. It is a benchmark, not a test: nothing here asserts a time.

    .venv/bin/python bench/members.py [--members 100000] [--requests 3000] [--concurrency 10]

- import: the CLI (`python -m members.entrypoints.cli import FILE`, a subprocess, as an operator runs it) on a
  generated CSV of N members into a fresh, migrated database; rows/s and the process's peak RSS. Baseline: plain
  asyncpg `executemany` of the same rows (organisations, members, seats; parsed from the same file with the csv
  module, in transactions of the same 500 lines), also a subprocess into its own fresh database of the same schema.
- search: GET /admin/members on a real uvicorn process of the members app over the imported database, a mix of
  queries (see QUERIES), req/s and p50/p95. Baseline: a bare FastAPI app (no edge, no database) on the same uvicorn
  flags answering each of the same URLs with the same page, taken from the service before timing.

See bench/README.md ("bench/members.py") for what the figures mean and the last run's numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import importlib.util
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
# This file is bench/members.py: with bench/ on sys.path, `import members` would find it instead of the service.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
_spec = importlib.util.spec_from_file_location("pipeline", BENCH / "pipeline.py")
assert _spec is not None and _spec.loader is not None
pipeline = importlib.util.module_from_spec(_spec)
sys.modules["pipeline"] = pipeline
_spec.loader.exec_module(pipeline)

from netvaerk_shared.db import asyncpg_dsn, create_engine  # noqa: E402
from netvaerk_shared.migrate import upgrade  # noqa: E402

ROOT = BENCH.parent
PY = sys.executable
AIMS = {"import": 0.50, "search": 0.50, "p95_ms": 50.0}
GROUPS = [f"netvaerk-{region}-{i}" for region in ("oest", "vest", "nord", "syd") for i in range(5)]
FIRST = ["Søren", "Mette", "Åse", "Jens", "Ærling", "Birgitte", "Øjvind", "Karen", "Lars", "Pia", "Anders", "Maja"]
LAST = ["Hansen", "Ærø", "Møller", "Åberg", "Jensen", "Nielsen", "Sørensen", "Kristensen", "Østergaard", "Lund"]
JOBS = ["Kontorchef", "IT-arkitekt", "Projektleder", "Udvikler", "Salgschef", "Konsulent", "Digitaliseringschef"]
KINDS = ["public_authority", "supplier", "other"]
HEADER = ["name", "email", "phone", "organisation", "organisation_kind", "cvr", "job_title", "locale", "groups"]


def generate(path: Path, n: int, seed: int = 7) -> None:
    """n fictional members (example.org) in 500 organisations, each in 0-2 of 20 groups; æøå throughout."""
    rnd = random.Random(seed)
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f, delimiter=";", lineterminator="\r\n")
        w.writerow(HEADER)
        for i in range(n):
            org = i % 500
            groups = "|".join(sorted({rnd.choice(GROUPS) for _ in range(rnd.randrange(3))}))
            w.writerow(
                [
                    f"{rnd.choice(FIRST)} {rnd.choice(LAST)} {i}",
                    f"medlem-{i}@example.org",
                    f"+45 {rnd.randrange(10**8):08d}",
                    f"{'Kommune' if org % 3 == 0 else 'Data ApS'} nr. {org}",
                    KINDS[org % 3],
                    "",
                    rnd.choice(JOBS),
                    "da" if i % 5 else "en",
                    groups,
                ]
            )


async def fresh_members_db(infra_: Any, tag: str) -> str:
    """A new database with the members schema (Alembic head) and the 20 groups."""
    from sqlalchemy import insert

    from members.adapters import orm
    from members.bootstrap import MIGRATIONS

    url = await infra_.database("postgresql", tag)
    engine = create_engine(url)
    try:
        await upgrade(engine, MIGRATIONS)
        async with engine.begin() as conn:
            await conn.execute(
                insert(orm.groups),
                [
                    {
                        "id": uuid.uuid4(),
                        "name": slug,
                        "slug": slug,
                        "region": slug.split("-")[1],
                        "description": "",
                        "topics": [],
                        "capacity": None,
                        "requires_approval": False,
                    }
                    for slug in GROUPS
                ],
            )
    finally:
        await engine.dispose()
    return url


def run_measured(argv: list[str], env: dict[str, str], log: Path) -> dict:
    """Run a process to its end; wall time and its peak RSS (from wait4, the kernel's own count)."""
    t0 = time.perf_counter()
    with open(log, "wb") as logf:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=logf, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    return {
        "seconds": seconds,
        "rc": proc.returncode,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "cpu_s": usage.ru_utime + usage.ru_stime,
    }


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL")}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


async def raw_import(url: str, path: Path, batch: int = 500) -> int:
    """The baseline: the same rows straight in with asyncpg executemany, a transaction per `batch` lines."""
    import asyncpg

    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        groups = {r["slug"]: r["id"] for r in await conn.fetch("SELECT id, slug FROM groups")}
        orgs: dict[str, uuid.UUID] = {}
        now = datetime.now(UTC)
        n = 0
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, delimiter=";")
            next(reader)
            while True:
                lines = [line for _, line in zip(range(batch), reader, strict=False)]
                if not lines:
                    return n
                new_orgs, members, seats = [], [], []
                for name, email, phone, org, kind, cvr, job, locale, gs in lines:
                    key = " ".join(org.lower().split())
                    if key not in orgs:
                        orgs[key] = uuid.uuid4()
                        new_orgs.append((orgs[key], org, key, kind, cvr or None))
                    mid = uuid.uuid4()
                    members.append((mid, name, email, phone or None, orgs[key], job, locale, now, "active"))
                    seats.extend((mid, groups[g], "member", now) for g in gs.split("|") if g)
                async with conn.transaction():
                    if new_orgs:
                        await conn.executemany(
                            "INSERT INTO organisations (id, name, name_key, kind, cvr) VALUES ($1, $2, $3, $4, $5)",
                            new_orgs,
                        )
                    await conn.executemany(
                        "INSERT INTO members (id, name, email, phone, organisation_id, job_title, locale, "
                        "registered_at, status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                        members,
                    )
                    await conn.executemany(
                        "INSERT INTO memberships (member_id, group_id, role, joined_at) VALUES ($1, $2, $3, $4)",
                        seats,
                    )
                n += len(lines)
    finally:
        await conn.close()


async def figure_import(infra_: Any, n: int, workdir: Path) -> dict:
    path = workdir / f"members-{n}.csv"
    generate(path, n)
    service_url = await fresh_members_db(infra_, "import")
    raw_url = await fresh_members_db(infra_, "rawimport")
    cli = run_measured(
        [PY, "-m", "members.entrypoints.cli", "import", str(path), "--database-url", service_url],
        child_env(),
        workdir / "import.log",
    )
    if cli["rc"] != 0:
        raise RuntimeError(f"the import failed ({cli['rc']}):\n{(workdir / 'import.log').read_text()[-2000:]}")
    raw = run_measured(
        [PY, str(BENCH / "members.py"), "_raw-import", raw_url, str(path)], child_env(), workdir / "raw.log"
    )
    if raw["rc"] != 0:
        raise RuntimeError(f"the raw import failed:\n{(workdir / 'raw.log').read_text()[-2000:]}")
    report = (workdir / "import.log").read_text().strip().splitlines()[-1]
    stats = await _counts(service_url)
    raw_stats = await _counts(raw_url)
    return {
        "members": n,
        "file_mb": path.stat().st_size / 1e6,
        "rate": n / cli["seconds"],
        "raw_rate": n / raw["seconds"],
        "ratio": raw["seconds"] / cli["seconds"],
        "cli": cli,
        "raw": raw,
        "report": report,
        "rows": stats,
        "raw_rows": raw_stats,
        "service_url": service_url,
        "raw_url": raw_url,
    }


async def _counts(url: str) -> dict[str, int]:
    import asyncpg

    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return {
            t: await conn.fetchval(f"SELECT count(*) FROM {t}")  # noqa: S608 - fixed table names
            for t in ("members", "organisations", "memberships", "outbox")
        }
    finally:
        await conn.close()


BARE_APP = """
import json, os
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

PAGES = json.load(open(os.environ["BARE_PAGES"]))
app = FastAPI()


@app.get("/admin/members")
async def search(request: Request) -> dict:
    return PAGES[request.url.query]  # the same page, serialised by FastAPI as the service's route is
"""

QUERIES = {  # name -> query parameters; {group}, {organisation}, {cursor} filled in from the data
    "first page": {},
    "mid-list page": {"cursor": "{cursor}"},
    "one person (email)": {"q": "{email}"},
    "surname (æøå)": {"q": "østergaard"},
    "name + organisation": {"q": "søren kommune"},
    "group": {"group_id": "{group}"},
    "group + text": {"group_id": "{group}", "q": "møller"},
    "organisation": {"organisation_id": "{organisation}"},
    "kind + status": {"kind": "supplier", "status": "active"},
}


async def figure_search(infra_: Any, url: str, n: int, requests: int, concurrency: int, workdir: Path) -> dict:
    import asyncpg

    from members.adapters.search import Cursor, fold_text

    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        # as autovacuum does on its own within about a minute of 100,000 inserts (PostgreSQL >= 13 vacuums after
        # inserts too): statistics, and the visibility map that lets the search's first step be an index-only scan
        await conn.execute("VACUUM ANALYZE")
        group = await conn.fetchval("SELECT id FROM groups WHERE slug = $1", GROUPS[3])
        organisation = await conn.fetchval("SELECT organisation_id FROM members WHERE email = 'medlem-7@example.org'")
        middle = await conn.fetchrow("SELECT id, name FROM members WHERE email = $1", f"medlem-{n // 2}@example.org")
        trigrams = await conn.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm'")
    finally:
        await conn.close()
    cursor = Cursor(fold_text(middle["name"]), middle["id"]).encode()
    fill = {
        "{group}": str(group),
        "{organisation}": str(organisation),
        "{cursor}": cursor,
        "{email}": f"medlem-{n * 54 // 100 + 1}@example.org",
    }
    urls = {
        name: "/admin/members?" + urllib.parse.urlencode({"limit": 50, **{k: fill.get(v, v) for k, v in q.items()}})
        for name, q in QUERIES.items()
    }
    port = pipeline.infra.free_port()
    log = workdir / "members-search.log"
    proc = pipeline.spawn_service(
        "members", port, pipeline.service_env("members", url, infra_.nats.url, RUN_RELAY="false"), log
    )
    try:
        await pipeline.wait_ready(proc, port, log)
        pages: dict[str, Any] = {}
        hits: dict[str, int] = {}
        async with pipeline.LeanHttp(port, pipeline.TOKEN) as client:
            for name, path in urls.items():
                status, body = await client.request("GET", path)
                if status != 200:
                    raise RuntimeError(f"GET {path} -> {status}: {body[:300]!r}")
                pages[path.split("?", 1)[1]] = json.loads(body)
                hits[name] = len(pages[path.split("?", 1)[1]]["items"])
        service = await _load(port, urls, requests, concurrency, proc.pid)
    finally:
        pipeline.infra.stop_process(proc)
    (workdir / "bare_app.py").write_text(BARE_APP)
    (workdir / "pages.json").write_text(json.dumps(pages))
    bare_port = pipeline.infra.free_port()
    bare_log = workdir / "bare.log"
    with open(bare_log, "ab") as logf:
        bare = subprocess.Popen(
            [PY, "-m", "uvicorn", "bare_app:app", "--app-dir", str(workdir), "--host", "127.0.0.1"]
            + ["--port", str(bare_port), *pipeline.uvicorn_flags()],
            cwd=workdir,
            env=child_env(BARE_PAGES=str(workdir / "pages.json")),
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
        baseline = await _load(bare_port, urls, requests, concurrency, bare.pid)
    finally:
        pipeline.infra.stop_process(bare)
    return {
        "service": service,
        "bare": baseline,
        "ratio": service["rate"] / baseline["rate"],
        "hits": hits,
        "pg_trgm": bool(trigrams),
        "urls": urls,
    }


async def _load(port: int, urls: dict[str, str], requests: int, concurrency: int, pid: int) -> dict:
    """`requests` GETs, `concurrency` at a time on keep-alive connections, the query mix in turn."""
    import psutil

    names = list(urls)
    server = psutil.Process(pid)
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(pipeline.LeanHttp(port, pipeline.TOKEN)) for _ in range(concurrency)]
        counter = iter(range(requests + 10 * concurrency))
        latencies: dict[str, list[float]] = {n: [] for n in names}
        statuses: dict[int, int] = {}
        warm = 10 * concurrency

        async def worker(client: Any) -> None:
            for i in counter:
                name = names[i % len(names)]
                t = time.perf_counter()
                status, _ = await client.request("GET", urls[name])
                if i >= warm:
                    latencies[name].append(time.perf_counter() - t)
                    statuses[status] = statuses.get(status, 0) + 1

        cpu0 = sum(server.cpu_times()[:2])
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in clients))
        elapsed = time.perf_counter() - t0
        cpu = sum(server.cpu_times()[:2]) - cpu0
    every = [x for v in latencies.values() for x in v]
    done = len(every)
    return {
        "rate": done / elapsed,  # (the warm-up requests are in elapsed too: a slight understatement)
        "p50_ms": pipeline.pct(every, 50) * 1e3,
        "p95_ms": pipeline.pct(every, 95) * 1e3,
        "p99_ms": pipeline.pct(every, 99) * 1e3,
        "per_query_p95_ms": {n: pipeline.pct(v, 95) * 1e3 for n, v in latencies.items()},
        "statuses": statuses,
        "server_cpu_share": cpu / elapsed,
    }


def table(r: dict) -> list[str]:
    row = "{:<8} {:<40} {:<38} {:<6} {}"
    lines = [row.format("figure", "result", "baseline (same run)", "ratio", "aim"), "-" * 120]
    if "import" in r:
        i = r["import"]
        lines.append(
            row.format(
                "import",
                f"{i['rate']:,.0f} rows/s, peak RSS {i['cli']['peak_rss_mb']:.0f} MB",
                f"asyncpg executemany {i['raw_rate']:,.0f} rows/s, {i['raw']['peak_rss_mb']:.0f} MB",
                f"{i['ratio']:.2f}",
                f"≥ {AIMS['import']:.2f}  {'ok' if i['ratio'] >= AIMS['import'] else 'MISSED'}",
            )
        )
    if "search" in r:
        s = r["search"]
        svc, bare = s["service"], s["bare"]
        lines.append(
            row.format(
                "search",
                f"{svc['rate']:,.0f} req/s, p50 {svc['p50_ms']:.1f} / p95 {svc['p95_ms']:.1f} ms",
                f"bare FastAPI {bare['rate']:,.0f} req/s, p95 {bare['p95_ms']:.1f} ms",
                f"{s['ratio']:.2f}",
                f"≥ {AIMS['search']:.2f}  {'ok' if s['ratio'] >= AIMS['search'] else 'MISSED'}; "
                f"p95 < {AIMS['p95_ms']:.0f} ms  {'ok' if svc['p95_ms'] < AIMS['p95_ms'] else 'MISSED'}",
            )
        )
    return lines


async def main(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="netvaerk-bench-members-"))
    pipeline.UVICORN.update(loop=args.loop, http=args.http)
    infra_ = pipeline.Infra(workdir, ["postgresql"])
    results: dict[str, Any] = {"started": datetime.now(UTC).isoformat(timespec="seconds"), "args": vars(args)}
    try:
        results["machine"] = pipeline.machine()
        results["postgres"] = await infra_.pg_settings()
        m = results["machine"]
        pipeline.out(
            f"netvaerk members benchmark — {m['cpus']} CPUs ({m['cpu_model']}), Python {m['python']}, "
            f"git {m['git_head']}; PostgreSQL {results['postgres'].get('server_version')} ({infra_.pg_note}, "
            f"fsync={results['postgres'].get('fsync')}, "
            f"synchronous_commit={results['postgres'].get('synchronous_commit')})"
        )
        pipeline.out(f"work dir {workdir}; services: uvicorn {' '.join(pipeline.uvicorn_flags())}")
        with contextlib.suppress(OSError):
            pipeline.out(f"load average before: {os.getloadavg()[0]:.2f} (the machine is shared)")
        pipeline.out(f"import: {args.members:,} members ...")
        results["import"] = i = await figure_import(infra_, args.members, workdir)
        pipeline.out(
            f"  CLI {i['cli']['seconds']:.1f} s ({i['cli']['cpu_s']:.1f} s CPU), raw {i['raw']['seconds']:.1f} s "
            f"({i['raw']['cpu_s']:.1f} s CPU); file {i['file_mb']:.1f} MB; {i['report']}"
        )
        pipeline.out(f"  rows: {i['rows']}; raw: {i['raw_rows']}")
        pipeline.out(f"search: {args.requests:,} requests, {args.concurrency} at a time ...")
        results["search"] = s = await figure_search(
            infra_, i["service_url"], args.members, args.requests, args.concurrency, workdir
        )
        pipeline.out(f"  pg_trgm: {'yes' if s['pg_trgm'] else 'NO (scans)'}; hits per page: {s['hits']}")
        for name, p95 in s["service"]["per_query_p95_ms"].items():
            pipeline.out(f"  {name:<22} p95 {p95:6.1f} ms   (bare {s['bare']['per_query_p95_ms'][name]:.1f} ms)")
        pipeline.out(
            f"  server CPU {s['service']['server_cpu_share']:.0%} (bare {s['bare']['server_cpu_share']:.0%}); "
            f"statuses {s['service']['statuses']} / {s['bare']['statuses']}"
        )
        with contextlib.suppress(OSError):
            pipeline.out(f"load average after: {os.getloadavg()[0]:.2f}")
        pipeline.out()
        for line in table(results):
            pipeline.out(line)
        out_dir = ROOT / "var" / "bench"
        out_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        (out_dir / f"members-{stamp}.json").write_text(json.dumps(results, indent=2, default=str))
    finally:
        await infra_.close()
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--members", type=int, default=100_000)
    p.add_argument("--requests", type=int, default=3_000)
    p.add_argument("--concurrency", type=int, default=10)
    p.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    p.add_argument("--http", choices=("httptools", "h11"), default="httptools")
    return p.parse_args(argv)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "_raw-import":  # the baseline, in a process of its own
        print(asyncio.run(raw_import(sys.argv[2], Path(sys.argv[3]))), "rows")
        sys.exit(0)
    sys.exit(pipeline.run_on("uvloop", main(parse_args())))
