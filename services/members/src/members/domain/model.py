"""Network groups, their seats and their members; organisations and their association membership.
Pure Python: no database, no clock, no framework.

A person may take a seat in a group while they have the right to: their own association membership is active, or
their organisation's is. A group's seats are its roster; when it asks for approval a join waits as a *pending*
request, and when it is full a join waits on its *waiting list* (first come, first served) until a seat frees.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from uuid import UUID

from .errors import Conflict, Forbidden, Invalid, NotFound
from .events import (
    GroupCreated,
    GroupUpdated,
    MemberJoinDeclined,
    MemberJoined,
    MemberJoinRequested,
    MemberLeft,
    MemberRegistered,
    MemberRoleChanged,
    MemberUpdated,
    OrganisationMembershipChanged,
    SeatTransferred,
)

ORGANISATION_KINDS = ("public_authority", "supplier", "other")
ROLES = ("member", "coordinator")
LOCALES = ("da", "en")
MEMBERSHIP_STATUSES = ("active", "lapsed", "ended")  # a person's or an organisation's association membership
GROUP_STATUSES = ("open", "closed", "archived")
# What a member agreed to receive, and what they agreed to show the other members of their groups
CONSENTS = ("meeting_invitations", "reminders", "news", "show_email", "show_phone")
LEAVE_REASONS = ("left", "removed", "membership_ended", "seat_transferred")
PENDING, WAITLISTED = "pending", "waitlisted"
_DANISH = str.maketrans({"æ": "ae", "ø": "oe", "å": "aa", "Æ": "ae", "Ø": "oe", "Å": "aa"})
SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
MAX_SLUG = 100
CVR_WEIGHTS = (2, 7, 6, 5, 4, 3, 2, 1)


def slugify(name: str) -> str:
    """'Offentlig digitalisering øst' -> 'offentlig-digitalisering-oest'; at most MAX_SLUG characters."""
    text = unicodedata.normalize("NFKD", name.translate(_DANISH)).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:MAX_SLUG].strip("-")


def cvr_error(cvr: str) -> str | None:
    """Why `cvr` is no Danish CVR number (8 digits whose modulus-11 check with the weights 2,7,6,5,4,3,2,1 holds),
    or None when it is one."""
    if len(cvr) != 8 or not cvr.isascii() or not cvr.isdigit():
        return "A CVR number has exactly 8 digits."
    if sum(int(d) * w for d, w in zip(cvr, CVR_WEIGHTS, strict=True)) % 11:
        return f"{cvr} is not a valid CVR number (its modulus-11 check fails)."
    return None


def check_cvr(cvr: str | None) -> str | None:
    if cvr is not None and (problem := cvr_error(cvr)):
        raise Invalid(problem)
    return cvr


def _one_of(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise Invalid(f"{what} must be one of {', '.join(allowed)}.")
    return value


class _Unset:
    """Marks a field left out (where None means "remove it")."""


UNSET = _Unset()


# --------------------------------------------------------------------------------------------------- organisations
@dataclass
class Organisation:
    id: UUID
    name: str
    kind: str
    cvr: str | None = None
    membership_status: str | None = None  # the association membership it holds for its staff, if any
    membership_valid_until: date | None = None
    events: list[OrganisationMembershipChanged] = field(default_factory=list, repr=False, compare=False)

    @property
    def membership_active(self) -> bool:
        return self.membership_status == "active"

    def set_membership(self, status: str, valid_until: date | None) -> None:
        _one_of(status, MEMBERSHIP_STATUSES, "Membership status")
        self.membership_status, self.membership_valid_until = status, valid_until
        self.events.append(OrganisationMembershipChanged(self.id, status, valid_until))

    def update(self, *, name: str | None = None, kind: str | None = None, cvr: str | None | _Unset = UNSET) -> bool:
        """Change what is given (None: keep; for `cvr` pass UNSET to keep, None to remove); False when that is what
        it holds already. Records no event of its own: there is no organisation.updated in the contract, and the
        organisation reaches other services inside its members' profiles (Member.organisation_changed)."""
        before = (self.name, self.kind, self.cvr)
        if name is not None:
            if not (name := " ".join(name.split())):
                raise Invalid("An organisation needs a name.")
            self.name = name
        if kind is not None:
            self.kind = _one_of(kind, ORGANISATION_KINDS, "Organisation kind")
        if not isinstance(cvr, _Unset):
            self.cvr = check_cvr(cvr)
        return (self.name, self.kind, self.cvr) != before


# --------------------------------------------------------------------------------------------------------- members
@dataclass
class Member:
    id: UUID
    name: str
    email: str
    organisation: Organisation
    job_title: str
    locale: str
    registered_at: datetime
    phone: str | None = None
    status: str = "active"  # the person's own association membership
    consents: dict[str, datetime] = field(default_factory=dict)  # kind -> when it was given
    memberships: dict[UUID, str] = field(default_factory=dict)  # group id -> role
    events: list[Any] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def register(
        cls,
        *,
        name: str,
        email: str,
        organisation: Organisation,
        job_title: str,
        locale: str,
        now: datetime,
        phone: str | None = None,
        consents: Iterable[str] = (),
    ) -> Member:
        if not name.strip():
            raise Invalid("A member needs a name.")
        if locale not in LOCALES:
            raise Invalid(f"Locale must be one of {', '.join(LOCALES)}.")
        if organisation.kind not in ORGANISATION_KINDS:
            raise Invalid(f"Organisation kind must be one of {', '.join(ORGANISATION_KINDS)}.")
        member = cls(
            id=uuid.uuid4(),
            name=name.strip(),
            email=email.strip().lower(),
            organisation=organisation,
            job_title=job_title.strip(),
            locale=locale,
            registered_at=now,
            phone=phone,
            consents={kind: now for kind in _consents(consents)},
        )
        member.events.append(MemberRegistered(member.id))
        return member

    @property
    def may_join_groups(self) -> bool:
        """The right to a seat: the person's own association membership is active, or their organisation's is."""
        return self.status == "active" or self.organisation.membership_active

    def update(
        self,
        now: datetime,
        *,
        name: str | None = None,
        email: str | None = None,
        phone: str | None | _Unset = UNSET,
        organisation: Organisation | None = None,
        job_title: str | None = None,
        locale: str | None = None,
        consents: Iterable[str] | None = None,
        status: str | None = None,
    ) -> bool:
        """Change what is given (None: keep; for `phone` pass UNSET to keep, None to remove). Consents are the
        full set the member agrees to now: a new one is dated now, one kept keeps its date, one left out is gone.
        True when the profile changed (member.updated recorded); False, and nothing recorded, when every field given
        holds what is stored already (or none was given)."""
        before = self._profile()
        if name is not None:
            if not name.strip():
                raise Invalid("A member needs a name.")
            self.name = name.strip()
        if email is not None:
            self.email = email.strip().lower()
        if not isinstance(phone, _Unset):
            self.phone = phone
        if organisation is not None:
            self.organisation = organisation
        if job_title is not None:
            self.job_title = job_title.strip()
        if locale is not None:
            self.locale = _one_of(locale, LOCALES, "Locale")
        if consents is not None:
            wanted = _consents(consents)
            self.consents = {kind: self.consents.get(kind, now) for kind in CONSENTS if kind in wanted}
        if status is not None:
            self.status = _one_of(status, MEMBERSHIP_STATUSES, "Status")
        if self._profile() == before:
            return False
        self.events.append(MemberUpdated(self.id, now))
        return True

    def _profile(self) -> tuple[object, ...]:
        """What member.updated tells (the organisation by id: its own fields are the organisation's to change)."""
        o = self.organisation.id
        return (self.name, self.email, self.phone, o, self.job_title, self.locale, dict(self.consents), self.status)

    def organisation_changed(self, organisation: Organisation, now: datetime) -> None:
        """Their organisation's name, kind or CVR number changed: the profile, which carries it, changed with it."""
        self.organisation = organisation
        self.events.append(MemberUpdated(self.id, now))

    def join(self, group: Group, role: str, now: datetime) -> None:
        """The member's side of taking a seat (the group decides whether there is one: Group.request_join)."""
        if role not in ROLES:
            raise Invalid(f"Role must be one of {', '.join(ROLES)}.")
        if group.id in self.memberships:
            raise Conflict(f"{self.name} is already a member of {group.name}.")
        if not self.may_join_groups:
            raise Conflict(
                f"{self.name} has no active association membership, neither their own nor their organisation's, "
                "and so cannot join a group."
            )
        self.memberships[group.id] = role
        self.events.append(MemberJoined(self.id, group.id, role, now))


def _consents(kinds: Iterable[str]) -> set[str]:
    wanted = set(kinds)
    unknown = sorted(wanted - set(CONSENTS))
    if unknown:
        raise Invalid(f"Unknown consent {', '.join(unknown)}: the consents are {', '.join(CONSENTS)}.")
    return wanted


# ---------------------------------------------------------------------------------------------------------- groups
@dataclass(frozen=True)
class Seat:
    role: str
    joined_at: datetime


@dataclass(frozen=True)
class JoinRequest:
    member_id: UUID
    status: str  # pending / waitlisted
    requested_at: datetime


@dataclass
class Group:
    id: UUID
    name: str
    slug: str
    region: str
    description: str
    topics: tuple[str, ...] = ()
    capacity: int | None = None
    requires_approval: bool = False
    status: str = "open"
    roster: dict[UUID, Seat] = field(default_factory=dict)  # who holds a seat
    queue: list[JoinRequest] = field(default_factory=list)  # pending and waitlisted, first come first
    events: list[Any] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def create(
        cls,
        *,
        name: str,
        region: str,
        description: str = "",
        slug: str | None = None,
        topics: tuple[str, ...] = (),
        capacity: int | None = None,
        requires_approval: bool = False,
    ) -> Group:
        name = name.strip()
        if not name:
            raise Invalid("A group needs a name.")
        group_id = uuid.uuid4()
        # a name with no letter or digit in ASCII (say "ÆØÅ!" or all emoji) still gets a usable slug
        slug = (slug or slugify(name) or f"gruppe-{group_id.hex[:8]}").strip()
        _check_slug(slug)
        _check_capacity(capacity)
        group = cls(
            id=group_id,
            name=name,
            slug=slug,
            region=region.strip(),
            description=description.strip(),
            topics=tuple(t.strip() for t in topics if t.strip()),
            capacity=capacity,
            requires_approval=requires_approval,
        )
        group.events.append(GroupCreated(group.id))
        return group

    # -- who may ---------------------------------------------------------------------------------------------------
    def is_coordinator(self, member_id: UUID | None) -> bool:
        seat = self.roster.get(member_id) if member_id is not None else None
        return seat is not None and seat.role == "coordinator"

    def require_manager(self, actor: UUID | None) -> None:
        """The administration (actor None) or a coordinator of this group."""
        if actor is not None and not self.is_coordinator(actor):
            raise Forbidden(f"Only a coordinator of {self.name} or the administration may do this.")

    def _require_changeable(self) -> None:
        if self.status == "archived":
            raise Conflict(f"{self.name} is archived: it changes no more.")

    # -- the group itself ------------------------------------------------------------------------------------------
    def update(self, changes: dict[str, Any]) -> bool:
        """Change the given fields (name, slug, region, description, topics, capacity, requires_approval, status).
        True when the group changed (group.updated recorded); False, and nothing recorded, when every field given
        holds what is stored already (or none was given): that is no change, so an archived group answers it too."""
        wanted: dict[str, Any] = {}
        if "name" in changes:
            if not (changes["name"] or "").strip():
                raise Invalid("A group needs a name.")
            wanted["name"] = changes["name"].strip()
        if "slug" in changes:
            wanted["slug"] = _check_slug((changes["slug"] or "").strip())
        if "region" in changes:
            wanted["region"] = changes["region"].strip()
        if "description" in changes:
            wanted["description"] = (changes["description"] or "").strip()
        if "topics" in changes:
            wanted["topics"] = tuple(t.strip() for t in changes["topics"] if t.strip())
        if "capacity" in changes:
            wanted["capacity"] = _check_capacity(changes["capacity"])
        if "requires_approval" in changes:
            wanted["requires_approval"] = bool(changes["requires_approval"])
        if "status" in changes:
            wanted["status"] = _one_of(changes["status"], GROUP_STATUSES, "Group status")
        different = {k: v for k, v in wanted.items() if getattr(self, k) != v}
        if not different:
            return False
        self._require_changeable()
        for attribute, value in different.items():
            setattr(self, attribute, value)
        self.events.append(GroupUpdated(self.id))
        return True

    @property
    def free_seats(self) -> int | None:
        return None if self.capacity is None else max(0, self.capacity - len(self.roster))

    def _has_seat(self) -> bool:
        return self.capacity is None or len(self.roster) < self.capacity

    def request_of(self, member_id: UUID) -> JoinRequest | None:
        return next((r for r in self.queue if r.member_id == member_id), None)

    # -- joining ---------------------------------------------------------------------------------------------------
    def request_join(self, member: Member, role: str, now: datetime, *, approved: bool, waitlist: bool = True) -> str:
        """A member asks for a seat: 'joined', 'pending' (the group asks for a coordinator's approval and the
        caller gave none) or 'waitlisted' (full; with waitlist=False a full group is a conflict instead)."""
        if role not in ROLES:
            raise Invalid(f"Role must be one of {', '.join(ROLES)}.")
        self._require_changeable()
        if self.status == "closed":
            raise Conflict(f"{self.name} is closed: it takes no new members.")
        if member.id in self.roster:
            raise Conflict(f"{member.name} is already a member of {self.name}.")
        if (request := self.request_of(member.id)) is not None:
            where = "awaits a coordinator's approval" if request.status == PENDING else "is on the waiting list"
            raise Conflict(f"{member.name} already asked to join {self.name}: the request {where}.")
        if not member.may_join_groups:
            member.join(self, role, now)  # raises the member's own reason
        if self.requires_approval and not approved:
            return self._enqueue(member.id, PENDING, now)
        if not self._has_seat():
            if not waitlist:
                raise Conflict(f"{self.name} is full ({self.capacity} seats).")
            return self._enqueue(member.id, WAITLISTED, now)
        self._seat(member, role, now)
        return "joined"

    def _enqueue(self, member_id: UUID, status: str, now: datetime) -> str:
        self.queue.append(JoinRequest(member_id, status, now))
        self.events.append(MemberJoinRequested(member_id, self.id, now, status))
        return status

    def _seat(self, member: Member, role: str, now: datetime) -> None:
        member.join(self, role, now)
        self.roster[member.id] = Seat(role, now)

    def approve(self, member: Member, now: datetime) -> str:
        """A coordinator lets a pending request in: 'joined', or 'waitlisted' (at the end of the list) when full."""
        self._require_changeable()
        request = self._pending(member.id)
        self.queue.remove(request)
        if not self._has_seat():
            return self._enqueue(member.id, WAITLISTED, now)
        self._seat(member, "member", now)
        return "joined"

    def decline(self, member_id: UUID, reason: str) -> None:
        """A coordinator says no to a request (pending or waitlisted), or the member withdraws it."""
        self._require_changeable()
        request = self.request_of(member_id)
        if request is None:
            raise NotFound(f"No request from member {member_id} to join {self.name}.")
        self.queue.remove(request)
        self.events.append(MemberJoinDeclined(member_id, self.id, reason))

    def _pending(self, member_id: UUID) -> JoinRequest:
        request = self.request_of(member_id)
        if request is None or request.status != PENDING:
            raise NotFound(f"No pending request from member {member_id} to join {self.name}.")
        return request

    def next_in_line(self) -> UUID | None:
        """Who gets the next free seat: the first on the waiting list, while the group is open and has a seat."""
        if self.status != "open" or not self._has_seat():
            return None
        return next((r.member_id for r in self.queue if r.status == WAITLISTED), None)

    def promote(self, member: Member, now: datetime) -> None:
        """The first on the waiting list takes the seat that freed (see next_in_line)."""
        request = self.request_of(member.id)
        assert request is not None and request.status == WAITLISTED and self._has_seat()
        self.queue.remove(request)
        if member.may_join_groups:
            self._seat(member, "member", now)
        else:  # lost the right while waiting: off the list
            self.events.append(MemberJoinDeclined(member.id, self.id, "membership_ended"))

    # -- holding a seat --------------------------------------------------------------------------------------------
    def leave(self, member_id: UUID, reason: str, now: datetime) -> None:
        """The member gives up their seat (a request they made is withdrawn the same way)."""
        _one_of(reason, LEAVE_REASONS, "Reason")
        self._require_changeable()
        if member_id not in self.roster:
            if self.request_of(member_id) is not None:
                self.decline(member_id, "withdrawn" if reason == "left" else reason)
                return
            raise NotFound(f"Member {member_id} is not a member of {self.name}.")
        del self.roster[member_id]
        self.events.append(MemberLeft(member_id, self.id, now, reason))

    def change_role(self, member_id: UUID, role: str) -> bool:
        """False when the member already has that role (nothing to record)."""
        _one_of(role, ROLES, "Role")
        self._require_changeable()
        seat = self.roster.get(member_id)
        if seat is None:
            raise NotFound(f"Member {member_id} is not a member of {self.name}.")
        if seat.role == role:
            return False
        self.roster[member_id] = Seat(role, seat.joined_at)
        self.events.append(MemberRoleChanged(member_id, self.id, role))
        return True

    def transfer_seat(self, holder: Member, colleague: Member, now: datetime) -> None:
        """The holder hands their seat to a colleague of the same organisation: one leaves, one joins. The seat
        count does not change, so this works in a closed or full group too; the colleague takes it as a member."""
        self._require_changeable()
        if holder.id not in self.roster:
            raise NotFound(f"{holder.name} holds no seat in {self.name}.")
        if colleague.id == holder.id:
            raise Conflict(f"{holder.name} holds this seat already: a seat is handed to someone else.")
        if colleague.organisation.id != holder.organisation.id:
            raise Conflict(
                f"A seat stays with its organisation: {colleague.name} is not from {holder.organisation.name}."
            )
        if colleague.id in self.roster:
            raise Conflict(f"{colleague.name} is already a member of {self.name}.")
        if not colleague.may_join_groups:
            colleague.join(self, "member", now)  # raises the colleague's reason
        self.events.append(SeatTransferred(self.id, holder.organisation.id, holder.id, colleague.id))
        del self.roster[holder.id]
        self.events.append(MemberLeft(holder.id, self.id, now, "seat_transferred"))
        if (request := self.request_of(colleague.id)) is not None:
            self.queue.remove(request)  # the seat they waited for is theirs now
        self._seat(colleague, "member", now)


def _check_slug(slug: str) -> str:
    if len(slug) > MAX_SLUG or not SLUG.match(slug):
        raise Invalid(f"The slug {slug!r} may hold only lower-case letters, digits and single hyphens.")
    return slug


def _check_capacity(capacity: int | None) -> int | None:
    if capacity is not None and capacity < 1:
        raise Invalid("Capacity must be at least 1.")
    return capacity
