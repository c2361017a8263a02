"""The plan's operations against hostile input, on PostgreSQL and SQLite alike: every string and list field of a
change, a cancellation, an agenda, minutes and a series (and the new fields of a meeting: materials, RSVP deadline),
derived from the OpenAPI document, with control characters, blanks and one character or item too many → 4xx
problem+json naming the field, never a 5xx, and nothing half-written (no meeting, series, agenda row or event, no
sequence raised)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from netvaerk_testing import hostile

from .test_hostile_input import meeting
from .test_meetings_flow import meetings_service
from .test_plan_flow import counts, roster_of, series_body

ITEM = {
    "kind": "talk",
    "title": "Agile kontrakter",
    "speaker": "Oplægsholder",
    "speaker_organisation": "Eksempel Leverandør A/S",
    "minutes": 30,
    "tags": ["SKI"],
    "materials": ["https://example.org/slides.pdf"],
}


def _future(days: int) -> str:
    return (datetime.now(UTC).replace(microsecond=0) + timedelta(days=days)).isoformat()


async def test_every_field_of_the_plan_refuses_hostile_input_and_nothing_is_written(clean_nats, database_url):
    async with meetings_service(database_url, clean_nats) as (client, js, runtime):
        group_id = uuid.uuid4()
        await roster_of(client, js, group_id)
        created = await client.post("/meetings", json=meeting(group_id, agenda=[ITEM]))
        assert created.status_code == 201, created.text
        meeting_id = created.json()["meeting_id"]
        planned = await client.post("/series", json=series_body(group_id, agenda=[ITEM], online_url="https://e.org/m"))
        assert planned.status_code == 201, planned.text
        series_id = planned.json()["series_id"]
        document = client._transport.app.openapi()
        before = await counts(runtime)

        operations = [
            ("POST", "/meetings", "/meetings", meeting(group_id, agenda=[ITEM], rsvp_deadline=_future(20))),
            (
                "PATCH",
                "/meetings/{meeting_id}",
                f"/meetings/{meeting_id}",
                {
                    "title": "Flyttet møde",
                    "starts_at": _future(31),
                    "ends_at": _future(32),
                    "venue": {"name": "Eksempelhuset", "address": "Eksempelvej 1", "host_organisation": "Eksempel A/S"},
                    "online_url": "https://meet.example.org/x",
                    "capacity": 20,
                    "rsvp_deadline": _future(25),
                },
            ),
            ("POST", "/meetings/{meeting_id}/cancel", f"/meetings/{meeting_id}/cancel", {"reason": "Syg"}),
            ("PUT", "/meetings/{meeting_id}/agenda", f"/meetings/{meeting_id}/agenda", {"agenda": [ITEM]}),
            ("PUT", "/meetings/{meeting_id}/minutes", f"/meetings/{meeting_id}/minutes", {"minutes": "Referat"}),
            (
                "POST",
                "/series",
                "/series",
                series_body(group_id, agenda=[ITEM], online_url="https://meet.example.org/serie"),
            ),
            ("POST", "/series/{series_id}/cancel", f"/series/{series_id}/cancel", {"reason": "Pause"}),
        ]
        total = 0
        for method, template, url, valid in operations:
            cases = hostile.variants(document, method, template, valid)
            assert cases, (method, template)
            total += len(cases)
            for variant in cases:
                response = await client.request(method, url, json=variant.body)
                assert 400 <= response.status_code < 500, (method, template, variant, response.text)
                assert response.headers["content-type"] == "application/problem+json", variant
                fields = [e["field"] for e in response.json().get("errors", [])]
                assert variant.field in fields, (method, template, variant, response.text)
        assert total > 300, total
        assert await counts(runtime) == before
        assert (await client.get(f"/meetings/{meeting_id}")).json()["sequence"] == 0

        # what the schema cannot say: a link that is no http(s) address, a number where a date is due, a time of day
        # that is no time of day, an unknown weekday
        for method, url, body in (
            ("PUT", f"/meetings/{meeting_id}/agenda", {"agenda": [{**ITEM, "materials": ["javascript:alert(1)"]}]}),
            ("PATCH", f"/meetings/{meeting_id}", {"online_url": "https://ex ample.org"}),
            ("PATCH", f"/meetings/{meeting_id}", {"rsvp_deadline": 1893456000}),
            ("PATCH", f"/meetings/{meeting_id}", {"sequence": 7}),
            ("POST", "/series", series_body(group_id, first_day=20270101)),
            ("POST", "/series", series_body(group_id, starts="24:00")),
            ("POST", "/series", series_body(group_id, weekday="tirsdag")),
            ("POST", "/series", series_body(group_id, months=[0])),
            ("POST", "/series", series_body(group_id, count=25)),
            ("POST", "/series", series_body(group_id, week=0)),
        ):
            response = await client.request(method, url, json=body)
            assert response.status_code == 422, (url, body, response.text)
            assert response.headers["content-type"] == "application/problem+json"
        assert await counts(runtime) == before

        # the ordinary ones still go through
        ok = await client.put(f"/meetings/{meeting_id}/agenda", json={"agenda": [ITEM]})
        assert ok.status_code == 200, ok.text
