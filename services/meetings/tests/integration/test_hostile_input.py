"""The meetings service's edge against hostile input, on PostgreSQL and SQLite alike: every string field of a meeting,
its venue and its agenda items with control characters, blanks and one character too many, every list over its
maximum → 4xx problem+json naming the field, never a 5xx, and nothing half-written (no meeting, no event)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from meetings.adapters import orm
from netvaerk_testing import hostile
from netvaerk_testing.plugin import wait_until

from .test_meetings_flow import _ok_json, group_created, meetings_service, publish


def _future(days: int, hour: int) -> str:
    day = (datetime.now(UTC) + timedelta(days=days)).date()
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC).isoformat()


def meeting(group_id, **overrides) -> dict:
    return {
        "group_id": str(group_id),
        "title": "Vintermøde: udbud, SKI og databeskyttelse",
        "starts_at": _future(30, 12),
        "ends_at": _future(30, 15),
        "timezone": "Europe/Copenhagen",
        "venue": {
            "name": "Rådhuset, mødesal 2",
            "address": "Rådhuspladsen 1, 1550 København V",
            "host_organisation": "Eksempel Kommune",
        },
        "online_url": "https://meet.example.org/vintermoede",
        "capacity": 30,
        "agenda": [
            {"kind": "check_in", "title": "Runden", "minutes": 30, "tags": ["netværk"]},
            {
                "kind": "talk",
                "title": "Agile kontrakter",
                "speaker": "Oplægsholder",
                "speaker_organisation": "Eksempel Leverandør A/S",
                "minutes": 60,
                "tags": ["SKI", "udbud"],
            },
        ],
        **overrides,
    }


async def _counts(runtime) -> tuple[int, int, int]:
    async with runtime.engine.connect() as conn:
        return tuple(
            [
                (await conn.execute(select(func.count()).select_from(t))).scalar_one()
                for t in (orm.meetings, orm.agenda_items, runtime.tables.outbox)
            ]
        )


async def test_every_field_refuses_hostile_text_and_nothing_is_written(clean_nats, database_url):
    async with meetings_service(database_url, clean_nats) as (client, js, runtime):
        group_id = uuid.uuid4()
        await publish(js, group_created(group_id))
        await wait_until(lambda: _ok_json(client, f"/groups/{group_id}"), message="the roster copy")
        document = client._transport.app.openapi()
        before = await _counts(runtime)
        cases = hostile.variants(document, "POST", "/meetings", meeting(group_id))
        assert len(cases) > 80
        for variant in cases:
            response = await client.post("/meetings", json=variant.body)
            assert 400 <= response.status_code < 500, (variant, response.text)
            assert response.headers["content-type"] == "application/problem+json", variant
            assert any(e["field"] == variant.field for e in response.json().get("errors", [])), (variant, response.text)
        assert await _counts(runtime) == before

        # an agenda that does not fit in the meeting, and a hostile link
        too_long = meeting(
            group_id,
            agenda=[
                {"kind": "talk", "title": "Langt oplæg", "minutes": 120},
                {"kind": "discussion", "title": "Drøftelse", "minutes": 61},
            ],
        )
        response = await client.post("/meetings", json=too_long)
        assert response.status_code == 422 and "181 minutes" in response.json()["detail"], response.text
        for url in ("javascript:alert(1)", "https://ex ample.org", "https://example.org/\r\nX: y"):
            response = await client.post("/meetings", json=meeting(group_id, online_url=url))
            assert response.status_code == 422, (url, response.text)
        assert await _counts(runtime) == before

        response = await client.post("/meetings", json=meeting(group_id))  # the ordinary one still goes through
        assert response.status_code == 201, response.text
        exactly = meeting(group_id, agenda=[{"kind": "talk", "title": "Hele mødet", "minutes": 180}])
        assert (await client.post("/meetings", json=exactly)).status_code == 201  # fills the meeting exactly


async def test_the_largest_valid_meeting_makes_an_event_far_below_the_nats_limit(clean_nats, database_url):
    async with meetings_service(database_url, clean_nats) as (client, js, runtime):
        group_id = uuid.uuid4()
        await publish(js, group_created(group_id))
        await wait_until(lambda: _ok_json(client, f"/groups/{group_id}"), message="the roster copy")
        item = {
            "kind": "talk",
            "title": "æ" * 200,
            "speaker": "ø" * 200,
            "speaker_organisation": "å" * 200,
            "minutes": 0,
            "tags": ["🙂" * 50] * 10,
        }
        largest = meeting(
            group_id,
            title="æ" * 200,
            venue={"name": "ø" * 200, "address": "å" * 500, "host_organisation": "æ" * 200},
            online_url="https://example.org/" + "a" * 1980,
            agenda=[item] * 50,
        )
        response = await client.post("/meetings", json=largest)
        assert response.status_code == 201, response.text
        async with runtime.engine.connect() as conn:
            size = (await conn.execute(select(func.max(func.length(runtime.tables.outbox.c.body))))).scalar_one()
        assert size < 400_000, size  # NATS's default max_payload is 1 MiB
