"""The notifications service's OpenAPI document is the contract, and it is true: the checked-in openapi.json is what
the code says, and schemathesis (every check; PostgreSQL, and SQLite more briefly) finds no request where they
disagree."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from netvaerk_shared import contracts
from netvaerk_testing.api_contract import (
    BACKENDS,
    SQLITE,
    TOKEN,
    assert_document_current,
    eventually,
    load_schema,
    publish,
    running_service,
)
from notifications.bootstrap import bootstrap
from notifications.config import Settings
from notifications.entrypoints.http import create_app

app = create_app()
# Documented business rules that refuse some schema-valid requests (422 with the rule): a webhook's URL may be
# plain http only to a loopback address, and in development and test only (its field's description says so).
EXPECTED = {("POST", "/webhooks"): [422]}
schema = load_schema(app, TOKEN, expected=EXPECTED)
on_sqlite = load_schema(app, TOKEN, expected=EXPECTED, **SQLITE)
# no SMTP server here: the welcome emails owed stay pending; the HTTP side is what is tested
running = running_service(app, bootstrap, Settings, run_deliveries=False)


def test_checked_in_openapi_is_current_and_valid():
    assert_document_current("notifications")


@schema.parametrize()
@pytest.mark.parametrize("running", ["postgresql"], indirect=True)
def test_api_keeps_its_contract(case, running):
    case.call_and_validate()


@on_sqlite.parametrize()
@pytest.mark.parametrize("running", ["sqlite"], indirect=True)
def test_api_keeps_its_contract_on_sqlite(case, running):
    case.call_and_validate()


@pytest.mark.parametrize("running", BACKENDS, indirect=True)
def test_the_answers_random_data_cannot_reach_keep_the_contract(running, nats_url):
    """A member registers and joins a group (MEMBERS events): the delivery log and the export have something to
    show, checked by every check."""
    group_id, member_id = uuid.uuid4(), uuid.uuid4()
    publish(
        nats_url,
        contracts.GroupCreated(
            group_id=group_id,
            name="Offentlig digitalisering øst",
            slug="offentlig-digitalisering-oest",
            region="Øst",
            description="",
            topics=(),
        ),
        contracts.MemberRegistered(
            member_id=member_id,
            name="Mette Eksempel",
            email="mette@example.org",
            organisation=contracts.Organisation(id=uuid.uuid4(), name="Eksempel Kommune", kind="public_authority"),
            job_title="Kontorchef",
            locale="da",
            registered_at=datetime(2026, 11, 2, 9, 0, tzinfo=UTC),
        ),
        contracts.MemberJoined(
            member_id=member_id, group_id=group_id, role="member", joined_at=datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
        ),
    )
    member = {"member_id": str(member_id)}
    export = eventually(schema, "GET", "/members/{member_id}/export", path_parameters=member).json()
    assert export["contact"]["email"] == "mette@example.org"
    deliveries = eventually(
        schema, "GET", "/deliveries", query={**member, "status": "pending"}, until=lambda response: response.json()
    ).json()
    assert [d["kind"] for d in deliveries] == ["welcome"]
