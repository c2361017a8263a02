"""Hostile variants of a valid request, derived from the service's own OpenAPI document: every string field with NUL,
CR/LF, other control characters, only spaces, one character too many; every list one item over its maximum. The
hostile-input suites of the services send them all and expect a 4xx problem+json naming the field, never a 5xx."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

CONTROL = {
    "NUL": "Eks\x00empel",
    "CRLF header injection": "Evil\r\nBcc: victim@example.net",
    "LF": "to\nlinjer",
    "unit separator only": "\x1d",
    "C1 (NEL)": "Eks\x85empel",
    "DEL": "Eks\x7fempel",
    "line separator": "Eks\u2028empel",
    "escape sequence": "\x1b[31mrød\x1b[0m",
}
LINE_BREAKS = {"CRLF header injection", "LF", "line separator"}
BLANK = " \u00a0\u3000 "


@dataclass(frozen=True)
class Variant:
    label: str
    field: str  # dotted path as the problem's `errors[].field` names it
    body: Any


def _resolve(schema: dict, document: dict) -> dict:
    while "$ref" in schema:
        ref = schema["$ref"].removeprefix("#/")
        node: Any = document
        for part in ref.split("/"):
            node = node[part]
        schema = node
    return schema


def _non_null(schema: dict, document: dict) -> dict:
    schema = _resolve(schema, document)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [_resolve(s, document) for s in schema[key] if _resolve(s, document).get("type") != "null"]
            if len(options) == 1:
                return options[0]
    return schema


def _multiline(schema: dict) -> bool:
    pattern = schema.get("pattern")
    return pattern is not None and re.fullmatch(pattern, "a\nb") is not None


def _walk(value: Any, schema: dict, document: dict, path: tuple) -> Iterator[tuple[tuple, dict, str]]:
    """(path, schema, kind) for every string and list in `value`, as the schema describes them."""
    schema = _non_null(schema, document)
    kind = schema.get("type")
    if kind == "object" and isinstance(value, dict):
        for name, sub in (schema.get("properties") or {}).items():
            if name in value and value[name] is not None:
                yield from _walk(value[name], sub, document, (*path, name))
    elif kind == "array" and isinstance(value, list):
        yield path, schema, "array"
        for index, item in enumerate(value):
            yield from _walk(item, schema.get("items") or {}, document, (*path, index))
    elif (
        kind == "string" and isinstance(value, str) and "enum" not in schema and schema.get("format") in (None, "email")
    ):
        yield path, schema, "string"


def _replace(body: Any, path: tuple, new: Any) -> Any:
    out = copy.deepcopy(body)
    node = out
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = new
    return out


def _get(body: Any, path: tuple) -> Any:
    for part in path:
        body = body[part]
    return body


def request_schema(document: dict, method: str, path: str) -> dict:
    operation = document["paths"][path][method.lower()]
    return operation["requestBody"]["content"]["application/json"]["schema"]


def variants(document: dict, method: str, path: str, valid: dict) -> list[Variant]:
    """Every hostile variant of `valid` (a body the operation accepts) that the document's limits must refuse.
    Give `valid` at least one item in each list and a value for each optional string, so that all are reached."""
    out: list[Variant] = []
    for where, schema, kind in _walk(valid, request_schema(document, method, path), document, ()):
        name = ".".join(str(p) for p in where)
        if kind == "array":
            limit = schema.get("maxItems")
            assert limit is not None, f"{method} {path}: the list {name} has no maxItems"
            current = _get(valid, where)
            filler = current[0] if current else "x"
            out.append(Variant(f"{limit + 1} items", name, _replace(valid, where, [filler] * (limit + 1))))
            continue
        limit = schema.get("maxLength")
        assert limit is not None, f"{method} {path}: the string {name} has no maxLength"
        for label, text in CONTROL.items():
            if label in LINE_BREAKS and _multiline(schema):
                continue
            out.append(Variant(label, name, _replace(valid, where, text)))
        out.append(Variant(f"{limit + 1} characters", name, _replace(valid, where, "x" * (limit + 1))))
        out.append(Variant(f"{limit + 1} characters of æ", name, _replace(valid, where, "æ" * (limit + 1))))
        if schema.get("minLength", 0) >= 1:
            out.append(Variant("only spaces", name, _replace(valid, where, BLANK)))
    return out


def query_variants(document: dict, path: str) -> list[tuple[str, str, dict[str, str]]]:
    """(label, parameter, query) for every query parameter of GET `path`, each with hostile text."""
    operation = document["paths"][path]["get"]
    out = []
    for parameter in operation.get("parameters", []):
        if parameter.get("in") != "query":
            continue
        for label, text in {**CONTROL, "overlong": "9" * 5000}.items():
            out.append((label, parameter["name"], {parameter["name"]: text}))
    return out
