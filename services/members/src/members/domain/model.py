"""Network groups and their members. Pure Python: no database, no clock, no framework."""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from .errors import Conflict, Invalid
from .events import GroupCreated, MemberJoined, MemberRegistered

ORGANISATION_KINDS = ("public_authority", "supplier", "other")
ROLES = ("member", "coordinator")
LOCALES = ("da", "en")
_DANISH = str.maketrans({"æ": "ae", "ø": "oe", "å": "aa", "Æ": "ae", "Ø": "oe", "Å": "aa"})
SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
MAX_SLUG = 100


def slugify(name: str) -> str:
    """'Offentlig digitalisering øst' -> 'offentlig-digitalisering-oest'; at most MAX_SLUG characters."""
    text = unicodedata.normalize("NFKD", name.translate(_DANISH)).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:MAX_SLUG].strip("-")


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
    events: list[GroupCreated] = field(default_factory=list, repr=False, compare=False)

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
        if len(slug) > MAX_SLUG or not SLUG.match(slug):
            raise Invalid(f"The slug {slug!r} may hold only lower-case letters, digits and single hyphens.")
        if capacity is not None and capacity < 1:
            raise Invalid("Capacity must be at least 1.")
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


@dataclass(frozen=True)
class Organisation:
    id: UUID
    name: str
    kind: str
    cvr: str | None = None


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
    memberships: dict[UUID, str] = field(default_factory=dict)  # group id -> role
    events: list[MemberRegistered | MemberJoined] = field(default_factory=list, repr=False, compare=False)

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
        )
        member.events.append(MemberRegistered(member.id))
        return member

    def join(self, group: Group, role: str, now: datetime) -> None:
        if role not in ROLES:
            raise Invalid(f"Role must be one of {', '.join(ROLES)}.")
        if group.id in self.memberships:
            raise Conflict(f"{self.name} is already a member of {group.name}.")
        self.memberships[group.id] = role
        self.events.append(MemberJoined(self.id, group.id, role, now))
