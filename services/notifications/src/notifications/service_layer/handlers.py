"""Command handlers: one plain function per command, in HANDLERS; `handle(cmd, uow)` is the one way in for event
subscribers, the delivery worker and HTTP routes alike.

Each handler opens the unit of work, loads what it needs through `uow.repo`, lets the domain decide, saves and
commits; the events the deliveries recorded go to the outbox in that same transaction. Run by an event subscriber,
the unit of work is joined to the consumer's transaction, which also records the event in the inbox: an event seen
twice owes nothing twice.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..domain import commands, model
from ..domain.errors import DomainError, Forbidden, LeaseLost, NotFound, NotReady, Suppressed, TooMany
from ..domain.model import Delivery, Material
from . import webhook_handlers
from .unit_of_work import UnitOfWork

log = logging.getLogger(__name__)
DEFAULT_ZONE = "Europe/Copenhagen"  # reminders go at their local hour here, unless the meeting names its own zone


# -- what the other services published ----------------------------------------------------------------------------
async def record_group(cmd: commands.RecordGroup, uow: UnitOfWork) -> None:
    async with uow:
        await uow.repo.record_group(model.Group(cmd.group_id, cmd.name))
        await uow.commit()


async def record_contacts(cmd: commands.RecordContacts, uow: UnitOfWork) -> None:
    """Keep the contact directory current, and bring forward what was waiting for these contacts."""
    async with uow:
        now = uow.clock()
        await uow.repo.record_contacts(cmd.contacts, now)
        for delivery in await uow.repo.not_yet_due(list(dict.fromkeys(c.member_id for c in cmd.contacts)), now):
            if delivery.bring_forward(now):
                try:
                    await uow.repo.save(delivery)
                except LeaseLost:
                    pass  # the worker is at it right now: it looks again soon anyway
        await uow.commit()


async def record_joins(cmd: commands.RecordJoins, uow: UnitOfWork) -> None:
    """Keep the roster copy current, and owe each member who joined the welcome the domain decides."""
    async with uow:
        now = uow.clock()
        refused = await uow.repo.record_memberships(cmd.joins)  # joins older than a leaving: no welcome either
        await uow.repo.owe(
            [
                model.welcome(j.member_id, j.group_id, j.cause_event_id, now=now, traceparent=j.traceparent)
                for j in cmd.joins
                if (j.group_id, j.member_id) not in refused
            ]
        )
        await uow.commit()


async def record_leaving(cmd: commands.RecordLeaving, uow: UnitOfWork) -> None:
    """Off the roster copy (the row remembers the leaving, so an older join arriving later does not bring the
    member back); what is owed to them about the group's meetings that a member may turn off ends `skipped`.
    Transactional mail already owed (a cancellation, their own receipt, a seat) still goes: it is about them."""
    async with uow:
        now = uow.clock()
        await uow.repo.record_leaving(cmd.group_id, cmd.member_id, cmd.left_at)
        for delivery in await uow.repo.owed_about_group(cmd.member_id, cmd.group_id):
            if model.category_of(delivery.kind) is not None and delivery.withdraw("the member left the group", now):
                await uow.repo.save(delivery)
        await uow.commit()


async def record_role(cmd: commands.RecordRole, uow: UnitOfWork) -> None:
    async with uow:
        await uow.repo.record_role(cmd.group_id, cmd.member_id, cmd.role, cmd.changed_at or uow.clock())
        await uow.commit()


async def record_meeting(cmd: commands.RecordMeeting, uow: UnitOfWork) -> None:
    """Keep the meeting to render invitations from, and owe one to every member of its group."""
    meeting = cmd.meeting
    async with uow:
        known = await uow.repo.meeting(meeting.meeting_id)
        data = meeting.data
        copy = model.changed_meeting(
            known, meeting.meeting_id, meeting.group_id, meeting.sequence, fields=data, agenda=data.get("agenda", [])
        )
        await uow.repo.record_meeting(copy)
        await _plan_reminders(uow, copy)
        members = await _wanting(uow, await uow.repo.members_of(meeting.group_id), model.INVITATION)
        owed = model.invitations(
            meeting.meeting_id,
            meeting.sequence,
            members,
            cmd.cause_event_id,
            now=uow.clock(),
            traceparent=cmd.traceparent,
        )
        await uow.repo.owe(owed)
        await uow.commit()


async def record_reschedule(cmd: commands.RecordReschedule, uow: UnitOfWork) -> None:
    """The copy takes the meeting's new fields; every member of its group is owed an update for this version."""
    async with uow:
        known = await uow.repo.meeting(cmd.meeting_id)
        copy = model.changed_meeting(known, cmd.meeting_id, cmd.group_id, cmd.sequence, fields=cmd.fields)
        await uow.repo.record_meeting(copy)
        await _plan_reminders(uow, copy)  # moved: its reminders move with it
        members = await _wanting(uow, await uow.repo.members_of(cmd.group_id), model.MEETING_UPDATE)
        owed = model.meeting_updates(
            cmd.meeting_id,
            cmd.sequence,
            members,
            cmd.cause_event_id,
            previous_starts_at=cmd.previous_starts_at,
            now=uow.clock(),
            traceparent=cmd.traceparent,
        )
        await uow.repo.owe(owed)
        await uow.commit()


async def record_cancellation(cmd: commands.RecordCancellation, uow: UnitOfWork) -> None:
    """The copy is cancelled (what is still owed about it as planned is then skipped); every member of its group
    is owed the cancellation, whatever their preferences."""
    async with uow:
        known = await uow.repo.meeting(cmd.meeting_id)
        copy = model.changed_meeting(known, cmd.meeting_id, cmd.group_id, cmd.sequence, status=model.CANCELLED)
        await uow.repo.record_meeting(copy)
        await uow.repo.drop_reminders(cmd.meeting_id, "the meeting was cancelled", uow.clock())
        members = await uow.repo.members_of(cmd.group_id)
        owed = model.cancellations(
            cmd.meeting_id, members, cmd.cause_event_id, reason=cmd.reason, now=uow.clock(), traceparent=cmd.traceparent
        )
        await uow.repo.owe(owed)
        await uow.commit()


async def record_agenda(cmd: commands.RecordAgenda, uow: UnitOfWork) -> None:
    """The copy takes the new agenda. A meeting still to come owes its group one agenda notice per slot: at most
    one a window, the last edit always included; the slot is remembered per meeting in the same transaction.
    Minutes written after the meeting (`held`) are kept and owe nothing."""
    async with uow:
        known = await uow.repo.meeting(cmd.meeting_id)
        status = model.HELD if cmd.held else None
        copy = model.changed_meeting(
            known, cmd.meeting_id, cmd.group_id, cmd.sequence, agenda=list(cmd.agenda), status=status
        )
        await uow.repo.record_meeting(copy)
        if not cmd.held and copy.status == model.SCHEDULED:
            now = uow.clock()
            last_at = await uow.repo.agenda_notice(cmd.meeting_id)
            slot = model.agenda_slot(last_at, now, timedelta(seconds=cmd.window_seconds))
            members = await _wanting(uow, await uow.repo.members_of(cmd.group_id), model.AGENDA_UPDATE)
            owed = model.agenda_updates(
                cmd.meeting_id, slot, members, cmd.cause_event_id, now=now, traceparent=cmd.traceparent
            )
            await uow.repo.owe(owed)
            await uow.repo.record_agenda_notice(cmd.meeting_id, slot)
        await uow.commit()


async def record_rsvp(cmd: commands.RecordRsvp, uow: UnitOfWork) -> None:
    """Keep the member's latest answer (whom reminders go to), and owe the receipt of it."""
    async with uow:
        if cmd.answered_at is not None:
            await uow.repo.record_rsvp(
                model.Rsvp(
                    cmd.meeting_id,
                    cmd.member_id,
                    cmd.group_id,
                    cmd.response,
                    cmd.status,
                    cmd.waitlist_position,
                    cmd.answered_at,
                )
            )
        owed = model.rsvp_confirmation(
            cmd.meeting_id,
            cmd.member_id,
            cmd.cause_event_id,
            response=cmd.response,
            status=cmd.status,
            waitlist_position=cmd.waitlist_position,
            on_behalf_of=cmd.on_behalf_of,
            now=uow.clock(),
            traceparent=cmd.traceparent,
        )
        await uow.repo.owe([owed] if owed is not None else [])
        await uow.commit()


async def record_promotion(cmd: commands.RecordPromotion, uow: UnitOfWork) -> None:
    async with uow:
        await uow.repo.record_seat(cmd.meeting_id, cmd.member_id)
        owed = model.waitlist_promotion(
            cmd.meeting_id, cmd.member_id, cmd.cause_event_id, now=uow.clock(), traceparent=cmd.traceparent
        )
        await uow.repo.owe([owed])
        await uow.commit()


async def record_proposal_accepted(cmd: commands.RecordProposalAccepted, uow: UnitOfWork) -> None:
    async with uow:
        members = await _wanting(uow, [cmd.member_id], model.PROPOSAL_ACCEPTED)
        owed = [
            model.proposal_accepted(
                cmd.meeting_id,
                m,
                cmd.proposal_id,
                cmd.agenda_position,
                cmd.cause_event_id,
                now=uow.clock(),
                traceparent=cmd.traceparent,
            )
            for m in members
        ]
        await uow.repo.owe(owed)
        await uow.commit()


async def _plan_reminders(uow: UnitOfWork, copy: model.Meeting) -> None:
    """Plan the meeting's reminders anew from our copy (its time, its zone, the group's settings): the planned ones
    that are still to come are replaced, one done stays done."""
    if not copy.ready or copy.status != model.SCHEDULED:
        return
    settings = await uow.repo.reminder_settings(copy.group_id) or model.ReminderSettings()
    starts_at = datetime.fromisoformat(copy.data["starts_at"])
    now = uow.clock()
    if starts_at <= now:
        return  # a meeting of the past: nothing to remind of
    try:
        zone: tzinfo = ZoneInfo(copy.data.get("timezone") or DEFAULT_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo(DEFAULT_ZONE)
    await uow.repo.plan_reminders(
        copy.meeting_id, model.plan_reminders(copy.meeting_id, starts_at, zone, settings, now), now
    )


async def _wanting(uow: UnitOfWork, member_ids: list[Any], kind: str) -> list[Any]:
    """Those of `member_ids` who have not turned off the category of `kind` (all, for a transactional kind). The
    worker asks again before it sends: a member may turn it off in between."""
    category = model.category_of(kind)
    if category is None or not member_ids:
        return member_ids
    off = await uow.repo.turned_off(member_ids, category)
    return [m for m in member_ids if m not in off]


async def forget_member(cmd: commands.ForgetMember, uow: UnitOfWork) -> None:
    """GDPR erasure (MemberErased): nothing here names the member any more, and nothing is owed to them."""
    async with uow:
        await uow.repo.forget_member(cmd.member_id, cmd.erased_at)
        await uow.commit()


# -- the reminder worker's ----------------------------------------------------------------------------------------
async def send_due_reminders(cmd: commands.SendDueReminders, uow: UnitOfWork) -> tuple[int, int]:
    """Each reminder that is due becomes the deliveries it owes (who gets one is decided now: the roster, the
    answers and the preferences as they are), in one transaction with marking it done, so it is done at most once
    (and each delivery has its own unique key besides). Returns (reminders handled, deliveries owed)."""
    async with uow:
        now = uow.clock()
        owed_count = 0
        due = await uow.repo.due_reminders(now, cmd.limit)
        for planned in due:
            meeting = await uow.repo.meeting(planned.meeting_id)
            why_not = model.not_to_remind(planned, meeting, now)
            if why_not is not None or meeting is None:
                await uow.repo.finish_reminder(planned.id, model.SKIPPED, why_not, now)
                continue
            owed = model.reminders_owed(
                planned,
                await uow.repo.members_of(meeting.group_id),
                await uow.repo.rsvps_of(planned.meeting_id),
                planned.id,
                now=now,
            )
            wanting = set(await _wanting(uow, [d.member_id for d in owed], planned.kind))
            owed = [d for d in owed if d.member_id in wanting]
            await uow.repo.owe(owed)
            await uow.repo.finish_reminder(planned.id, model.DONE, None, now)
            owed_count += len(owed)
        await uow.commit()
    return len(due), owed_count


# -- the delivery worker's ----------------------------------------------------------------------------------------
async def lease_deliveries(cmd: commands.LeaseDeliveries, uow: UnitOfWork) -> list[Delivery]:
    """The due deliveries this worker now holds for one attempt each, oldest first."""
    async with uow:
        now = uow.clock()
        leased = await uow.repo.due(now, cmd.limit)
        for delivery in leased:
            delivery.lease(cmd.owner, now, now + timedelta(seconds=cmd.lease_seconds))
        await uow.repo.save_leases(leased)
        await uow.commit()
    return leased


async def release_deliveries(cmd: commands.ReleaseDeliveries, uow: UnitOfWork) -> None:
    """Give deliveries back untried, for any instance (those still ours)."""
    async with uow:
        for delivery_id in cmd.delivery_ids:
            delivery = await uow.repo.get(delivery_id)
            if delivery is not None and delivery.release(cmd.owner):
                await uow.repo.save(delivery)
        await uow.commit()


async def prepare_delivery(cmd: commands.PrepareDelivery, uow: UnitOfWork) -> tuple[Delivery, Material] | None:
    """What the message is made of. None when it cannot be made now: the wait for what has not arrived yet (or the
    failure of a payload that names nothing) is recorded instead."""
    async with uow:
        delivery = await _ours(uow, cmd.delivery_id)
        now = uow.clock()
        try:
            about = delivery.about
        except (KeyError, ValueError, TypeError) as exc:  # no group_id, not a UUID: it will not get better
            name = type(exc).__name__
            failure = model.cannot_be_sent(f"{name}: {exc}", f"payload: {name}")
            log.error("delivery %s cannot be built: %s", delivery.id, failure.error)
            delivery.attempt_failed(cmd.owner, failure, now, max_attempts=cmd.max_attempts)
            await uow.repo.save(delivery)
            await uow.commit()
            return None
        try:
            material = delivery.made_of(*await uow.repo.material(delivery, about))
        except NotReady as missing:
            delivery.wait_for_data(cmd.owner, missing, now, wait_seconds=cmd.wait_seconds)
            await uow.repo.save(delivery)
            await uow.commit()
            return None
        except Suppressed as rule:
            log.info("delivery %s skipped: %s", delivery.id, rule)
            delivery.skip(cmd.owner, str(rule), now)
            await uow.repo.save(delivery)
            await uow.commit()
            return None
        refused = model.marked_undeliverable(material.contact)
        if refused is not None:  # no SMTP round trip to an address that bounced for good
            log.info("delivery %s not attempted: %s", delivery.id, refused.reason)
            delivery.attempt_failed(cmd.owner, refused, now, max_attempts=cmd.max_attempts)
            await uow.repo.save(delivery)
            await uow.commit()
            return None
        await uow.commit()
    return delivery, material


async def mark_sent(cmd: commands.MarkSent, uow: UnitOfWork) -> None:
    """The commit point of the two-phase send: "sent" and NotificationSent, in one transaction."""
    async with uow:
        delivery = await _ours(uow, cmd.delivery_id)
        delivery.mark_sent(
            cmd.owner, uow.clock(), to_email=cmd.to_email, subject=cmd.subject, message_id=cmd.message_id
        )
        await uow.repo.save(delivery)
        await uow.commit()


async def record_failure(cmd: commands.RecordFailure, uow: UnitOfWork) -> Delivery:
    """An attempt that did not send: retried later, or failed for good (NotificationFailed). LeaseLost when the
    delivery is not ours any more: then it is left alone."""
    async with uow:
        delivery = await _ours(uow, cmd.delivery_id)
        delivery.attempt_failed(cmd.owner, cmd.failure, uow.clock(), max_attempts=cmd.max_attempts)
        await uow.repo.save(delivery)
        if cmd.refused_address is not None:
            await uow.repo.mark_undeliverable(delivery.member_id, cmd.refused_address, uow.clock(), cmd.failure.reason)
        await uow.commit()
    return delivery


async def undo_sent(cmd: commands.UndoSent, uow: UnitOfWork) -> Delivery:
    async with uow:
        delivery = await _ours(uow, cmd.delivery_id)
        delivery.refused_after_sent(cmd.failure, uow.clock())
        await uow.repo.save(delivery)
        await uow.commit()
    return delivery


# -- a coordinator's (or the administration's) -------------------------------------------------------------------
async def set_reminder_settings(cmd: commands.SetReminderSettings, uow: UnitOfWork) -> None:
    """A group's reminder timings; the meetings still to come are planned anew with them."""
    try:
        cmd.settings.check()
    except ValueError as exc:
        raise DomainError(f"Reminder settings out of bounds: {exc}.") from exc
    async with uow:
        if cmd.by is not None and await uow.repo.role_of(cmd.group_id, cmd.by) != "coordinator":
            raise Forbidden("Only the administration or a coordinator of the group may change its reminders.")
        if not await uow.repo.group_known(cmd.group_id):
            raise NotFound(f"This service knows no group {cmd.group_id}.")
        await uow.repo.set_reminder_settings(cmd.group_id, cmd.settings, uow.clock())
        for meeting in await uow.repo.meetings_of(cmd.group_id):
            await _plan_reminders(uow, meeting)
        await uow.commit()


# -- a member's (or the administration's) ------------------------------------------------------------------------
async def set_preferences(cmd: commands.SetPreferences, uow: UnitOfWork) -> None:
    async with uow:
        if not await uow.repo.knows(cmd.member_id):
            raise NotFound(f"This service knows no member {cmd.member_id}.")
        await uow.repo.set_preferences(cmd.preferences, uow.clock())
        await uow.commit()


async def unsubscribe(cmd: commands.Unsubscribe, uow: UnitOfWork) -> None:
    """Email off for one category, the language as it was; the same twice changes nothing."""
    async with uow:
        if not await uow.repo.knows(cmd.member_id):
            raise NotFound("No such subscription.")
        current = (await uow.repo.preferences(cmd.member_id)).get(cmd.category)
        language = current.language if current is not None else None
        await uow.repo.set_preferences(
            (model.Preference(cmd.member_id, cmd.category, email=False, language=language),), uow.clock()
        )
        await uow.commit()


# -- the web gateway's ---------------------------------------------------------------------------------------------
async def send_sign_in_mail(cmd: commands.SendSignInMail, uow: UnitOfWork) -> bool:
    """Owe the member the mail with their sign-in link. True when it is newly owed; False when this link was owed
    already (the gateway asked again): nothing more is owed, and the limit is not counted twice. The member's contact
    is locked for the transaction, so two requests at once cannot both slip under the limit."""
    async with uow:
        now = uow.clock()
        if not await uow.repo.lock_contact(cmd.member_id):
            raise NotFound(f"This service knows no member {cmd.member_id}.")
        owed = model.sign_in_mail(cmd.member_id, cmd.link_id, cmd.link, now=now, traceparent=cmd.traceparent)
        if await uow.repo.is_owed(owed.dedupe_key):
            await uow.commit()
            return False
        wait = model.sign_in_wait(
            await uow.repo.owed_since(cmd.member_id, model.SIGN_IN, now - model.SIGN_IN_WINDOW), now
        )
        if wait is not None:
            seconds = max(1, math.ceil(wait.total_seconds()))
            raise TooMany(
                f"At most {model.SIGN_IN_LIMIT} sign-in mails a member per "
                f"{int(model.SIGN_IN_WINDOW.total_seconds() // 60)} minutes; the next may go in {seconds} s.",
                seconds,
            )
        await uow.repo.owe([owed])
        await uow.commit()
    return True


# -- an operator's ------------------------------------------------------------------------------------------------
async def retry_delivery(cmd: commands.RetryDelivery, uow: UnitOfWork) -> None:
    """Send a failed delivery again: NotFound, or NotFailed unless it failed. Its cause was fixed, so an
    undeliverable mark on the member's address goes too (else the retry would fail at once, unattempted)."""
    async with uow:
        delivery = await uow.repo.get(cmd.delivery_id)
        if delivery is None:
            raise NotFound(f"No delivery {cmd.delivery_id}.")
        delivery.retry(uow.clock())
        await uow.repo.save(delivery)
        await uow.repo.clear_undeliverable(delivery.member_id)
        await uow.commit()


async def clear_undeliverable(cmd: commands.ClearUndeliverable, uow: UnitOfWork) -> None:
    async with uow:
        if not await uow.repo.clear_undeliverable(cmd.member_id):
            raise NotFound(f"This service knows no member {cmd.member_id}.")
        await uow.commit()


async def _ours(uow: UnitOfWork, delivery_id: Any) -> Delivery:
    delivery = await uow.repo.get(delivery_id)
    if delivery is None:
        raise LeaseLost(f"delivery {delivery_id} is gone")
    return delivery


HANDLERS: dict[type, Callable[[Any, UnitOfWork], Awaitable[Any]]] = {
    commands.RecordGroup: record_group,
    commands.RecordContacts: record_contacts,
    commands.RecordJoins: record_joins,
    commands.RecordLeaving: record_leaving,
    commands.RecordRole: record_role,
    commands.RecordMeeting: record_meeting,
    commands.RecordReschedule: record_reschedule,
    commands.RecordCancellation: record_cancellation,
    commands.RecordAgenda: record_agenda,
    commands.RecordRsvp: record_rsvp,
    commands.RecordPromotion: record_promotion,
    commands.RecordProposalAccepted: record_proposal_accepted,
    commands.ForgetMember: forget_member,
    commands.SendDueReminders: send_due_reminders,
    commands.SetReminderSettings: set_reminder_settings,
    commands.SetPreferences: set_preferences,
    commands.Unsubscribe: unsubscribe,
    commands.LeaseDeliveries: lease_deliveries,
    commands.ReleaseDeliveries: release_deliveries,
    commands.PrepareDelivery: prepare_delivery,
    commands.MarkSent: mark_sent,
    commands.RecordFailure: record_failure,
    commands.UndoSent: undo_sent,
    commands.RetryDelivery: retry_delivery,
    commands.ClearUndeliverable: clear_undeliverable,
    commands.SendSignInMail: send_sign_in_mail,
}


HANDLERS.update(webhook_handlers.HANDLERS)


async def handle(cmd: object, uow: UnitOfWork) -> Any:
    return await HANDLERS[type(cmd)](cmd, uow)
