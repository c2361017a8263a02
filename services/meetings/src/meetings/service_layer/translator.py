"""Domain events -> public integration events (the v1 contracts)."""

from __future__ import annotations

from uuid import UUID

from netvaerk_shared import contracts
from netvaerk_shared.contracts import meetings as plan
from netvaerk_shared.contracts import meetings as seats

from ..domain import events, proposal, rsvp
from ..domain.model import Meeting
from ..domain.proposal import Proposal


def to_contract(event: object, aggregate: Meeting) -> contracts.EventData:
    if isinstance(event, rsvp.AnswerRecorded | rsvp.Promoted | rsvp.AttendanceNoted):
        return _seat_contract(event, aggregate.group_id)  # issue 9: seats
    if isinstance(event, events.MeetingScheduled) and isinstance(aggregate, Meeting):
        m = aggregate
        return contracts.MeetingScheduled(
            meeting_id=m.id,
            group_id=m.group_id,
            series_id=m.series_id,
            title=m.title,
            starts_at=m.starts_at,
            ends_at=m.ends_at,
            timezone=m.timezone,
            venue=_venue(m),
            online_url=m.online_url,
            capacity=m.capacity,
            rsvp_deadline=m.rsvp_deadline,
            agenda=_agenda(m),
            sequence=m.sequence,
        )
    # -- the meeting's life and its agenda (issue 9: plan)
    if isinstance(event, events.MeetingRescheduled) and isinstance(aggregate, Meeting):
        m = aggregate
        return plan.MeetingRescheduled(
            meeting_id=m.id,
            group_id=m.group_id,
            series_id=m.series_id,
            title=m.title,
            starts_at=m.starts_at,
            ends_at=m.ends_at,
            timezone=m.timezone,
            venue=_venue(m),
            online_url=m.online_url,
            capacity=m.capacity,
            rsvp_deadline=m.rsvp_deadline,
            previous_starts_at=event.previous_starts_at,
            sequence=m.sequence,
        )
    if isinstance(event, events.MeetingCancelled) and isinstance(aggregate, Meeting):
        m = aggregate
        return plan.MeetingCancelled(
            meeting_id=m.id,
            group_id=m.group_id,
            series_id=m.series_id,
            starts_at=m.starts_at,
            reason=m.cancel_reason or "",
            sequence=m.sequence,
        )
    if isinstance(event, events.AgendaUpdated) and isinstance(aggregate, Meeting):
        m = aggregate
        return plan.AgendaUpdated(
            meeting_id=m.id,
            group_id=m.group_id,
            agenda=_agenda(m),
            minutes=m.minutes,
            status=plan.MeetingStatus(m.status),
            sequence=m.sequence,
        )
    if isinstance(aggregate, Proposal):  # topic proposals (issue 9: proposals)
        return _proposal(event, aggregate)
    raise TypeError(f"no contract for {type(event).__name__}")


def _proposal(event: object, p: Proposal) -> contracts.EventData:
    if isinstance(event, proposal.ProposalSubmitted):
        return plan.ProposalSubmitted(
            proposal_id=p.id,
            group_id=p.group_id,
            member_id=p.member_id,
            kind=plan.ProposalKind(p.kind),
            title=p.title,
            for_meeting_id=p.for_meeting_id,
        )
    if isinstance(event, proposal.ProposalAccepted):
        return plan.ProposalAccepted(
            proposal_id=p.id,
            group_id=p.group_id,
            member_id=p.member_id,
            meeting_id=event.meeting_id,
            agenda_position=event.agenda_position,
        )
    if isinstance(event, proposal.ProposalDeclined):
        return plan.ProposalDeclined(proposal_id=p.id, group_id=p.group_id, member_id=p.member_id, reason=event.reason)
    raise TypeError(f"no contract for {type(event).__name__}")


def _venue(m: Meeting) -> contracts.Venue | None:
    v = m.venue
    return contracts.Venue(name=v.name, address=v.address, host_organisation=v.host_organisation) if v else None


def _agenda(m: Meeting) -> tuple[contracts.AgendaItem, ...]:
    return tuple(
        contracts.AgendaItem(
            position=i.position,
            kind=i.kind,
            title=i.title,
            speaker=i.speaker,
            speaker_organisation=i.speaker_organisation,
            minutes=i.minutes,
            tags=i.tags,
            materials=i.materials,
        )
        for i in m.agenda
    )


def _seat_contract(event: rsvp.SeatEvent, group_id: UUID) -> contracts.EventData:
    if isinstance(event, rsvp.AnswerRecorded):
        return seats.RsvpRecorded(
            meeting_id=event.meeting_id,
            group_id=group_id,
            member_id=event.member_id,
            response=seats.RsvpResponse(event.response),
            status=seats.RsvpStatus(event.status),
            waitlist_position=event.waitlist_position,
            on_behalf_of=event.on_behalf_of,
            answered_at=event.answered_at,
        )
    if isinstance(event, rsvp.Promoted):
        return seats.WaitlistPromoted(
            meeting_id=event.meeting_id, group_id=group_id, member_id=event.member_id, promoted_at=event.promoted_at
        )
    return seats.AttendanceRecorded(
        meeting_id=event.meeting_id,
        group_id=group_id,
        member_id=event.member_id,
        attended=event.attended,
        recorded_at=event.recorded_at,
    )
