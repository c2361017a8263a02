"""GDPR across the services: the export gathered from every service over NATS, and the erasure of a member from the
messaging tables and the stream.

**Export (Art. 15/20).** A service never calls another over HTTP. The one that is asked (members) publishes a request
on the core-NATS subject `EXPORT_SUBJECT` (not a stream: nothing is stored) with a reply inbox, and each service's
`ExportResponder` (a runtime worker, in a queue group per service so one instance of each answers) replies with its
part, cut into chunks when it is larger than the server's max_payload. `gather_export` waits until every expected
service has answered in full, or until the timeout: then it raises `ExportIncomplete` naming the silent ones and
those that could not answer (their database away): an export is never silently partial. The replies carry the
member's personal data: the subject is restricted to the services' NATS users (deploy/nats/nats.conf).

**Erasure (Art. 17).** `scrub_messaging` deletes the member's traces from a service's messaging tables in the caller's
transaction: outbox rows (published, pending or parked) and dead letters whose message names the member. The inbox
keeps its rows: they hold event ids and types only, and they keep a redelivered event from being applied twice.
`purge_before_notice` erases the member's events from a stream by subject, up to (not including) the erasure notice,
so the notice stays for every system that has yet to hear of it: each message overwritten on disk (secure delete),
then the range purged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from pydantic_core import to_json
from sqlalchemy import ColumnElement, Table, delete, func, or_
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .contracts import PERSONAL_DATA_EVENTS
from .db import is_outage, is_sqlite
from .messaging import MessagingTables

if TYPE_CHECKING:
    from .runtime import ServiceRuntime

log = logging.getLogger(__name__)

EXPORT_SUBJECT = "netvaerk.gdpr.export.v1"
SERVICE_HEADER = "Netvaerk-Gdpr-Service"
CHUNK_HEADER = "Netvaerk-Gdpr-Chunk"  # "<index>/<count>", from 1
HEADER_ROOM = 4096  # bytes of a reply left for its headers
DEFAULT_TIMEOUT = 5.0

Export = Callable[[AsyncEngine, UUID], Awaitable[dict[str, Any] | None]]


# -- export: the responder --------------------------------------------------------------------------------------
def encode_reply(service: str, status: str, part: dict[str, Any] | None, reason: str | None = None) -> bytes:
    """One service's answer: `status` ok (`part` is what it holds), none (it holds nothing) or error (`reason`)."""
    body: dict[str, Any] = {"service": service, "status": status, "part": part}
    if reason is not None:
        body["reason"] = reason
    return to_json(body)


def chunks(payload: bytes, size: int) -> list[bytes]:
    return [payload[i : i + size] for i in range(0, len(payload), size)] or [b""]


class ExportResponder:
    """The worker that answers export requests for one service with `export(engine, member_id)` (its views'
    member_export: the same as its `GET /members/{id}/export`). Each request is answered in a task of its own, so a
    slow one holds up no other and the service that gathers (members) answers itself while it waits."""

    name = "gdpr-export"

    def __init__(self, runtime: ServiceRuntime, export: Export, *, concurrency: int = 4) -> None:
        self.runtime = runtime
        self.export = export
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self.answered = 0  # requests answered (tests read it)

    def wake(self) -> None:
        pass  # requests arrive by themselves

    async def run(self, stop: asyncio.Event) -> None:
        nc = self.runtime.nc
        if nc is None:  # workers start once NATS is connected; should it not be, the runtime's guard retries
            raise RuntimeError("NATS not connected")
        service = self.runtime.service
        sub = await nc.subscribe(EXPORT_SUBJECT, queue=f"gdpr-export-{service}", cb=self._received)
        await nc.flush()
        try:
            await stop.wait()
        finally:
            try:
                await sub.unsubscribe()
            except Exception:
                pass
            for task in list(self._tasks):
                task.cancel()

    async def _received(self, msg: Msg) -> None:
        task = asyncio.create_task(self._answer(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, msg: Msg) -> None:
        service = self.runtime.service
        if not msg.reply:
            return
        try:
            member_id = UUID(str(json.loads(msg.data)["member_id"]))
        except (ValueError, KeyError, TypeError):
            await self._reply(msg, encode_reply(service, "error", None, "malformed request"))
            return
        async with self._slots:
            try:
                part = await self.export(self.runtime.engine, member_id)
            except Exception as exc:
                # the reason names the failure, never data: a database error's message may quote values
                reason = "database unavailable" if is_outage(exc) else f"export failed ({type(exc).__name__})"
                log.warning("GDPR export for member %s: %s", member_id, reason)
                payload = encode_reply(service, "error", None, reason)
            else:
                payload = encode_reply(service, "ok" if part is not None else "none", part)
        await self._reply(msg, payload)
        self.answered += 1

    async def _reply(self, msg: Msg, payload: bytes) -> None:
        nc = self.runtime.nc
        if nc is None or not msg.reply:
            return
        size = max(1024, int(getattr(nc, "max_payload", 0) or 1 << 20) - HEADER_ROOM)
        parts = chunks(payload, size)
        for index, chunk in enumerate(parts, start=1):
            headers = {SERVICE_HEADER: self.runtime.service, CHUNK_HEADER: f"{index}/{len(parts)}"}
            await nc.publish(msg.reply, chunk, headers=headers)
        await nc.flush()


# -- export: the gatherer ---------------------------------------------------------------------------------------
class ExportIncomplete(Exception):
    """Not every expected service answered in full (`silent`), or some could not (`failed`: service -> reason)."""

    def __init__(self, silent: Sequence[str], failed: dict[str, str]) -> None:
        self.silent = sorted(silent)
        self.failed = dict(sorted(failed.items()))
        said = []
        if self.silent:
            said.append("no answer from " + ", ".join(self.silent))
        if self.failed:
            said.append("; ".join(f"{s}: {r}" for s, r in self.failed.items()))
        super().__init__("; ".join(said))


@dataclass
class _Reply:
    count: int = 0
    chunks: dict[int, bytes] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.count > 0 and len(self.chunks) == self.count

    def body(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(b"".join(self.chunks[i] for i in range(1, self.count + 1)))
        return data


def _chunk_of(msg: Msg) -> tuple[str, int, int] | None:
    headers = msg.headers or {}
    try:
        index, count = (int(x) for x in headers[CHUNK_HEADER].split("/", 1))
        service = headers[SERVICE_HEADER]
    except (KeyError, ValueError):
        return None
    if not 1 <= index <= count:
        return None
    return service, index, count


async def gather_export(
    nc: Client, member_id: UUID, services: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT
) -> dict[str, dict[str, Any] | None]:
    """Every expected service's part of the member's export: service -> what it holds (None: nothing).

    Raises ExportIncomplete when a service did not answer in full within `timeout`, or answered that it could not.
    Answers from services not expected are ignored (logged once)."""
    expected = set(services)
    replies: dict[str, _Reply] = {s: _Reply() for s in expected}
    done = asyncio.Event()
    unexpected: set[str] = set()

    async def received(msg: Msg) -> None:
        chunk = _chunk_of(msg)
        if chunk is None:
            return
        service, index, count = chunk
        reply = replies.get(service)
        if reply is None:
            if service not in unexpected:
                unexpected.add(service)
                log.info("GDPR export: an answer from %s, which is not among the expected services", service)
            return
        reply.count = count
        reply.chunks[index] = msg.data
        if all(r.complete for r in replies.values()):
            done.set()

    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, cb=received)
    try:
        await nc.publish(EXPORT_SUBJECT, json.dumps({"member_id": str(member_id)}).encode(), reply=inbox)
        await nc.flush()
        try:
            await asyncio.wait_for(done.wait(), timeout)
        except TimeoutError:
            pass
    finally:
        try:
            await sub.unsubscribe()
        except Exception:
            pass
    silent = [s for s, r in replies.items() if not r.complete]
    parts: dict[str, dict[str, Any] | None] = {}
    failed: dict[str, str] = {}
    for service, reply in replies.items():
        if not reply.complete:
            continue
        try:
            body = reply.body()
        except ValueError:
            failed[service] = "answer not readable"
            continue
        if body.get("status") == "ok":
            parts[service] = body.get("part")
        elif body.get("status") == "none":
            parts[service] = None
        else:
            failed[service] = str(body.get("reason") or "could not answer")[:200]
    if silent or failed:
        raise ExportIncomplete(silent, failed)
    return parts


def expected_services(setting: str) -> list[str]:
    """The GDPR_EXPORT_SERVICES setting ("members,meetings,notifications") as a list."""
    return [s.strip() for s in setting.split(",") if s.strip()]


# -- erasure ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scrubbed:
    outbox: int
    dead_letters: int


async def scrub_messaging(conn: AsyncConnection, tables: MessagingTables, member_id: UUID) -> Scrubbed:
    """Delete the outbox rows and dead letters whose message names the member (their id in the body or as the last
    token of the subject: every event about a member carries the member's id), in the caller's transaction.

    Of the outbox rows not yet published (pending or parked) only those that carry personal data go (member.registered,
    member.updated: contracts.PERSONAL_DATA_EVENTS); an event that names the member by id only stays and is published
    as committed, since the platform loses nothing it committed. The caller writes the erasure notice (members) after
    this, so the notice itself is never taken. The inbox is left as it is: ids and types only, and it keeps a
    redelivered event from being applied again."""
    o, d = tables.outbox, tables.dead_letters
    sent_or_personal = or_(o.c.published_at.is_not(None), o.c.type.in_(sorted(PERSONAL_DATA_EVENTS)))
    outbox = await conn.execute(delete(o).where(_names(conn, o, member_id), sent_or_personal))
    dead = await conn.execute(delete(d).where(_names(conn, d, member_id)))
    return Scrubbed(outbox=outbox.rowcount or 0, dead_letters=dead.rowcount or 0)


def _names(conn: AsyncConnection, table: Table, member_id: UUID) -> ColumnElement[bool]:
    """The row's message names the member: in its body (bytes) or as its subject's last token."""
    needle = str(member_id).encode()
    if is_sqlite(conn):  # SQLite's LIKE never matches a BLOB; instr() searches its bytes
        in_body: ColumnElement[bool] = func.instr(table.c.body, needle) > 0
    else:  # PostgreSQL: bytea LIKE bytea
        in_body = table.c.body.op("LIKE")(b"%" + needle + b"%")
    return or_(in_body, table.c.subject.like(f"%.{member_id}"))


async def forget_on_disk(engine: AsyncEngine) -> None:
    """After an erasure has committed: on SQLite, checkpoint the write-ahead log into the database and truncate it, so
    the pages that held the member's rows before the erasure are not left behind in the -wal file (the database
    file itself holds zeros where they were: `secure_delete`, set on every connection in db.py). Best effort: a
    checkpoint that finds a reader in the way leaves the log for SQLite's own next checkpoint. PostgreSQL: nothing
    to do here; its dead row versions go with VACUUM (autovacuum), which the operator runs."""
    if not is_sqlite(engine):
        return
    async with engine.connect() as conn:
        # on the driver's connection: through SQLAlchemy's it would run inside the BEGIN it starts, where SQLite
        # refuses a checkpoint ("database table is locked")
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        await (await driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")).close()


async def purge_before_notice(js: JetStreamContext, stream: str, subject_filter: str, notice_subject: str) -> int:
    """Erase the messages of `stream` on `subject_filter` that came before the last message on `notice_subject` (the
    erasure notice, which matches the filter too and is kept). Returns the notice's stream sequence. Idempotent: a
    second call finds nothing more before the notice.

    Each message is first deleted one by one with JetStream's secure erase (STREAM.MSG.DELETE without `no_erase`:
    the server overwrites the message in its block file with random bytes), then the range is purged by subject as
    well. A purge alone only marks the messages deleted: their bytes stay in the stream's files on disk until the
    server compacts or drops the block, so the name and email would still be readable there.

    Raises nats.js.errors.NotFoundError when the notice is not in the stream (yet): then nothing is erased."""
    notice = await js.get_last_msg(stream, notice_subject)
    seq = int(notice.seq or 0)
    if seq <= 0:
        raise ValueError(f"no sequence for the notice on {notice_subject}")
    for found in await _sequences_before(js, stream, subject_filter, seq):
        with contextlib.suppress(NotFoundError):  # gone meanwhile (a second erasure, a purge, max_age)
            await js.delete_msg(stream, found)
    await js.purge_stream(stream, subject=subject_filter, seq=seq)
    return seq


async def _sequences_before(js: JetStreamContext, stream: str, subject_filter: str, before: int) -> list[int]:
    """The sequences of the messages on `subject_filter` below `before`, found with next_by_subj (a lookup per
    message: a member has a handful)."""
    found: list[int] = []
    at = 1
    while at < before:
        try:
            msg = await js.get_msg(stream, seq=at, subject=subject_filter, next=True)
        except NotFoundError:
            break
        msg_seq = int(msg.seq or 0)
        if msg_seq <= 0 or msg_seq >= before:
            break
        found.append(msg_seq)
        at = msg_seq + 1
    return found
