"""The delivery worker: sends what is owed, exactly once as far as SMTP allows, and records it.

Each due delivery is leased (so several instances never send the same one), rendered, and handed to the two-phase
mailer: the message body goes out inside DATA, then "sent" and the NotificationSent outbox row commit together, and
only then does the final "." make the server take the message. A crash before that commit leaves nothing delivered
and the lease runs out, so another attempt follows; the worst case left is a lost message in the microseconds between
the commit and the ".", never a duplicate.

Each delivery is its own unit: whatever goes wrong with one (it cannot be built, the server refuses it) is recorded on
that row and the batch goes on. Temporary trouble (what it needs has not arrived, the SMTP server is away or answers
4xx) is retried with backoff; a delivery that can never go (building it raises, a 5xx, an invalid address) ends
`failed` with its reason and is announced by a NotificationFailed, written to the outbox in the same transaction.
Only trouble that is no delivery's own stops a batch (the SMTP server away, our database failing): the rest of it
is given back untried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from netvaerk_shared import contracts, tracing
from netvaerk_shared.contracts.notifications import NotificationFailed
from netvaerk_shared.db import is_sqlite
from netvaerk_shared.envelope import make_event
from netvaerk_shared.outbox import enqueue, notify_channel

from ..adapters import orm
from ..adapters.calendar import build_invitation_ics
from ..adapters.mailer import (
    InvalidAddress,
    SmtpError,
    SmtpOutcomeUnknown,
    SmtpRejected,
    SmtpTransient,
    build_message,
    make_address,
)
from ..adapters.safe_text import error_text, one_line
from ..adapters.templates import agenda_description, render_invitation, render_welcome
from ..domain import model

log = logging.getLogger(__name__)
d = orm.deliveries


# Trouble with our own database (or the network under it), not with one delivery: it stops the batch.
INFRASTRUCTURE_ERRORS = (SQLAlchemyError, OSError, asyncio.TimeoutError)
_ENHANCED_STATUS = re.compile(r"(?<![\w.@])[245]\.\d{1,3}\.\d{1,3}(?![\w.@])")  # RFC 3463, e.g. 5.1.1


class NotReady(Exception):
    """What the message needs (contact, group, meeting) has not arrived yet: try again later."""

    def __init__(self, missing: str, detail: str) -> None:
        super().__init__(detail)
        self.missing = missing  # "contact", "group", "meeting": goes into NotificationFailed.reason when we give up


class Undeliverable(Exception):
    """This delivery can never be built: retrying cannot help. `reason` is short and holds no personal data."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class LeaseLost(Exception):
    """Another instance took this delivery over (our lease ran out): send nothing."""


class DeliveryWorker:
    def __init__(self, runtime, settings, mailer, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        # A MAIL_FROM that is not one valid address would fail every delivery: refuse it here, at start-up.
        make_address(settings.mail_from, settings.mail_from_name)
        self.runtime = runtime
        self.engine = runtime.engine
        self.settings = settings
        self.mailer = mailer
        self.clock = clock
        self.owner = uuid.uuid4().hex
        self._wake = asyncio.Event()
        self.sent = 0

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    handled = await self.run_once()
                except Exception:
                    log.exception("delivery worker: batch failed; retrying in 2s")
                    handled = 0
                    await asyncio.sleep(2)
                if handled:
                    continue
                try:
                    await asyncio.wait_for(self._wake.wait(), 1.0)
                except TimeoutError:
                    pass
        finally:
            await self.mailer.close()

    async def run_once(self) -> int:
        rows = await self._claim()
        for i, row in enumerate(rows):
            try:
                smtp_up = await self._deliver(row)
            except BaseException:
                # Our database failed us (or we are cancelled): give the rest back for any instance and let run()
                # back off. This row keeps its lease until it runs out, which spaces out its next attempt.
                with contextlib.suppress(Exception):
                    await self._release(rows[i + 1 :])
                raise
            if not smtp_up:
                # the SMTP server is away: give the rest back instead of knocking on a closed door for each
                await self._release(rows[i + 1 :])
                return 0
        return len(rows)

    async def _release(self, rows) -> None:
        if rows:
            async with self.engine.begin() as conn:
                await conn.execute(
                    update(d)
                    .where(and_(d.c.id.in_([r.id for r in rows]), d.c.lease_owner == self.owner))
                    .values(lease_owner=None, lease_until=None)
                )

    async def _claim(self):
        now = self.clock()
        due = (
            select(d.c.id)
            .where(
                d.c.status == "pending",
                d.c.next_attempt_at <= now,
                or_(d.c.lease_until.is_(None), d.c.lease_until < now),
            )
            .order_by(d.c.created_at)
            .limit(self.settings.delivery_batch_size)
        )
        if not is_sqlite(self.engine):
            due = due.with_for_update(skip_locked=True)
        lease_until = now + timedelta(seconds=self.settings.delivery_lease_seconds)
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(d).where(d.c.id.in_(due)).values(lease_owner=self.owner, lease_until=lease_until).returning(*d.c)
            )
            rows = result.all()
        return sorted(rows, key=lambda r: r.created_at)

    async def _deliver(self, row) -> bool:
        """Try one delivery and record the outcome on its row. False when the SMTP server could not be reached (the
        caller stops the batch). Raises only for trouble with our own database (INFRASTRUCTURE_ERRORS)."""
        token = tracing.current_traceparent.set(tracing.child_of((row.payload or {}).get("traceparent")))
        try:
            try:
                message, subject, to_email = await self._render(row)
            except NotReady as exc:
                await self._wait_for_data(row, exc)
                return True
            except Undeliverable as exc:
                log.error("delivery %s cannot be built: %s", row.id, exc)
                await self._retry(row, str(exc), exc.reason, permanent=True, counts=True)
                return True

            pending: list[asyncio.Future] = []
            committing = False

            async def commit_point() -> None:
                nonlocal committing
                committing = True
                await self._mark_sent(row, subject, to_email, message["Message-ID"], pending)

            try:
                try:
                    await self.mailer.send(message, before_commit_point=commit_point)
                finally:
                    for task in pending:
                        try:
                            await task
                        except Exception:
                            # the "." went out but "sent" did not commit: the delivery stays pending and will be
                            # sent again -- the one case left that can double a message (a database failing its COMMIT)
                            log.exception("delivery %s: commit failed after the message was released", row.id)
            except LeaseLost:
                log.info("delivery %s taken over by another instance", row.id)
                return True
            except SmtpOutcomeUnknown as exc:
                log.error("delivery %s: no reply to the final dot; kept as sent (may be lost): %s", row.id, exc)
                return True
            except SmtpError as exc:
                permanent = isinstance(exc, SmtpRejected) and exc.permanent
                if exc.committed:
                    await self._undo_sent(row, str(exc), smtp_reason(exc), permanent)
                else:
                    # SMTP trouble that is not the message's fault is retried until it passes: never given up on
                    await self._retry(row, str(exc), smtp_reason(exc), permanent=permanent, counts=permanent)
                return isinstance(exc, SmtpRejected)
            except Exception as exc:
                if committing and isinstance(exc, INFRASTRUCTURE_ERRORS):
                    raise  # our own commit failed: the database's trouble, not this delivery's
                detail = f"{type(exc).__name__}: {exc}"
                if not committing and isinstance(exc, (OSError, asyncio.TimeoutError)):
                    # network trouble the mailer let through: as SmtpTransient
                    await self._retry(row, detail, "smtp unreachable", permanent=False, counts=False)
                    return False
                # The mailer could not put this message on the wire at all (it cannot be flattened, has no
                # recipient, its "sent" cannot even be written, ...): nothing went out, and nothing ever will.
                log.error("delivery %s cannot be sent: %s", row.id, detail)
                await self._retry(row, detail, f"send: {type(exc).__name__}", permanent=True, counts=True)
                return True
            self.sent += 1
            log.info("sent %s to member %s", row.kind, row.member_id, extra={"delivery_id": str(row.id)})
            return True
        finally:
            tracing.current_traceparent.reset(token)

    async def _render(self, row):
        """(message, subject, recipient address). Raises NotReady, Undeliverable, or INFRASTRUCTURE_ERRORS."""
        try:
            contact, group, meeting = await self._load(row)
        except (NotReady, *INFRASTRUCTURE_ERRORS):
            raise
        except Exception as exc:  # a payload we cannot read (no group_id, not a UUID): it will not get better
            raise Undeliverable(f"payload: {type(exc).__name__}", f"{type(exc).__name__}: {exc}") from exc
        try:
            return self._build(row, contact, group, meeting)
        except InvalidAddress as exc:
            raise Undeliverable("invalid recipient address", f"{type(exc).__name__}: {exc}") from exc
        except Exception as exc:  # building is pure: what fails once fails every time
            raise Undeliverable(f"build: {type(exc).__name__}", f"{type(exc).__name__}: {exc}") from exc

    async def _load(self, row):
        """What the message is made of: (contact, group or None, meeting or None)."""
        async with self.engine.connect() as conn:
            contact = (
                await conn.execute(select(orm.contacts).where(orm.contacts.c.member_id == row.member_id))
            ).first()
            if contact is None:
                raise NotReady("contact", f"no contact yet for member {row.member_id}")
            if row.kind == model.WELCOME:
                group = (
                    await conn.execute(
                        select(orm.groups).where(orm.groups.c.group_id == uuid.UUID(row.payload["group_id"]))
                    )
                ).first()
                if group is None:
                    raise NotReady("group", f"group {row.payload['group_id']} not known yet")
                return contact, group, None
            meeting = (
                await conn.execute(
                    select(orm.meetings).where(orm.meetings.c.meeting_id == uuid.UUID(row.payload["meeting_id"]))
                )
            ).first()
            if meeting is None:
                raise NotReady("meeting", f"meeting {row.payload['meeting_id']} not known yet")
            group = (await conn.execute(select(orm.groups).where(orm.groups.c.group_id == meeting.group_id))).first()
            return contact, group, meeting

    def _build(self, row, contact, group, meeting):
        if meeting is None:
            subject, body = render_welcome(contact.locale, member_name=contact.name, group_name=group.name)
            ics = None
        else:
            subject, body, ics = self._invitation(contact, meeting.data, group.name if group else "")
        message = build_message(
            message_id=str(row.id),
            from_addr=self.settings.mail_from,
            from_name=self.settings.mail_from_name,
            to_addr=contact.email,
            to_name=contact.name,
            subject=subject,
            text_body=body,
            ics=ics,
            locale=contact.locale,
        )
        return message, str(message["Subject"]), contact.email

    def _invitation(self, contact, data: dict, group_name: str):
        meeting = contracts.MeetingScheduled.model_validate(data)
        zone = ZoneInfo(meeting.timezone)
        start_local, end_local = meeting.starts_at.astimezone(zone), meeting.ends_at.astimezone(zone)
        location = None
        if meeting.venue is not None:
            location = ", ".join(p for p in (meeting.venue.name, meeting.venue.address) if p)
        agenda = [a.model_dump(mode="json") for a in meeting.agenda]
        subject, body = render_invitation(
            contact.locale,
            member_name=contact.name,
            group_name=group_name,
            title=meeting.title,
            starts_at_local=start_local,
            ends_at_local=end_local,
            location=location,
            online_url=meeting.online_url,
            agenda=agenda,
        )
        ics = build_invitation_ics(
            meeting_id=str(meeting.meeting_id),
            sequence=meeting.sequence,
            title=meeting.title,
            starts_at=meeting.starts_at,
            ends_at=meeting.ends_at,
            timezone=meeting.timezone,
            location=location,
            online_url=meeting.online_url,
            description=agenda_description(contact.locale, agenda, starts_at_local=start_local),
            organizer_email=self.settings.mail_from,
            organizer_name=self.settings.mail_from_name,
            attendee_email=contact.email,
            attendee_name=contact.name,
            dtstamp=self.clock(),
        )
        return subject, body, ics

    async def _mark_sent(self, row, subject: str, to_email: str, message_id: str, pending: list) -> None:
        """The commit point: "sent" and its NotificationSent outbox row, in one transaction.

        On PostgreSQL the COMMIT is put on the wire and this returns at once, so the mailer writes the final "." in
        the same breath: a process killed between the two writes is the only way to lose a message, and a kill
        after both still commits (the server has the COMMIT) and delivers (the SMTP server has the "."). The commit's
        outcome is awaited after the send (`pending`). On SQLite the commit is local and finishes first."""
        now = self.clock()
        event = make_event(
            contracts.NotificationSent(
                notification_id=row.id,
                member_id=row.member_id,
                kind=row.kind,
                channel="email",
                cause_event_id=row.cause_event_id,
                sent_at=now,
            ),
            causationid=str(row.cause_event_id),
        )
        conn = await self.engine.connect()
        trans = await conn.begin()
        try:
            result = await conn.execute(
                update(d)
                .where(and_(d.c.id == row.id, d.c.status == "pending", d.c.lease_owner == self.owner))
                .values(
                    status="sent",
                    sent_at=now,
                    subject=subject[:300],
                    to_email=to_email,
                    message_id=message_id,
                    attempts=d.c.attempts + 1,
                    lease_owner=None,
                    lease_until=None,
                    last_error=None,
                )
            )
            if result.rowcount != 1:
                raise LeaseLost(str(row.id))
            await enqueue(
                conn,
                orm.messaging,
                [event],
                [f"notifications.notification.sent.v1.{row.id}"],
                notify=notify_channel("notifications") if self.runtime.relay is None else None,
            )
        except BaseException:
            await trans.rollback()
            await conn.close()
            raise

        async def finish() -> None:
            try:
                await trans.commit()
            finally:
                await conn.close()
            self.runtime.wake_relay()

        if is_sqlite(self.engine):
            await finish()
            return
        task = asyncio.ensure_future(finish())
        pending.append(task)
        await asyncio.sleep(0)  # one step: asyncpg has written the COMMIT to its socket

    def _failed(self, row, reason: str, permanent: bool):
        """The NotificationFailed CloudEvent for `row` and its subject."""
        data = NotificationFailed(
            notification_id=row.id,
            member_id=row.member_id,
            kind=row.kind,
            channel="email",
            cause_event_id=row.cause_event_id,
            reason=one_line(reason)[:200] or "unknown",
            permanent=permanent,
        )
        return make_event(data, causationid=str(row.cause_event_id)), data.nats_subject()

    async def _announce_failed(self, conn, row, reason: str, permanent: bool) -> None:
        event, subject = self._failed(row, reason, permanent)
        await enqueue(
            conn,
            orm.messaging,
            [event],
            [subject],
            notify=notify_channel("notifications") if self.runtime.relay is None else None,
        )

    async def _wait_for_data(self, row, exc: NotReady) -> None:
        """What the message needs has not arrived from the other services yet: look again soon, without counting an
        attempt, and fail (not permanently) only once it has waited `delivery_wait_seconds`. The consumers also
        bring a waiting delivery forward when its contact arrives."""
        now = self.clock()
        created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
        waited = (now - created).total_seconds()
        if waited >= self.settings.delivery_wait_seconds:
            await self._retry(
                row,
                f"{exc} after {waited:.0f} s",
                f"not ready: no {exc.missing}",
                permanent=True,
                counts=True,
                announce_permanent=False,
            )
            return
        async with self.engine.begin() as conn:
            await conn.execute(
                update(d)
                .where(and_(d.c.id == row.id, d.c.status == "pending", d.c.lease_owner == self.owner))
                .values(
                    last_error=error_text(f"waiting: {exc}"),
                    lease_owner=None,
                    lease_until=None,
                    next_attempt_at=now + model.wait_delay(waited),
                )
            )

    async def _retry(
        self, row, error: str, reason: str, *, permanent: bool, counts: bool, announce_permanent: bool | None = None
    ) -> None:
        """Record an attempt that did not send: back to pending with backoff, or, when `permanent` or (if `counts`)
        out of attempts, `failed` together with its NotificationFailed. `error` is the full story for our own
        database; `reason` the short one, without personal data, for the event."""
        attempts = row.attempts + 1
        give_up = counts and model.gives_up(attempts, self.settings.delivery_max_attempts, permanent)
        error = error_text(error)
        async with self.engine.begin() as conn:
            # Only while the lease is ours: after a slow attempt another instance may have taken over (or sent it).
            result = await conn.execute(
                update(d)
                .where(and_(d.c.id == row.id, d.c.status == "pending", d.c.lease_owner == self.owner))
                .values(
                    status="failed" if give_up else "pending",
                    attempts=attempts,
                    last_error=error,
                    next_attempt_at=self.clock() + model.retry_delay(attempts),
                    lease_owner=None,
                    lease_until=None,
                )
            )
            ours = result.rowcount == 1
            if ours and give_up:
                await self._announce_failed(
                    conn, row, reason, permanent if announce_permanent is None else announce_permanent
                )
        if not ours:
            log.info("delivery %s taken over by another instance; leaving it alone (%s)", row.id, error)
            return
        if give_up:
            self.runtime.wake_relay()
        (log.error if give_up else log.warning)(
            "delivery %s %s: %s", row.id, "failed for good" if give_up else "will be retried", error
        )

    async def _undo_sent(self, row, error: str, reason: str, permanent: bool) -> None:
        """The server refused at the final dot, after we committed "sent": put the delivery back (or fail it, with a
        NotificationFailed after the NotificationSent that already went out)."""
        attempts = row.attempts + 1
        give_up = permanent  # a 4xx at the dot is the server's trouble, not the message's: retried until it passes
        async with self.engine.begin() as conn:
            await conn.execute(
                update(d)
                .where(d.c.id == row.id)
                .values(
                    status="failed" if give_up else "pending",
                    sent_at=None,
                    last_error=error_text(error),
                    next_attempt_at=self.clock() + model.retry_delay(attempts),
                )
            )
            if give_up:
                await self._announce_failed(conn, row, reason, permanent=True)
        if give_up:
            self.runtime.wake_relay()
        log.error("delivery %s refused after commit (%s); NotificationSent for it was already published", row.id, error)


def smtp_reason(exc: SmtpError) -> str:
    """'smtp 550 5.1.1', 'smtp 451', 'smtp unreachable': the reply code (and RFC 3463 status), never the reply text,
    which may quote the address."""
    code = getattr(exc, "code", None)
    if code is None:
        return "smtp unreachable" if isinstance(exc, SmtpTransient) else f"smtp {type(exc).__name__}"
    enhanced = _ENHANCED_STATUS.search(getattr(exc, "message", None) or str(exc))
    return f"smtp {code}" + (f" {enhanced.group()}" if enhanced else "")


async def retry_failed(engine, notification_id, now: datetime) -> str:
    """An operator sends a failed delivery again (after fixing an address, a template, the SMTP account): it goes back
    to pending with fresh attempts. Returns "retried", "not_found" or "not_failed". Still at most once: the row's
    unique key is unchanged, and a delivery that was sent can never be retried."""
    async with engine.begin() as conn:
        row = (await conn.execute(select(d.c.status).where(d.c.id == notification_id))).first()
        if row is None:
            return "not_found"
        if row.status != "failed":
            return "not_failed"
        await conn.execute(
            update(d)
            .where(and_(d.c.id == notification_id, d.c.status == "failed"))
            .values(
                status="pending", attempts=0, next_attempt_at=now, lease_owner=None, lease_until=None, created_at=now
            )
        )  # a fresh wait for its data, too
    return "retried"
