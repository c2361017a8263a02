"""Events published by the members service on stream MEMBERS (subjects members.>)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from .base import EventData, register


class OrganisationKind(StrEnum):
    public_authority = "public_authority"
    supplier = "supplier"
    other = "other"


class Role(StrEnum):
    member = "member"
    coordinator = "coordinator"


class Locale(StrEnum):
    da = "da"
    en = "en"


class MembershipStatus(StrEnum):
    """An association membership: a person's own, or the one an organisation holds for its staff."""

    active = "active"
    lapsed = "lapsed"
    ended = "ended"


class GroupStatus(StrEnum):
    open = "open"  # takes new members
    closed = "closed"  # takes no new members
    archived = "archived"  # changes no more


class ConsentKind(StrEnum):
    """What a member agreed to receive, and what they agreed to show the other members of their groups."""

    meeting_invitations = "meeting_invitations"
    reminders = "reminders"
    news = "news"
    show_email = "show_email"
    show_phone = "show_phone"


class LeaveReason(StrEnum):
    left = "left"  # the member left
    removed = "removed"  # a coordinator or the administration took them off
    membership_ended = "membership_ended"  # neither they nor their organisation hold an active membership now
    seat_transferred = "seat_transferred"  # they handed their seat to a colleague


class JoinRequestStatus(StrEnum):
    pending = "pending"  # awaits a coordinator's approval
    waitlisted = "waitlisted"  # awaits a free seat (first come, first served)


class Consent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: ConsentKind
    given_at: datetime


class Organisation(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    id: UUID
    name: str = Field(min_length=1, max_length=200)
    kind: OrganisationKind
    cvr: str | None = Field(default=None, pattern=r"^\d{8}$")


class _MembersEvent(EventData):
    service: ClassVar[str] = "members"


@register
class GroupCreated(_MembersEvent):
    """A network group (netværksgruppe) was created."""

    aggregate: ClassVar[str] = "group"
    event: ClassVar[str] = "created"
    subject_field: ClassVar[str] = "group_id"

    group_id: UUID
    name: str
    slug: str
    region: str
    description: str
    topics: tuple[str, ...] = ()
    capacity: int | None = None
    requires_approval: bool = False


@register
class MemberRegistered(_MembersEvent):
    """A person was registered. With member.updated the only events that carry contact data."""

    aggregate: ClassVar[str] = "member"
    event: ClassVar[str] = "registered"
    subject_field: ClassVar[str] = "member_id"

    member_id: UUID
    name: str
    email: EmailStr
    phone: str | None = None
    organisation: Organisation
    job_title: str
    locale: Locale
    registered_at: datetime


@register
class MemberJoined(_MembersEvent):
    """A member joined a network group. Ids only."""

    aggregate: ClassVar[str] = "member"
    event: ClassVar[str] = "joined"
    subject_field: ClassVar[str] = "member_id"

    member_id: UUID
    group_id: UUID
    role: Role
    joined_at: datetime


@register
class MemberUpdated(_MembersEvent):
    """A member's profile changed: the full current profile, as member.registered carries it, plus their own
    membership status and consents (fields consumers may ignore). Carries contact data."""

    aggregate: ClassVar[str] = "member"
    event: ClassVar[str] = "updated"
    subject_field: ClassVar[str] = "member_id"

    member_id: UUID
    name: str
    email: EmailStr
    phone: str | None = None
    organisation: Organisation
    job_title: str
    locale: Locale
    registered_at: datetime
    updated_at: datetime
    status: MembershipStatus = MembershipStatus.active
    consents: tuple[Consent, ...] = ()


@register
class MemberLeft(_MembersEvent):
    """A member gave up their seat in a group, or lost it. Ids only."""

    aggregate: ClassVar[str] = "member"
    event: ClassVar[str] = "left"
    subject_field: ClassVar[str] = "member_id"

    member_id: UUID
    group_id: UUID
    left_at: datetime
    reason: LeaveReason


@register
class MemberRoleChanged(_MembersEvent):
    """A member's role in a group changed. Ids only."""

    aggregate: ClassVar[str] = "member"
    event: ClassVar[str] = "role_changed"
    subject_field: ClassVar[str] = "member_id"

    member_id: UUID
    group_id: UUID
    role: Role


@register
class MemberJoinRequested(_MembersEvent):
    """A member asked to join a group and waits: for a coordinator's approval (pending) or for a seat
    (waitlisted). Ids only."""

    aggregate: ClassVar[str] = "member"
    event: ClassVar[str] = "join_requested"
    subject_field: ClassVar[str] = "member_id"

    member_id: UUID
    group_id: UUID
    requested_at: datetime
    status: JoinRequestStatus


@register
class MemberJoinDeclined(_MembersEvent):
    """A request to join was declined by a coordinator, withdrawn by the member, or ended with their membership.
    Ids only (the reason is the coordinator's words, or withdrawn / membership_ended)."""

    aggregate: ClassVar[str] = "member"
    event: ClassVar[str] = "join_declined"
    subject_field: ClassVar[str] = "member_id"

    member_id: UUID
    group_id: UUID
    reason: str = Field(max_length=500)


@register
class SeatTransferred(_MembersEvent):
    """A member handed their seat in a group to a colleague of the same organisation; member.left (reason
    seat_transferred) and member.joined follow from the same transaction. Ids only; the subject is the group."""

    aggregate: ClassVar[str] = "seat"
    event: ClassVar[str] = "transferred"
    subject_field: ClassVar[str] = "group_id"

    group_id: UUID
    organisation_id: UUID
    from_member_id: UUID
    to_member_id: UUID


@register
class GroupUpdated(_MembersEvent):
    """A network group changed: everything group.created carries, as it is now, plus its status."""

    aggregate: ClassVar[str] = "group"
    event: ClassVar[str] = "updated"
    subject_field: ClassVar[str] = "group_id"

    group_id: UUID
    name: str
    slug: str
    region: str
    description: str
    topics: tuple[str, ...] = ()
    capacity: int | None = None
    requires_approval: bool = False
    status: GroupStatus


@register
class OrganisationMembershipChanged(_MembersEvent):
    """The association membership an organisation holds for its staff changed. When it stops being active, staff
    without an active membership of their own leave their groups (member.left, reason membership_ended)."""

    aggregate: ClassVar[str] = "organisation"
    event: ClassVar[str] = "membership_changed"
    subject_field: ClassVar[str] = "organisation_id"

    organisation_id: UUID
    status: MembershipStatus
    valid_until: date | None = None


@register
class MemberErased(_MembersEvent):
    """A member's personal data was erased (GDPR Art. 17). Ids only. Every system that heard of the member deletes
    or anonymises what it holds on them; the member's earlier events are purged from MEMBERS (this one stays)."""

    aggregate: ClassVar[str] = "member"
    event: ClassVar[str] = "erased"
    subject_field: ClassVar[str] = "member_id"

    member_id: UUID
    erased_at: datetime
