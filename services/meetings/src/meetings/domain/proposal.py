"""Topic proposals: a member of a group proposes a topic or offers a talk for a coming meeting, the group's members
back the ones they want, and a coordinator takes one into a meeting's agenda or declines it with a reason.
Pure Python: who is a member or a coordinator, and what the meeting looks like, is handed in by the handler."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from .errors import Conflict, Invalid
from .model import MAX_ITEM_MINUTES, AgendaItem, Meeting

PROPOSAL_KINDS = ("topic", "talk")
MAX_PROPOSAL_TITLE = 200
MAX_PROPOSAL_TEXT = 4000
MAX_REASON = 1000


# -- what happened (domain events; the contracts are in netvaerk_shared.contracts.meetings) ------------------------
@dataclass(frozen=True)
class ProposalSubmitted:
    proposal_id: UUID


@dataclass(frozen=True)
class ProposalAccepted:
    proposal_id: UUID
    meeting_id: UUID
    agenda_position: int


@dataclass(frozen=True)
class ProposalDeclined:
    proposal_id: UUID
    reason: str


ProposalEvent = ProposalSubmitted | ProposalAccepted | ProposalDeclined


@dataclass
class Proposal:
    id: UUID
    group_id: UUID
    member_id: UUID  # the proposer
    kind: str  # topic / talk
    title: str
    description: str
    submitted_at: datetime
    for_meeting_id: UUID | None = None
    speaker: str | None = None  # for an offered talk: who gives it (may be a colleague), and from where
    speaker_organisation: str | None = None
    status: str = "open"  # open / accepted / declined
    decided_at: datetime | None = None
    meeting_id: UUID | None = None  # accepted into
    agenda_position: int | None = None
    reason: str | None = None  # declined because
    events: list[ProposalEvent] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def submit(
        cls,
        *,
        group_id: UUID,
        member_id: UUID,
        kind: str,
        title: str,
        now: datetime,
        description: str = "",
        for_meeting: Meeting | None = None,
        speaker: str | None = None,
        speaker_organisation: str | None = None,
    ) -> Proposal:
        if kind not in PROPOSAL_KINDS:
            raise Invalid(f"A proposal's kind is one of {', '.join(PROPOSAL_KINDS)}.")
        title = title.strip()
        if not title:
            raise Invalid("A proposal needs a title.")
        if len(title) > MAX_PROPOSAL_TITLE:
            raise Invalid(f"The title may be at most {MAX_PROPOSAL_TITLE} characters.")
        description = description.strip()
        if len(description) > MAX_PROPOSAL_TEXT:
            raise Invalid(f"The description may be at most {MAX_PROPOSAL_TEXT} characters.")
        if kind == "topic" and (speaker or speaker_organisation):
            raise Invalid("Only an offered talk has a speaker; a topic is for the group to discuss.")
        if for_meeting is not None:
            if for_meeting.group_id != group_id:
                raise Invalid("The meeting belongs to another group.")
            if for_meeting.status != "scheduled" or for_meeting.starts_at <= now:
                raise Invalid("Proposals are for coming meetings: that meeting has started, is over or is cancelled.")
        proposal = cls(
            id=uuid.uuid4(),
            group_id=group_id,
            member_id=member_id,
            kind=kind,
            title=title,
            description=description,
            submitted_at=now,
            for_meeting_id=for_meeting.id if for_meeting else None,
            speaker=_blank_to_none(speaker),
            speaker_organisation=_blank_to_none(speaker_organisation),
        )
        proposal.events.append(ProposalSubmitted(proposal.id))
        return proposal

    def back(self, member_id: UUID) -> None:
        """May `member_id` (a member of the group: the handler knows) back it? Backing twice counts once: the
        repository keeps one row a member."""
        if self.status != "open":
            raise Conflict(f"The proposal is {self.status}: it can no longer be backed.")
        if member_id == self.member_id:
            raise Invalid("A proposal cannot be backed by the member who proposed it.")

    def withdraw_backing(self) -> None:
        if self.status != "open":
            raise Conflict(f"The proposal is {self.status}: its backing is final.")

    def accept(self, meeting: Meeting, *, minutes: int, now: datetime) -> AgendaItem:
        """Take the proposal into the meeting's agenda as its last item (an offered talk as a talk, a topic as a
        discussion). The meeting must be the group's and still to come, and the item must fit in it: the meeting's
        own rules (Meeting.add_agenda_item) decide that, and record AgendaUpdated."""
        self._open()
        if meeting.group_id != self.group_id:
            raise Invalid("The meeting belongs to another group than the proposal.")
        if not 1 <= minutes <= MAX_ITEM_MINUTES:
            raise Invalid(f"The agenda item's minutes must be between 1 and {MAX_ITEM_MINUTES}.")
        placed = meeting.add_agenda_item(
            AgendaItem(
                kind="talk" if self.kind == "talk" else "discussion",
                title=self.title,
                minutes=minutes,
                speaker=self.speaker,
                speaker_organisation=self.speaker_organisation,
            ),
            now=now,
        )
        self.status, self.decided_at = "accepted", now
        self.meeting_id, self.agenda_position = meeting.id, placed.position
        self.events.append(ProposalAccepted(self.id, meeting.id, placed.position))
        return placed

    def decline(self, reason: str, *, now: datetime) -> None:
        self._open()
        reason = reason.strip()
        if not reason:
            raise Invalid("Say why the proposal is declined: the proposer is told.")
        if len(reason) > MAX_REASON:
            raise Invalid(f"The reason may be at most {MAX_REASON} characters.")
        self.status, self.decided_at, self.reason = "declined", now, reason
        self.events.append(ProposalDeclined(self.id, reason))

    def _open(self) -> None:
        if self.status != "open":
            raise Conflict(f"The proposal is already {self.status}.")


def _blank_to_none(text: str | None) -> str | None:
    return (text.strip() or None) if text is not None else None
