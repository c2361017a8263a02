"""The members service's OpenAPI document is the contract, and it is true: the checked-in openapi.json is what the
code says, and schemathesis (every check; PostgreSQL, and SQLite more briefly) finds no request where they disagree."""

from __future__ import annotations

import uuid

import pytest

from members.bootstrap import bootstrap
from members.config import Settings
from members.entrypoints.http import create_app
from netvaerk_testing.api_contract import (
    BACKENDS,
    SQLITE,
    TOKEN,
    assert_document_current,
    check,
    load_schema,
    running_service,
)

app = create_app()
# A CVR number that has 8 digits can still fail its modulus-11 check, which JSON Schema cannot state: the service
# answers 422 naming organisation.cvr (cvr in PATCH /organisations/{id}), and the document says so for these
# operations. Likewise a page cursor that matches its pattern but was not made by the service (it is opaque): 422
# naming cursor.
EXPECTED = {
    ("POST", "/members"): [422],
    ("PATCH", "/members/{member_id}"): [422],
    ("PATCH", "/organisations/{organisation_id}"): [422],
    ("GET", "/admin/members"): [422],
}
schema = load_schema(app, TOKEN, expected=EXPECTED)
on_sqlite = load_schema(app, TOKEN, expected=EXPECTED, **SQLITE)
# members runs alone here: it answers its own part of a GDPR export (the others' silence is a documented 504)
running = running_service(app, bootstrap, Settings, gdpr_export_services="members")


def test_checked_in_openapi_is_current_and_valid():
    assert_document_current("members")


@schema.parametrize()
@pytest.mark.parametrize("running", ["postgresql"], indirect=True)
def test_api_keeps_its_contract(case, running):
    case.call_and_validate()


@on_sqlite.parametrize()
@pytest.mark.parametrize("running", ["sqlite"], indirect=True)
def test_api_keeps_its_contract_on_sqlite(case, running):
    case.call_and_validate()


@pytest.mark.parametrize("running", BACKENDS, indirect=True)
def test_the_answers_random_data_cannot_reach_keep_the_contract(running):
    """A group, a member, the member joining it, and each read back: 201s and 200s with bodies, every check."""
    unique = uuid.uuid4().hex[:8]  # the generated cases before this one share the database
    group = check(
        schema,
        "POST",
        "/groups",
        201,
        body={
            "name": "Offentlig digitalisering øst",
            "slug": f"kontrakt-{unique}",
            "region": "Øst",
            "description": "Netværk\nfor it-folk",
            "topics": ["SKI"],
            "capacity": 40,
            "requires_approval": True,
        },
    ).json()
    member = check(
        schema,
        "POST",
        "/members",
        201,
        body={
            "name": "Mette Eksempel",
            "email": f"mette.{unique}@example.org",
            "phone": "+45 12 34 56 78",
            "organisation": {"name": "Eksempel Kommune", "kind": "public_authority", "cvr": "12345674"},
            "job_title": "Kontorchef",
            "locale": "da",
        },
    ).json()
    check(
        schema,
        "POST",
        "/groups/{group_id}/members",
        201,
        path_parameters={"group_id": group["group_id"]},
        body={"member_id": member["member_id"], "role": "coordinator"},
    )
    assert (
        check(schema, "GET", "/groups/{group_id}", 200, path_parameters={"group_id": group["group_id"]}).json()[
            "members"
        ][0]["member_id"]
        == member["member_id"]
    )
    summaries = {g["group_id"]: g for g in check(schema, "GET", "/groups", 200).json()}
    assert summaries[group["group_id"]]["member_count"] == 1
    check(schema, "GET", "/members/{member_id}", 200, path_parameters={"member_id": member["member_id"]})
    check(schema, "GET", "/members/{member_id}/export", 200, path_parameters={"member_id": member["member_id"]})
    check(
        schema,
        "POST",
        "/groups/{group_id}/members",
        409,
        path_parameters={"group_id": group["group_id"]},
        body={"member_id": member["member_id"]},
    )
