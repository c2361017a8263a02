"""Domain events -> public integration events (the v1 contracts)."""

from __future__ import annotations

from netvaerk_shared import contracts
from netvaerk_shared.contracts.members import MemberErased

from ..domain import events, gdpr
from ..domain.model import Group, Member, Organisation


def _organisation(o: Organisation) -> contracts.Organisation:
    return contracts.Organisation(id=o.id, name=o.name, kind=o.kind, cvr=o.cvr)


def _group_fields(g: Group) -> dict[str, object]:
    return dict(
        group_id=g.id,
        name=g.name,
        slug=g.slug,
        region=g.region,
        description=g.description,
        topics=g.topics,
        capacity=g.capacity,
        requires_approval=g.requires_approval,
    )


def to_contract(event: object, aggregate: Group | Member | Organisation) -> contracts.EventData:
    if isinstance(event, events.GroupCreated) and isinstance(aggregate, Group):
        return contracts.GroupCreated(**_group_fields(aggregate))
    if isinstance(event, events.GroupUpdated) and isinstance(aggregate, Group):
        return contracts.GroupUpdated(**_group_fields(aggregate), status=aggregate.status)
    if isinstance(event, events.MemberRegistered) and isinstance(aggregate, Member):
        m = aggregate
        return contracts.MemberRegistered(
            member_id=m.id,
            name=m.name,
            email=m.email,
            phone=m.phone,
            organisation=_organisation(m.organisation),
            job_title=m.job_title,
            locale=m.locale,
            registered_at=m.registered_at,
        )
    if isinstance(event, events.MemberUpdated) and isinstance(aggregate, Member):
        m = aggregate
        return contracts.MemberUpdated(
            member_id=m.id,
            name=m.name,
            email=m.email,
            phone=m.phone,
            organisation=_organisation(m.organisation),
            job_title=m.job_title,
            locale=m.locale,
            registered_at=m.registered_at,
            updated_at=event.updated_at,
            status=m.status,
            consents=tuple(contracts.Consent(kind=k, given_at=at) for k, at in m.consents.items()),
        )
    if isinstance(event, events.MemberJoined):
        return contracts.MemberJoined(
            member_id=event.member_id, group_id=event.group_id, role=event.role, joined_at=event.joined_at
        )
    if isinstance(event, events.MemberLeft):
        return contracts.MemberLeft(
            member_id=event.member_id, group_id=event.group_id, left_at=event.left_at, reason=event.reason
        )
    if isinstance(event, events.MemberRoleChanged):
        return contracts.MemberRoleChanged(member_id=event.member_id, group_id=event.group_id, role=event.role)
    if isinstance(event, events.MemberJoinRequested):
        return contracts.MemberJoinRequested(
            member_id=event.member_id, group_id=event.group_id, requested_at=event.requested_at, status=event.status
        )
    if isinstance(event, events.MemberJoinDeclined):
        return contracts.MemberJoinDeclined(member_id=event.member_id, group_id=event.group_id, reason=event.reason)
    if isinstance(event, events.SeatTransferred):
        return contracts.SeatTransferred(
            group_id=event.group_id,
            organisation_id=event.organisation_id,
            from_member_id=event.from_member_id,
            to_member_id=event.to_member_id,
        )
    if isinstance(event, events.OrganisationMembershipChanged):
        return contracts.OrganisationMembershipChanged(
            organisation_id=event.organisation_id, status=event.status, valid_until=event.valid_until
        )
    if isinstance(event, gdpr.MemberErased):  # GDPR erasure (service_layer/gdpr.py): ids and the time only
        return MemberErased(member_id=event.member_id, erased_at=event.erased_at)
    raise TypeError(f"no contract for {type(event).__name__}")


def to_contract_of_checked_input(event: object, aggregate: Group | Member | Organisation) -> contracts.EventData:
    """to_contract for a unit of work in which every member registered came from input the edge has validated
    with the request model of POST /members (`MemberIn`: the contract's rules and stricter ones), as the CSV import's
    lines do (entrypoints/cli.py: a line that fails it never reaches the handler). member.registered is then built
    without validating its fields again: validating the email address a second time (email-validator) was a seventh
    of the import's CPU. Its organisation, and every other event, are validated as in to_contract."""
    if isinstance(event, events.MemberRegistered) and isinstance(aggregate, Member):
        m = aggregate
        return contracts.MemberRegistered.model_construct(
            member_id=m.id,
            name=m.name,
            email=m.email,
            phone=m.phone,
            organisation=_organisation(m.organisation),
            job_title=m.job_title,
            locale=contracts.Locale(m.locale),
            registered_at=m.registered_at,
        )
    return to_contract(event, aggregate)
