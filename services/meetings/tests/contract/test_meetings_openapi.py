"""The meetings service's OpenAPI document is the contract, and it is true: the checked-in openapi.json is what the
code says, and schemathesis (every check; PostgreSQL, and SQLite more briefly) finds no request where they disagree."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from meetings.bootstrap import bootstrap
from meetings.config import Settings
from meetings.entrypoints.http import create_app
from netvaerk_shared import contracts
from netvaerk_testing.api_contract import (
    BACKENDS,
    SQLITE,
    TOKEN,
    assert_document_current,
    check,
    eventually,
    load_schema,
    publish,
    running_service,
)

app = create_app()
# A schema-valid meeting can still break a rule JSON Schema cannot state (start in the future, end after the start,
# the agenda fits in between): the service answers 422, and the document says so for this operation. So 422 is an
# expected answer to schema-valid data here, besides schemathesis's defaults (404 for an unknown group among them).
EXPECTED = {("POST", "/meetings"): [422]}
schema = load_schema(app, TOKEN, expected=EXPECTED)
on_sqlite = load_schema(app, TOKEN, expected=EXPECTED, **SQLITE)
running = running_service(app, bootstrap, Settings)


def test_checked_in_openapi_is_current_and_valid():
    assert_document_current("meetings")


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
    """A group and a member arrive as MEMBERS events; a meeting is scheduled for the group and read back: 201s and
    200s with bodies, every check."""
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
        contracts.MemberJoined(
            member_id=member_id,
            group_id=group_id,
            role="coordinator",
            joined_at=datetime(2026, 11, 2, 9, 30, tzinfo=UTC),
        ),
    )
    group = {"group_id": str(group_id)}
    eventually(schema, "GET", "/groups/{group_id}", path_parameters=group)
    eventually(schema, "GET", "/members/{member_id}/export", path_parameters={"member_id": str(member_id)})
    starts = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    meeting = check(
        schema,
        "POST",
        "/meetings",
        201,
        body={
            "group_id": str(group_id),
            "title": "Vintermøde",
            "starts_at": starts.isoformat(),
            "ends_at": (starts + timedelta(hours=2)).isoformat(),
            "timezone": "Europe/Copenhagen",
            "venue": {"name": "Rådhuset", "address": "Rådhuspladsen 1, 1550 København V"},
            "online_url": "https://meet.example.org/vintermoede",
            "capacity": 40,
            "agenda": [
                {"kind": "check_in", "title": "Runde", "minutes": 20},
                {
                    "kind": "talk",
                    "title": "Databeskyttelse",
                    "speaker": "Mette Eksempel",
                    "minutes": 60,
                    "tags": ["databeskyttelse"],
                },
            ],
        },
    ).json()
    check(schema, "GET", "/meetings/{meeting_id}", 200, path_parameters={"meeting_id": meeting["meeting_id"]})
    assert len(check(schema, "GET", "/groups/{group_id}/meetings", 200, path_parameters=group).json()) == 1
    check(
        schema,
        "POST",
        "/meetings",
        422,
        body={
            "group_id": str(group_id),
            "title": "For sent",
            "starts_at": "2020-01-01T10:00:00+01:00",
            "ends_at": "2020-01-01T12:00:00+01:00",
        },
    )
