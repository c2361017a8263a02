"""The regenerate-or-check command for the services' checked-in OpenAPI documents, and the document checks."""

from __future__ import annotations

import json

import pytest

import netvaerk_shared.openapi_dump as dump
from netvaerk_testing.api_contract import validate_openapi


def test_drift_is_detected_and_write_repairs_it(tmp_path, monkeypatch):
    monkeypatch.setattr(dump, "path_for", lambda service: tmp_path / f"{service}.json")
    assert dump.main(["members"]) == 1  # missing
    assert dump.main(["--write", "members"]) == 0
    assert dump.main(["members"]) == 0
    document = json.loads((tmp_path / "members.json").read_text())
    document["paths"].pop("/groups")
    (tmp_path / "members.json").write_text(json.dumps(document))
    assert dump.main(["members"]) == 1
    assert dump.main(["--write", "members"]) == 0
    assert (tmp_path / "members.json").read_text(encoding="utf-8") == dump.render("members")


def _document(schema: dict) -> dict:
    return {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "paths": {},
        "components": {"schemas": {"Thing": schema}},
    }


def test_a_valid_document_passes():
    validate_openapi(dump.document("members"))


@pytest.mark.parametrize(
    "schema",
    [
        # a surrogate range: Python's re takes it, ECMA-262 (unicode mode) and Rust's regex refuse it
        {"type": "string", "pattern": "^[^\\u0000-\\u001f\\ud800-\\udfff]*$"},
        {"type": "string", "pattern": "[a-"},
        {"type": "strin"},  # not JSON Schema
    ],
)
def test_a_schema_no_validator_can_use_is_refused(schema):
    with pytest.raises(AssertionError):
        validate_openapi(_document(schema))
