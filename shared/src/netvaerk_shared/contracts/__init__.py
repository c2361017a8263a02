"""The v1 event catalogue: the platform's public contract for other Dansk IT systems.

Each contract is a frozen Pydantic model; its JSON Schema is checked in next to it (schemas/<type>.json) and a test
fails when the two drift apart. Regenerate with `python -m netvaerk_shared.contracts --write`.
"""

from .base import EVENT_TYPES, EventData, register
from .meetings import AgendaItem, AgendaKind, MeetingScheduled, Venue
from .members import (
    Consent,
    ConsentKind,
    GroupCreated,
    GroupStatus,
    GroupUpdated,
    JoinRequestStatus,
    LeaveReason,
    Locale,
    MemberJoinDeclined,
    MemberJoined,
    MemberJoinRequested,
    MemberLeft,
    MemberRegistered,
    MemberRoleChanged,
    MembershipStatus,
    MemberUpdated,
    Organisation,
    OrganisationKind,
    OrganisationMembershipChanged,
    Role,
    SeatTransferred,
)
from .notifications import Channel, NotificationFailed, NotificationKind, NotificationSent

# Events whose data may hold personal contact data. Everything else carries ids only.
PERSONAL_DATA_EVENTS = frozenset({MemberRegistered.event_type(), MemberUpdated.event_type()})

__all__ = [
    "EVENT_TYPES",
    "EventData",
    "register",
    "AgendaItem",
    "AgendaKind",
    "MeetingScheduled",
    "Venue",
    "Consent",
    "ConsentKind",
    "GroupCreated",
    "GroupStatus",
    "GroupUpdated",
    "JoinRequestStatus",
    "LeaveReason",
    "Locale",
    "MemberJoinDeclined",
    "MemberJoined",
    "MemberJoinRequested",
    "MemberLeft",
    "MemberRegistered",
    "MemberRoleChanged",
    "MembershipStatus",
    "MemberUpdated",
    "Organisation",
    "OrganisationKind",
    "OrganisationMembershipChanged",
    "Role",
    "SeatTransferred",
    "Channel",
    "NotificationFailed",
    "NotificationKind",
    "NotificationSent",
    "PERSONAL_DATA_EVENTS",
]
