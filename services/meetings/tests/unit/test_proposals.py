"""Topic proposals, pure: who proposes what, for which meeting; backing; taking one into a meeting's agenda, or
declining it with a reason, once."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from meetings.domain.errors import Conflict, Invalid
from meetings.domain.events import AgendaUpdated
from meetings.domain.model import AgendaItem, Meeting
from meetings.domain.proposal import Proposal, ProposalAccepted, ProposalDeclined, ProposalSubmitted

NOW = datetime(2027, 2, 1, 9, 0, tzinfo=UTC)
GROUP = uuid4()


def meeting(group_id=GROUP, *, days=30, hours=3, agenda=()) -> Meeting:
    starts = NOW + timedelta(days=days)
    m = Meeting.schedule(
        group_id=group_id,
        title="Forårsmøde",
        starts_at=starts,
        ends_at=starts + timedelta(hours=hours),
        now=NOW,
        agenda=agenda,
    )
    m.events.clear()
    return m


def proposal(kind="talk", **kw) -> Proposal:
    p = Proposal.submit(
        group_id=GROUP,
        member_id=kw.pop("member_id", uuid4()),
        kind=kind,
        title=kw.pop("title", "  AI i sagsbehandlingen  "),
        now=NOW,
        speaker=kw.pop("speaker", "Mette Eksempel" if kind == "talk" else None),
        speaker_organisation=kw.pop("speaker_organisation", "Eksempel Kommune" if kind == "talk" else None),
        **kw,
    )
    return p


def test_a_submitted_proposal_is_open_and_says_so():
    p = proposal(description="  Hvad vi lærte  ")
    assert p.status == "open" and p.title == "AI i sagsbehandlingen" and p.description == "Hvad vi lærte"
    assert p.events == [ProposalSubmitted(p.id)]


def test_a_proposal_for_a_meeting_must_name_a_coming_meeting_of_the_group():
    m = meeting()
    assert proposal(for_meeting=m).for_meeting_id == m.id
    with pytest.raises(Invalid, match="another group"):
        proposal(for_meeting=meeting(uuid4()))
    m.cancel(reason="Ingen lokaler", now=NOW)
    with pytest.raises(Invalid, match="coming meetings"):
        proposal(for_meeting=m)
    started = meeting()
    started.starts_at = NOW - timedelta(minutes=1)
    with pytest.raises(Invalid, match="coming meetings"):
        proposal(for_meeting=started)


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"kind": "lecture"}, "kind"),
        ({"title": "   "}, "needs a title"),
        ({"title": "x" * 201}, "at most 200"),
        ({"description": "x" * 4001}, "at most 4000"),
        ({"kind": "topic", "speaker": "Mette Eksempel"}, "Only an offered talk"),
    ],
)
def test_bad_proposals_are_refused_with_a_reason(kw, message):
    with pytest.raises(Invalid, match=message):
        proposal(**kw)


def test_backing_is_for_others_and_only_while_open():
    proposer = uuid4()
    p = proposal(member_id=proposer)
    p.back(uuid4())
    with pytest.raises(Invalid, match="proposed it"):
        p.back(proposer)
    p.decline("Ikke i år", now=NOW)
    with pytest.raises(Conflict, match="declined"):
        p.back(uuid4())
    with pytest.raises(Conflict):
        p.withdraw_backing()


def test_accepting_puts_the_talk_last_on_the_agenda_and_records_both_events():
    m = meeting(agenda=(AgendaItem(kind="check_in", title="Runde", minutes=30),))
    p = proposal()
    p.events.clear()
    placed = p.accept(m, minutes=45, now=NOW)
    assert (placed.position, placed.kind, placed.title, placed.minutes) == (2, "talk", "AI i sagsbehandlingen", 45)
    assert (placed.speaker, placed.speaker_organisation) == ("Mette Eksempel", "Eksempel Kommune")
    assert [i.title for i in m.agenda] == ["Runde", "AI i sagsbehandlingen"]
    assert m.sequence == 1 and m.events == [AgendaUpdated(m.id)]  # the calendar sees the change
    assert p.status == "accepted" and p.meeting_id == m.id and p.agenda_position == 2
    assert p.events == [ProposalAccepted(p.id, m.id, 2)]
    with pytest.raises(Conflict, match="already accepted"):
        p.accept(m, minutes=10, now=NOW)
    with pytest.raises(Conflict, match="already accepted"):
        p.decline("Alligevel ikke", now=NOW)


def test_a_topic_becomes_a_discussion():
    m = meeting()
    assert proposal("topic").accept(m, minutes=30, now=NOW).kind == "discussion"


def test_accepting_keeps_the_meetings_rules():
    p = proposal()
    with pytest.raises(Invalid, match="another group"):
        p.accept(meeting(uuid4()), minutes=30, now=NOW)
    full = meeting(hours=1, agenda=(AgendaItem(kind="talk", title="Oplæg", minutes=45),))
    with pytest.raises(Invalid, match="agenda takes 75 minutes"):
        p.accept(full, minutes=30, now=NOW)
    assert [i.title for i in full.agenda] == ["Oplæg"] and full.sequence == 0 and not full.events
    cancelled = meeting()
    cancelled.cancel(reason="Aflyst", now=NOW)
    with pytest.raises(Conflict, match="cancelled"):
        p.accept(cancelled, minutes=30, now=NOW)
    for minutes in (0, 601):
        with pytest.raises(Invalid, match="between 1 and 600"):
            p.accept(meeting(), minutes=minutes, now=NOW)
    assert p.status == "open" and p.events == [ProposalSubmitted(p.id)]


def test_declining_needs_a_reason_and_tells_it():
    p = proposal()
    for reason in ("", "   "):
        with pytest.raises(Invalid, match="Say why"):
            p.decline(reason, now=NOW)
    with pytest.raises(Invalid, match="at most 1000"):
        p.decline("x" * 1001, now=NOW)
    p.decline("  Emnet var på sidste møde ", now=NOW)
    assert p.status == "declined" and p.reason == "Emnet var på sidste møde" and p.decided_at == NOW
    assert p.events[-1] == ProposalDeclined(p.id, "Emnet var på sidste møde")
