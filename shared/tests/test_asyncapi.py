"""The AsyncAPI documents say what really goes over the wire: a real CloudEvent validates against its channel."""

from __future__ import annotations

import json

import jsonschema
import pytest

from netvaerk_shared import contracts
from netvaerk_shared.asyncapi import PRODUCES, specification
from netvaerk_shared.envelope import make_event, to_bytes


def payload_schema(doc: dict, message_key: str) -> dict:
    ref = doc["components"]["messages"][message_key]["payload"]["$ref"].split("/")[-1]
    # resolve '#/components/schemas/X' inside the document
    return {**doc["components"]["schemas"][ref], "components": doc["components"]}


@pytest.mark.parametrize("service", sorted(PRODUCES))
def test_every_produced_event_is_documented_and_matches_reality(service, sample_events):
    doc = specification(service, server="nats://nats.example.org:4222")
    assert doc["asyncapi"] == "3.0.0"
    assert doc["servers"]["development"]["host"] == "nats.example.org:4222"
    for contract in PRODUCES[service]:
        channel = doc["channels"][contract.event_type()]
        assert channel["address"] == f"{contract.subject_prefix()}.*"
        schema = payload_schema(doc, f"{contract.event_type()}:Message")
        event = json.loads(to_bytes(make_event(sample_events[contract.event_type()])))
        jsonschema.validate(event, schema)  # the real envelope, data and all
        broken = {**event, "type": "dk.danskit.something.else.v1"}
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, schema)
        no_data = {k: v for k, v in event.items() if k != "data"}
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(no_data, schema)


def test_consumers_are_documented_with_their_durables():
    doc = specification("notifications", [contracts.MemberJoined, contracts.MeetingScheduled])
    assert {"notifications-member-joined-v1", "notifications-meeting-scheduled-v1"} <= set(doc["channels"])
    assert doc["channels"]["notifications-meeting-scheduled-v1"]["address"] == "meetings.meeting.scheduled.v1.*"
