"""HTTP API for the administration's CSV import: the CLI's import (cli.py: the same parsing, rules and batches)
started from a request and run in the background of this process, with its progress to ask for.

The progress lives in this process's memory only: a restart forgets it (and stops a running import). What is
promised instead is the CLI's: the lines already imported stay, and the same file again changes nothing, so an
import cut short is finished by sending the whole file again. One import at a time per process (409 meanwhile):
imports are rare, and one at a time keeps them from competing for the same groups' seats."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field

from netvaerk_shared.http import Caller, Problem, Runtime, problems, protected_router
from netvaerk_shared.inputs import Flag, Multiline

from ..service_layer.bulk import LineError
from .cli import FileRefused, Report, import_rows, parse

log = logging.getLogger(__name__)

MAX_CSV = 1_000_000  # characters: with the JSON around it, within the edge's default body limit of 1 MiB
MAX_ERRORS = 100  # refused lines listed in the progress (all are counted)
KEPT = 50  # finished imports whose progress can still be asked for
BATCH_SIZE = 200  # lines per transaction: the progress moves at least this often

Status = Literal["running", "done", "failed"]


class ImportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    csv: Annotated[
        str,
        Multiline(
            MAX_CSV,
            description="The file's text, as a spreadsheet saves it as CSV (see the CLI: columns, delimiters). "
            "Tabs and line breaks are kept; other control characters are refused.",
        ),
    ]
    dry_run: Flag = Field(default=False, description="Check every line against the database, write nothing")


class ImportStarted(BaseModel):
    import_id: UUID
    status: Status = Field(description="running (the import goes on in the background)", examples=["running"])


class ImportLineError(BaseModel):
    line: int = Field(description="The line of the file (the header is line 1; line 0: the import as a whole)")
    column: str = Field(description="The column at fault, or - for the line as a whole")
    reason: str = Field(description="What is wrong, without the value (personal data)")


class ImportProgress(BaseModel):
    import_id: UUID
    status: Status = Field(
        description="running; done: every line read; failed: the file could not be read at all "
        "(its reason in errors) or the import stopped (the lines before it are in)"
    )
    dry_run: bool
    lines_read: int = Field(description="Lines read so far (the header and empty lines not counted)")
    imported: int = Field(description="New members registered (or that would be, on a dry run)")
    existing: int = Field(description="Lines whose member was registered already (their profile left as it is)")
    joined: int = Field(description="New group seats taken (or that would be)")
    refused: int = Field(description="Lines refused: each leaves nothing behind")
    errors: list[ImportLineError] = Field(description=f"The first {MAX_ERRORS} refused lines, in the order found")
    started_at: datetime
    finished_at: datetime | None


@dataclass
class Run:
    """One import's progress, updated by its task as the batches go in."""

    import_id: UUID
    dry_run: bool
    started_at: datetime
    status: Status = "running"
    report: Report = field(default_factory=Report)
    errors: list[LineError] = field(default_factory=list)
    finished_at: datetime | None = None

    def refuse(self, error: LineError) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(error)

    def out(self) -> dict[str, Any]:
        r = self.report
        return {
            "import_id": self.import_id,
            "status": self.status,
            "dry_run": self.dry_run,
            "lines_read": r.lines,
            "imported": r.registered,
            "existing": r.existing,
            "joined": r.joined,
            "refused": r.refused,
            "errors": [{"line": e.line, "column": e.field, "reason": e.reason} for e in self.errors],
            "started_at": self.started_at,
            "finished_at": self.finished_at,
        }


class Busy(Exception):
    pass


class Imports:
    """The imports of this process: at most one running, the last KEPT remembered."""

    def __init__(self) -> None:
        self.runs: dict[UUID, Run] = {}
        self.task: asyncio.Task[None] | None = None

    def start(self, run: Run, work: Callable[[Run], Awaitable[None]], now: Callable[[], datetime]) -> None:
        """Run `work(run)` in the background; Busy while another import runs."""
        if self.task is not None and not self.task.done():
            raise Busy
        self.runs[run.import_id] = run
        for old in list(self.runs)[:-KEPT]:
            del self.runs[old]
        self.task = asyncio.create_task(self._run(run, work, now), name=f"members-import-{run.import_id}")

    async def _run(self, run: Run, work: Callable[[Run], Awaitable[None]], now: Callable[[], datetime]) -> None:
        try:
            await work(run)
        except FileRefused as exc:
            run.status = "failed"
            run.errors.insert(0, LineError(0, "-", str(exc)))
        except Exception as exc:
            # the message may quote a value from the database (personal data): the log and the answer name its kind
            log.error("import %s stopped after %d lines: %s", run.import_id, run.report.lines, type(exc).__name__)
            run.status = "failed"
            run.errors.insert(
                0,
                LineError(
                    0,
                    "-",
                    f"The import stopped after {run.report.lines} lines ({type(exc).__name__}): the lines "
                    "imported stay; send the same file again to finish it.",
                ),
            )
        else:
            run.status = "done"
        finally:
            del run.errors[MAX_ERRORS:]
            if run.status == "running":  # cancelled: the process stops
                run.status = "failed"
            run.finished_at = now()

    async def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            try:
                await asyncio.wait_for(self.task, timeout=10)
            except (asyncio.CancelledError, TimeoutError):
                pass


def install(app: FastAPI) -> None:
    """Give the app its imports, stopped (a running one cancelled) before the service's runtime stops."""
    imports = app.state.imports = Imports()
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with inner(app):
            try:
                yield
            finally:
                await imports.stop()

    app.router.lifespan_context = lifespan


def _imports(request: Request) -> Imports:
    imports: Imports = request.app.state.imports
    return imports


router = protected_router()
DESCRIPTION = (
    "Starts the import of a CSV file, as `python -m members.entrypoints.cli import` does it (the same columns, rules "
    "and per-line report; see the CLI), in the background: 202 with the id to follow at "
    "GET /admin/imports/{import_id}. The file's text goes in the JSON body, so the service's body limit "
    "(MAX_BODY_BYTES, 1 MiB by default) bounds the file: larger files go through the CLI. A file that cannot be read "
    "at all (no header line, an unknown or missing column) makes the import `failed` with the reason. Safe to run "
    "again: members are found by email address and seats by member and group, so the same file twice changes nothing "
    "the second time. The progress is kept in this process's memory: a restart forgets a running import's progress "
    "(the lines already imported stay; send the same file again). One import at a time: 409 while one runs."
)


@router.post(
    "/admin/imports",
    status_code=202,
    tags=["administration"],
    summary="Import members and their group seats from a CSV file, in the background (the administration only)",
    description=DESCRIPTION,
    response_model=ImportStarted,
    responses=problems(403, 409),
)
async def start_import(body: ImportIn, runtime: Runtime, caller: Caller, request: Request) -> dict[str, Any]:
    caller.require_admin()
    run = Run(import_id=uuid4(), dry_run=body.dry_run, started_at=runtime.clock())
    text = body.csv

    async def work(run: Run) -> None:
        parsed = parse(io.StringIO(text, newline=""))
        await import_rows(
            runtime,
            parsed.rows,
            dry_run=run.dry_run,
            batch_size=BATCH_SIZE,
            report=run.report,
            refused=run.refuse,
        )

    try:
        _imports(request).start(run, work, runtime.clock)
    except Busy:
        raise Problem(409, "An import is running already: wait until it is done (GET /admin/imports/{id}).") from None
    return {"import_id": run.import_id, "status": run.status}


@router.get(
    "/admin/imports/{import_id}",
    tags=["administration"],
    summary="How an import goes: its counts and refused lines (the administration only)",
    description="Kept in this process's memory: a restart forgets it (404), as it does an import long finished.",
    response_model=ImportProgress,
    responses=problems(403, 404),
)
async def import_progress(import_id: UUID, caller: Caller, request: Request) -> dict[str, Any]:
    caller.require_admin()
    run = _imports(request).runs.get(import_id)
    if run is None:
        raise Problem(404, f"No import {import_id} in this process (a restart forgets them).")
    return run.out()
