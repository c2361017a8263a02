"""The CloudEvents envelope: what we write is a valid CloudEvent by the spec's own library; what we read is strict."""

from __future__ import annotations

import json

import pytest
from cloudevents.core.formats.json import JSONFormat

from netvaerk_shared import tracing
from netvaerk_shared.envelope import MalformedEvent, make_event, parse_event, to_bytes


@pytest.mark.parametrize(
    "type_",
    [
        "dk.danskit.member.joined.v1",
        "dk.danskit.meeting.scheduled.v1",
        "dk.danskit.member.registered.v1",
        "dk.danskit.group.created.v1",
        "dk.danskit.notification.sent.v1",
    ],
)
def test_written_event_is_a_valid_cloudevent(type_, sample_events):
    data = sample_events[type_]
    body = to_bytes(make_event(data))
    parsed = JSONFormat().read(None, body)  # the CloudEvents SDK refuses what lacks required attributes
    assert parsed.get_type() == type_
    assert parsed.get_source() == data.source()
    assert parsed.get_subject() == data.aggregate_id()
    raw = json.loads(body)
    assert raw["specversion"] == "1.0" and raw["datacontenttype"] == "application/json"
    assert raw["time"].endswith("Z")
    event, back = parse_event(body)
    assert back == data


def test_spec_library_refuses_what_we_refuse():
    body = json.dumps({"specversion": "1.0", "id": "x", "type": "dk.danskit.member.joined.v1"}).encode()
    with pytest.raises(Exception, match="source"):
        JSONFormat().read(None, body)
    with pytest.raises(MalformedEvent, match="not a CloudEvent: source"):
        parse_event(body)


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"not json at all", "not JSON"),
        (b"[1, 2]", "not a CloudEvent"),
        (json.dumps({"specversion": "0.3", "id": "1", "source": "/x", "type": "t"}).encode(), "not a CloudEvent"),
        (
            json.dumps({"specversion": "1.0", "id": "1", "source": "/x", "type": "dk.danskit.nope.v1"}).encode(),
            "unknown event type",
        ),
        (
            json.dumps(
                {
                    "specversion": "1.0",
                    "id": "1",
                    "source": "/members",
                    "type": "dk.danskit.member.joined.v1",
                    "data": {"member_id": "not-a-uuid"},
                }
            ).encode(),
            "breaks the dk.danskit.member.joined.v1 contract",
        ),
    ],
)
def test_malformed_messages_are_refused_with_a_reason(body, reason):
    with pytest.raises(MalformedEvent, match=reason):
        parse_event(body)


def test_trace_context_travels_into_the_event(sample_events):
    incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    token = tracing.current_traceparent.set(incoming)
    try:
        event = make_event(sample_events["dk.danskit.member.joined.v1"])
    finally:
        tracing.current_traceparent.reset(token)
    assert tracing.trace_id_of(event.traceparent) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert event.traceparent != incoming  # a child span, same trace
    assert make_event(sample_events["dk.danskit.member.joined.v1"]).traceparent is None


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        "00-" + "0" * 32 + "-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01",
    ],
)
def test_invalid_traceparent_starts_a_new_trace(value):
    child = tracing.child_of(value)
    assert tracing.parse(child) is not None
    assert tracing.trace_id_of(child) != tracing.trace_id_of(value)
