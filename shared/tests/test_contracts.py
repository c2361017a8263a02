"""The v1 catalogue: checked-in JSON Schemas match the models, names follow the rules, contact data stays put."""

from __future__ import annotations

import json
import typing
import uuid
from datetime import UTC, datetime

import jsonschema
import pytest
from pydantic import BaseModel, ValidationError

from netvaerk_shared import contracts
from netvaerk_shared.contracts import EVENT_TYPES, PERSONAL_DATA_EVENTS
from netvaerk_shared.contracts.__main__ import SCHEMA_DIR, render
from netvaerk_shared.contracts.__main__ import main as schema_main

CONTACT_FIELDS = {"email", "phone"}  # (a venue's address is not personal data)


@pytest.mark.parametrize("type_", sorted(EVENT_TYPES))
def test_checked_in_schema_matches_model(type_):
    path = SCHEMA_DIR / f"{type_}.json"
    assert path.exists(), f"{path.name} missing: run python -m netvaerk_shared.contracts --write"
    assert path.read_text(encoding="utf-8") == render(EVENT_TYPES[type_]), (
        f"{path.name} drifted from its model: run python -m netvaerk_shared.contracts --write and review the diff"
    )


def test_drift_is_detected(tmp_path, monkeypatch):
    """The check itself fails when a file differs from its model."""
    import netvaerk_shared.contracts.__main__ as cli

    for type_, cls in EVENT_TYPES.items():
        (tmp_path / f"{type_}.json").write_text(render(cls), encoding="utf-8")
    monkeypatch.setattr(cli, "SCHEMA_DIR", tmp_path)
    assert schema_main([]) == 0
    target = tmp_path / "dk.danskit.member.joined.v1.json"
    schema = json.loads(target.read_text())
    schema["properties"].pop("role")
    target.write_text(json.dumps(schema))
    assert schema_main([]) == 1


def test_no_extra_schema_files():
    on_disk = {p.name.removesuffix(".json") for p in SCHEMA_DIR.glob("*.json")}
    assert on_disk == set(EVENT_TYPES)


@pytest.mark.parametrize("type_", sorted(EVENT_TYPES))
def test_type_and_subject_follow_the_rules(type_):
    cls = EVENT_TYPES[type_]
    service, aggregate, event, version = cls.subject_prefix().split(".")
    assert type_ == f"dk.danskit.{aggregate}.{event}.{version}"
    assert service in {"members", "meetings", "notifications"}
    assert cls.source() == f"/{service}"
    assert version == "v1"
    assert cls.subject_field in cls.model_fields


def _field_names(model: type[BaseModel]) -> set[str]:
    names = set()
    for name, field in model.model_fields.items():
        names.add(name)
        for arg in [field.annotation, *typing.get_args(field.annotation)]:
            for inner in [arg, *typing.get_args(arg)]:
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    names |= _field_names(inner)
    return names


@pytest.mark.parametrize("type_", sorted(EVENT_TYPES))
def test_contact_data_only_in_the_events_allowed_to_carry_it(type_):
    carries = _field_names(EVENT_TYPES[type_]) & CONTACT_FIELDS
    if type_ in PERSONAL_DATA_EVENTS:
        assert carries
    else:
        assert not carries, f"{type_} carries contact data {carries}: refer to people by id"


def test_contracts_are_frozen_and_strict():
    joined = contracts.MemberJoined(
        member_id=uuid.uuid4(), group_id=uuid.uuid4(), role="member", joined_at=datetime.now(UTC)
    )
    with pytest.raises(ValidationError):
        joined.role = "coordinator"
    with pytest.raises(ValidationError):
        contracts.MemberJoined(member_id=uuid.uuid4(), group_id=uuid.uuid4(), role="owner", joined_at=datetime.now(UTC))
    with pytest.raises(ValidationError):
        contracts.MemberJoined(
            member_id=uuid.uuid4(), group_id=uuid.uuid4(), role="member", joined_at=datetime.now(UTC), surprise=1
        )


@pytest.mark.parametrize("type_", sorted(EVENT_TYPES))
def test_schema_file_validates_a_real_instance(type_, sample_events):
    schema = json.loads((SCHEMA_DIR / f"{type_}.json").read_text())
    instance = sample_events[type_].model_dump(mode="json")
    jsonschema.validate(instance, schema)
    broken = dict(instance)
    broken.pop(EVENT_TYPES[type_].subject_field)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)
