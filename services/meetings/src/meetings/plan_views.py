"""Read side of the year's plan: a series with its meetings, a group's series, and a series as one CSV file."""

from __future__ import annotations

import csv
import io
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from . import views
from .adapters import orm

CSV_COLUMNS = (
    "nr",
    "dato",
    "start",
    "slut",
    "tidszone",
    "status",
    "titel",
    "sted",
    "adresse",
    "vært",
    "online",
    "pladser",
    "tilmeldingsfrist",
    "aflysningsgrund",
    "møde_id",
    "sekvens",
)


def _series(row: Any) -> dict[str, Any]:
    return {
        "series_id": row.id,
        "group_id": row.group_id,
        "title": row.title,
        "timezone": row.timezone,
        "rule": row.rule,
        "first_day": row.first_day,
        "count": row.count,
        "planned_at": row.planned_at,
    }


async def get_series(engine: AsyncEngine, series_id: UUID) -> dict[str, Any] | None:
    """The series as planned, with its meetings as they are now (moved, cancelled, held), by start time."""
    s = orm.series
    async with engine.connect() as conn:
        row = (await conn.execute(select(s).where(s.c.id == series_id))).first()
        if row is None:
            return None
        meetings = await views._meetings(conn, orm.meetings.c.series_id == series_id)
    return {**_series(row), "meetings": meetings}


async def group_series(engine: AsyncEngine, group_id: UUID) -> list[dict[str, Any]] | None:
    s = orm.series
    async with engine.connect() as conn:
        if await views._group_row(conn, group_id) is None:
            return None
        rows = (await conn.execute(select(s).where(s.c.group_id == group_id).order_by(s.c.first_day, s.c.id))).all()
    return [_series(r) for r in rows]


def _cell(value: object) -> str:
    """A spreadsheet must not run what a coordinator typed: text that would start a formula gets a leading '."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def series_csv(series: dict[str, Any]) -> str:
    """The series as one CSV file (Danish headings, local wall-clock times of the series' zone), one meeting a row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for n, m in enumerate(series["meetings"], start=1):
        zone = ZoneInfo(m["timezone"])
        starts, ends = m["starts_at"].astimezone(zone), m["ends_at"].astimezone(zone)
        venue = m["venue"] or {}
        deadline = m["rsvp_deadline"].astimezone(zone).strftime("%Y-%m-%d %H:%M") if m["rsvp_deadline"] else ""
        writer.writerow(
            [
                _cell(v)
                for v in (
                    n,
                    starts.strftime("%Y-%m-%d"),
                    starts.strftime("%H:%M"),
                    ends.strftime("%H:%M"),
                    m["timezone"],
                    m["status"],
                    m["title"],
                    venue.get("name"),
                    venue.get("address"),
                    venue.get("host_organisation"),
                    m["online_url"],
                    m["capacity"],
                    deadline,
                    m["cancel_reason"],
                    m["meeting_id"],
                    m["sequence"],
                )
            ]
        )
    return out.getvalue()
