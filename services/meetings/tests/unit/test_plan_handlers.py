"""The plan's handlers with small fakes: who may, what commits, and which contracts go out (and that each validates
against its checked-in JSON Schema)."""

from datetime import UTC, date, datetime, time, timedelta
from uuid import uuid4

import jsonschema
import pytest

from meetings.domain import commands
from meetings.domain.errors import Conflict, Forbidden, NotFound
from meetings.domain.model import KEEP, AgendaItem, Meeting
from meetings.domain.series import Recurrence
from meetings.service_layer import handlers
from meetings.service_layer.translator import to_contract
from netvaerk_shared.contracts import meetings as contracts
from netvaerk_shared.contracts.__main__ import schema_for
from netvaerk_testing.fakes import FakeUnitOfWork

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
GROUP, COORDINATOR, MEMBER = uuid4(), uuid4(), uuid4()


class FakePlan:
    def __init__(self, store):
        self.store = store
        self.seen = []
        self.saved = []

    async def coordinates(self, group_id, member_id):
        return self.store["roles"].get((group_id, member_id)) == "coordinator"

    async def get(self, meeting_id):
        meeting = self.store["meetings"].get(meeting_id)
        if meeting is not None:
            self.seen.append(meeting)
        return meeting

    async def update(self, meeting):
        self.saved.append(("meeting", meeting.id, meeting.sequence))

    async def save_agenda(self, meeting):
        self.saved.append(("agenda", meeting.id, len(meeting.agenda)))

    async def add_series(self, series, meetings):
        self.store["series"][series.id] = (series, meetings)
        for m in meetings:
            self.store["meetings"][m.id] = m
            self.seen.append(m)

    async def series_group(self, series_id):
        found = self.store["series"].get(series_id)
        return found[0].group_id if found else None

    async def series_meetings(self, series_id):
        meetings = self.store["series"][series_id][1]
        self.seen.extend(meetings)
        return meetings


class FakeRosters:
    async def group_known(self, group_id):
        return group_id == GROUP

    async def group_archived(self, group_id):
        return False


class FakeRepositories:
    def __init__(self, store):
        self.plan = FakePlan(store)
        self.rosters = FakeRosters()

    @property
    def seen(self):
        return self.plan.seen


def setup(clock=NOW):
    meeting = Meeting.schedule(
        group_id=GROUP,
        title="Vintermøde",
        starts_at=NOW + timedelta(days=14),
        ends_at=NOW + timedelta(days=14, hours=3),
        now=NOW,
        agenda=[AgendaItem(kind="check_in", title="Runden", minutes=30)],
    )
    meeting.events.clear()
    store = {
        "meetings": {meeting.id: meeting},
        "series": {},
        "roles": {(GROUP, COORDINATOR): "coordinator", (GROUP, MEMBER): "member"},
    }
    holder = {}

    def repositories(conn):
        holder["repo"] = FakeRepositories(store)
        return holder["repo"]

    uow = FakeUnitOfWork(repositories=repositories, translate=to_contract, clock=lambda: clock)
    return uow, meeting, store, holder


def assert_valid(event):
    jsonschema.validate(event.model_dump(mode="json"), schema_for(type(event)))


@pytest.mark.parametrize(
    "make",
    [
        lambda m, by: commands.RescheduleMeeting(meeting_id=m, by=by, capacity=5),
        lambda m, by: commands.CancelMeeting(meeting_id=m, reason="Nej", by=by),
        lambda m, by: commands.ReplaceAgenda(meeting_id=m, agenda=(), by=by),
        lambda m, by: commands.RecordMinutes(meeting_id=m, minutes="Referat", by=by),
    ],
)
async def test_only_a_coordinator_or_the_administration_may_change_a_meeting(make):
    for refused in (MEMBER, uuid4()):
        uow, meeting, _, _ = setup()
        with pytest.raises(Forbidden, match="coordinator"):
            await handlers.handle(make(meeting.id, refused), uow)
        assert not uow.committed and uow.published == [] and meeting.sequence == 0
    uow, _, _, _ = setup()
    with pytest.raises(NotFound):
        await handlers.handle(make(uuid4(), None), uow)


async def test_a_coordinator_moves_the_meeting_and_the_contract_says_where_it_was():
    uow, meeting, _, holder = setup()
    before = meeting.starts_at
    await handlers.handle(
        commands.RescheduleMeeting(
            meeting_id=meeting.id,
            by=COORDINATOR,
            starts_at=before + timedelta(days=1),
            ends_at=meeting.ends_at + timedelta(days=1),
        ),
        uow,
    )
    [event] = uow.published
    assert isinstance(event, contracts.MeetingRescheduled)
    assert (event.previous_starts_at, event.starts_at, event.sequence) == (before, before + timedelta(days=1), 1)
    assert holder["repo"].plan.saved == [("meeting", meeting.id, 1)]
    assert_valid(event)


async def test_an_unchanged_meeting_saves_nothing_and_publishes_nothing():
    uow, meeting, _, holder = setup()
    await handlers.handle(commands.RescheduleMeeting(meeting_id=meeting.id, capacity=KEEP), uow)
    assert uow.committed and uow.published == [] and holder["repo"].plan.saved == []


async def test_cancel_agenda_and_minutes_publish_their_contracts():
    uow, meeting, _, _ = setup()
    agenda = (AgendaItem(kind="talk", title="Oplæg", minutes=45, materials=("https://example.org/a.pdf",)),)
    await handlers.handle(commands.ReplaceAgenda(meeting_id=meeting.id, agenda=agenda), uow)
    await handlers.handle(commands.CancelMeeting(meeting_id=meeting.id, reason="Syg"), uow)
    updated, cancelled = uow.published
    assert isinstance(updated, contracts.AgendaUpdated) and updated.agenda[0].materials == agenda[0].materials
    assert isinstance(cancelled, contracts.MeetingCancelled) and (cancelled.reason, cancelled.sequence) == ("Syg", 2)
    for event in uow.published:
        assert_valid(event)
    with pytest.raises(Conflict):
        await handlers.handle(commands.CancelMeeting(meeting_id=meeting.id, reason="Igen"), uow)

    later, meeting2, _, _ = setup(clock=NOW + timedelta(days=15))
    await handlers.handle(commands.RecordMinutes(meeting_id=meeting2.id, minutes="Referat"), later)
    [held] = later.published
    assert held.status == contracts.MeetingStatus.held and held.minutes == "Referat"
    assert_valid(held)


RULE = Recurrence(months=(3, 6, 9, 12), weekday="tuesday", week=2, starts=time(13), ends=time(16))


async def test_a_series_is_planned_in_one_unit_of_work_and_cancelled_as_one():
    uow, _, store, _ = setup()
    cmd = commands.PlanSeries(group_id=GROUP, title="Netværksmøde", rule=RULE, first_day=date(2027, 1, 1), count=4)
    with pytest.raises(Forbidden):
        await handlers.handle(commands.PlanSeries(**{**cmd.__dict__, "by": MEMBER}), uow)
    with pytest.raises(NotFound, match="unknown"):
        await handlers.handle(commands.PlanSeries(**{**cmd.__dict__, "group_id": uuid4()}), uow)
    assert uow.published == [] and store["series"] == {}

    series = await handlers.handle(commands.PlanSeries(**{**cmd.__dict__, "by": COORDINATOR}), uow)
    assert [type(e) for e in uow.published] == [contracts.MeetingScheduled] * 4
    assert {e.series_id for e in uow.published} == {series.id}
    _, meetings = store["series"][series.id]
    meetings[1].cancel(reason="Ferie", now=NOW)
    meetings[1].events.clear()

    uow.published.clear()
    await handlers.handle(commands.CancelSeries(series_id=series.id, reason="Pause"), uow)
    assert [type(e) for e in uow.published] == [contracts.MeetingCancelled] * 3  # the cancelled one stays as it was
    assert [m.cancel_reason for m in meetings] == ["Pause", "Ferie", "Pause", "Pause"]
    with pytest.raises(NotFound):
        await handlers.handle(commands.CancelSeries(series_id=uuid4(), reason="x"), uow)
