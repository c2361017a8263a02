"""The import registry of POST /admin/imports (entrypoints/imports_http.py): one import at a time per process, its
outcome (done, failed with a reason that repeats no value) and the stop that cancels a running one."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from members.entrypoints.cli import FileRefused
from members.entrypoints.imports_http import Busy, Imports, Run

NOW = datetime(2030, 3, 10, 12, 0, tzinfo=UTC)


def run() -> Run:
    return Run(import_id=uuid.uuid4(), dry_run=False, started_at=NOW)


async def test_one_import_at_a_time():
    imports, release = Imports(), asyncio.Event()

    async def work(r: Run) -> None:
        await release.wait()

    first = run()
    imports.start(first, work, lambda: NOW)
    with pytest.raises(Busy):
        imports.start(run(), work, lambda: NOW)
    release.set()
    assert imports.task is not None
    await imports.task
    assert first.status == "done" and first.finished_at == NOW
    imports.start(run(), work, lambda: NOW)  # the first is done: the next may start
    await imports.stop()


async def test_a_failure_is_reported_without_the_exception_message():
    imports = Imports()

    async def broken(r: Run) -> None:
        raise RuntimeError("duplicate key (email)=(mette@example.org)")

    failed = run()
    imports.start(failed, broken, lambda: NOW)
    assert imports.task is not None
    await imports.task
    assert failed.status == "failed" and "RuntimeError" in failed.errors[0].reason
    assert "mette@example.org" not in failed.errors[0].reason

    async def unreadable(r: Run) -> None:
        raise FileRefused("The file is empty: the first line must name the columns.")

    refused = run()
    imports.start(refused, unreadable, lambda: NOW)
    await imports.task
    assert refused.status == "failed" and refused.errors[0].line == 0 and "empty" in refused.errors[0].reason


async def test_stop_cancels_a_running_import():
    imports = Imports()

    async def forever(r: Run) -> None:
        await asyncio.Event().wait()

    running = run()
    imports.start(running, forever, lambda: NOW)
    await asyncio.sleep(0)
    await imports.stop()
    assert running.status == "failed" and running.finished_at == NOW
