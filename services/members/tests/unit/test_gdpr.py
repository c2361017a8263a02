"""The erasure's domain and translation, without I/O: the notice carries ids and the time only."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import uuid4

import jsonschema
import pytest

from members.domain.gdpr import Erasure, MemberErased
from members.service_layer.gdpr import member_subjects
from members.service_layer.translator import to_contract
from netvaerk_shared.contracts.__main__ import schema_for
from netvaerk_shared.contracts.members import MemberErased as MemberErasedContract

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def test_an_erasure_records_its_notice_once() -> None:
    member_id = uuid4()
    erasure = Erasure.of(member_id, NOW)
    assert erasure.events == [MemberErased(member_id=member_id, erased_at=NOW)]


def test_the_notice_is_translated_to_its_contract_with_ids_only() -> None:
    member_id = uuid4()
    erasure = Erasure.of(member_id, NOW)
    contract = to_contract(erasure.events[0], erasure)
    assert contract == MemberErasedContract(member_id=member_id, erased_at=NOW)
    assert contract.nats_subject() == f"members.member.erased.v1.{member_id}"
    jsonschema.validate(json.loads(contract.model_dump_json()), schema_for(MemberErasedContract))
    assert set(contract.model_dump()) == {"member_id", "erased_at"}  # ids and the time: no personal data


@pytest.mark.parametrize("event", ["registered", "updated", "joined", "left", "erased"])
def test_the_purge_filter_covers_every_event_of_the_member_and_no_one_else(event) -> None:
    member_id, other = uuid4(), uuid4()
    pattern = member_subjects(member_id).split(".")
    subject = f"members.member.{event}.v1.{member_id}".split(".")
    assert len(pattern) == len(subject) and all(p in ("*", s) for p, s in zip(pattern, subject, strict=True))
    assert pattern[-1] != str(other)
