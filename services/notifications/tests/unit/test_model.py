"""What is owed to whom: one welcome per member and group, one invitation per member, meeting and sequence."""

import uuid
from datetime import UTC, datetime, timedelta

from notifications.domain import model

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def test_welcome_is_owed_once_per_member_and_group():
    member, group = uuid.uuid4(), uuid.uuid4()
    a = model.welcome(member, group, uuid.uuid4(), now=NOW)
    b = model.welcome(member, group, uuid.uuid4(), now=NOW)  # the same join, seen again as another event
    assert a.dedupe_key == b.dedupe_key and a.id != b.id
    assert model.welcome(member, uuid.uuid4(), uuid.uuid4(), now=NOW).dedupe_key != a.dedupe_key
    assert a.kind == model.WELCOME and a.payload == {"group_id": str(group)}


def test_invitations_go_to_each_member_once_and_a_new_sequence_is_owed_again():
    meeting, cause = uuid.uuid4(), uuid.uuid4()
    members = [uuid.uuid4() for _ in range(3)]
    owed = model.invitations(meeting, 0, [*members, members[0]], cause, now=NOW)
    assert sorted(d.member_id for d in owed) == sorted(members)
    assert len({d.dedupe_key for d in owed}) == 3
    again = model.invitations(meeting, 0, members, uuid.uuid4(), now=NOW)
    assert {d.dedupe_key for d in again} == {d.dedupe_key for d in owed}
    updated = model.invitations(meeting, 1, members, uuid.uuid4(), now=NOW)
    assert not {d.dedupe_key for d in updated} & {d.dedupe_key for d in owed}


def test_retry_delay_grows_and_is_capped():
    delays = [model.retry_delay(n) for n in range(1, 20)]
    assert delays[0] == timedelta(seconds=2) and delays[2] == timedelta(seconds=8)
    assert delays == sorted(delays) and max(delays) == timedelta(minutes=10)


def test_giving_up():
    assert model.gives_up(1, 8, permanent=True)
    assert not model.gives_up(7, 8, permanent=False)
    assert model.gives_up(8, 8, permanent=False)
