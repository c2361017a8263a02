"""The import's translator (to_contract_of_checked_input) builds member.registered without validating it again: it
must give the very same event as the validating to_contract, and leave every other event to it."""

from datetime import UTC, datetime
from uuid import uuid4

from members.domain import events
from members.domain.model import Member, Organisation
from members.service_layer.translator import to_contract, to_contract_of_checked_input
from netvaerk_shared import contracts
from netvaerk_shared.envelope import make_event, parse_event, to_bytes

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def _member(**changes) -> Member:
    org = Organisation(id=uuid4(), name="Århus Kommune", kind="public_authority", cvr="12345674")
    fields = dict(name="Søren Ærø", email="soeren@example.org", organisation=org, job_title="Kontorchef")
    fields.update(changes)
    return Member.register(**fields, locale="en", now=NOW, phone="+45 12 34 56 78")


def test_member_registered_is_the_same_event_as_validated():
    for member in (_member(), _member(name="Mette Eksempel", email="mette@example.org")):
        (event,) = [e for e in member.events if isinstance(e, events.MemberRegistered)]
        checked = to_contract_of_checked_input(event, member)
        validated = to_contract(event, member)
        assert type(checked) is contracts.MemberRegistered
        assert checked == validated
        assert checked.model_dump(mode="json") == validated.model_dump(mode="json")
        body = to_bytes(make_event(checked, event_id="e1", time=NOW))
        assert body == to_bytes(make_event(validated, event_id="e1", time=NOW))
        assert parse_event(body)[1] == validated  # and a consumer's strict parse takes it


def test_other_events_go_through_the_validating_translator():
    member = _member()
    joined = events.MemberJoined(member_id=member.id, group_id=uuid4(), role="member", joined_at=NOW)
    assert to_contract_of_checked_input(joined, member) == to_contract(joined, member)
