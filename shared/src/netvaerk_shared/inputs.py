"""The one input policy for text at every service's edge (STYLE 15): every string a client sends goes through one of
these rules, so no handler has to defend itself and PostgreSQL and SQLite see the same world. A field states its
rule as metadata of its type, which Pydantic applies and a type checker reads: `name: Annotated[str, Line(200)]`,
`phone: Annotated[str, OptionalLine(40)] | None = None`, `capacity: Annotated[int, Integer(ge=1)] | None`.

- Unicode NFC, then trimmed of (Unicode) spaces at both ends.
- Control characters are refused, naming the field and the character: C0 (NUL, CR, LF, TAB, ...), DEL and C1, the
  line and paragraph separators U+2028/U+2029, and lone surrogates (which no database can store). Multi-line fields
  (descriptions, minutes) keep line breaks and tabs; CRLF and CR become LF.
- A required field that is blank after trimming is refused; an optional one becomes None (or its default).
- Every string has a maximum length and every list a maximum count. The JSON Schema (and so the OpenAPI document)
  says all of this with `minLength`/`maxLength`/`pattern`, so a client can know the rules without trying. The patterns
  name no surrogate code points: a lone surrogate is no Unicode character (JSON Schema's strings are made of those),
  and regex engines without them, such as Rust's `regex` (jsonschema-rs, and with it schemathesis), reject the whole
  pattern, and then a validator checks nothing and a generator ignores it. The code still refuses lone surrogates.
- Scalars are JSON-strict where Pydantic's lax mode would read more than the schema says: `Flag` is true/false only
  (not 0, 1 or "yes"), `Integer` refuses strings and booleans ("5", true), `Moment` is an RFC 3339 string, never a
  number of seconds.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import annotated_types
from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field, Strict, WithJsonSchema
from pydantic_core import PydanticCustomError

# Spaces trimmed at both ends: ECMAScript's \s without the control characters, so the schema's pattern and the code
# agree whichever regex dialect a client uses.
_SPACES = " \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000\ufeff"
_SPACES_RE = r" \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000\ufeff"
_LINE_FORBIDDEN_RE = r"\u0000-\u001f\u007f-\u009f\u2028\u2029"
_MULTI_FORBIDDEN_RE = r"\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f"
_MULTI_SPACES = _SPACES + "\t\n\r\u2028\u2029"
_MULTI_SPACES_RE = _SPACES_RE + r"\t\n\r\u2028\u2029"

LINE_PATTERN = f"^[^{_LINE_FORBIDDEN_RE}]*$"
LINE_REQUIRED_PATTERN = f"^[{_SPACES_RE}]*[^{_LINE_FORBIDDEN_RE}{_SPACES_RE}][^{_LINE_FORBIDDEN_RE}]*$"
MULTI_PATTERN = f"^[^{_MULTI_FORBIDDEN_RE}]*$"


def _forbidden_line(ch: str) -> bool:
    o = ord(ch)
    return o < 0x20 or 0x7F <= o <= 0x9F or o in (0x2028, 0x2029) or 0xD800 <= o <= 0xDFFF


def _forbidden_multi(ch: str) -> bool:
    o = ord(ch)
    return (o < 0x20 and ch not in "\t\n\r") or 0x7F <= o <= 0x9F or 0xD800 <= o <= 0xDFFF


def _refuse(text: str, forbidden: Callable[[str], bool]) -> None:
    for index, ch in enumerate(text):
        if forbidden(ch):
            raise PydanticCustomError(
                "control_character",
                "Control characters are not allowed (found U+{code} at position {position}).",
                {"code": f"{ord(ch):04X}", "position": index},
            )


def clean_line(text: str, *, required: bool, max_length: int) -> str | None:
    """One line of text by the policy; '' or None (as `required` says) for an optional blank."""
    _refuse(text, _forbidden_line)
    text = unicodedata.normalize("NFC", text).strip(_SPACES)
    return _finish(text, required=required, max_length=max_length)


def clean_multiline(text: str, *, required: bool, max_length: int) -> str | None:
    _refuse(text, _forbidden_multi)
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n")).strip(_MULTI_SPACES)
    return _finish(text, required=required, max_length=max_length)


def _finish(text: str, *, required: bool, max_length: int) -> str | None:
    if not text:
        if required:
            raise PydanticCustomError("blank", "This field must not be blank.")
        return None
    if len(text) > max_length:  # NFC can lengthen a few rare characters
        raise PydanticCustomError("too_long", "At most {max} characters.", {"max": max_length})
    return text


class Rules(annotated_types.GroupedMetadata):
    """Several Pydantic annotations as one, for `Annotated[str, Line(200)]` (Pydantic unpacks them in order)."""

    def __init__(self, *annotations: Any) -> None:
        self.annotations = annotations

    def __iter__(self) -> Iterator[Any]:
        return iter(self.annotations)


def Line(max_length: int, *, examples: list[str] | None = None, description: str | None = None) -> Rules:
    """A required single line of at most `max_length` characters."""
    return Rules(
        Field(max_length=max_length, examples=examples, description=description),
        AfterValidator(lambda v: clean_line(v, required=True, max_length=max_length)),
        WithJsonSchema(_schema(max_length, LINE_REQUIRED_PATTERN, 1, examples, description)),
    )


def OptionalLine(max_length: int, *, examples: list[str] | None = None, description: str | None = None) -> Rules:
    """An optional single line: blank becomes None. Use as `Annotated[str, OptionalLine(200)] | None = None`."""
    return Rules(
        Field(max_length=max_length, examples=examples, description=description),
        AfterValidator(lambda v: clean_line(v, required=False, max_length=max_length)),
        WithJsonSchema(_schema(max_length, LINE_PATTERN, 0, examples, description)),
    )


def Multiline(max_length: int, *, description: str | None = None) -> Rules:
    """Optional text that may hold several lines (line breaks kept as \\n); blank becomes ''."""
    return Rules(
        Field(max_length=max_length, description=description),
        AfterValidator(lambda v: clean_multiline(v, required=False, max_length=max_length) or ""),
        WithJsonSchema(_schema(max_length, MULTI_PATTERN, 0, None, description)),
    )


def _schema(
    max_length: int, pattern: str, min_length: int, examples: list[str] | None, description: str | None
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "maxLength": max_length, "pattern": pattern}
    if min_length:
        schema["minLength"] = min_length
    if examples:
        schema["examples"] = examples
    if description:
        schema["description"] = description
    return schema


# ------------------------------------------------------------------------------------------- JSON-strict scalars

Flag = Annotated[bool, Strict()]
"""A JSON boolean: true or false, nothing Pydantic would read as one (0, 1, "yes", "on")."""


def _json_integer(value: Any) -> Any:
    # bool is an int in Python; a string is not a JSON number. 5.0 stays: JSON Schema counts it as the integer 5.
    if isinstance(value, (bool, str)):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


def Integer(*, ge: int | None = None, le: int | None = None) -> Rules:
    """A JSON integer within [ge, le]: "5" and true are refused, not converted. (annotated_types' Interval, not
    Field(ge=, le=): inside `Annotated[int, Integer(...)] | None` a Field's bounds would reach the schema as unknown
    `ge`/`le` keys while still being enforced.)"""
    return Rules(annotated_types.Interval(ge=ge, le=le), BeforeValidator(_json_integer))


def _json_string(value: Any) -> Any:
    if not isinstance(value, str):
        raise PydanticCustomError("datetime_type", "Input should be an ISO 8601 date and time string")
    return value


Moment = Annotated[AwareDatetime, BeforeValidator(_json_string)]
"""An ISO 8601 / RFC 3339 date-time string with a UTC offset; a number (Unix seconds) is refused, not converted."""


# ------------------------------------------------------------------------------------------------------ email

# email-validator (behind EmailStr) refuses what `format: email` alone allows: a domain without a period and the
# special-use names it can never deliver to (RFC 6761/6762/7686: .arpa, .invalid, .local, .localhost, .onion, .test),
# a domain label over 63 characters, a top-level domain ending in a digit. A local part over 64 characters it takes,
# but no mail server has to: refused here as well (and JSON Schema's `format: email` refuses it too).
# The schema says so (in any letter case) with a pattern and a `not` pattern: plain regular expressions without
# look-around, so every JSON Schema validator can check them.
_SPECIAL_USE = ("arpa", "invalid", "local", "localhost", "onion", "test")
_ANY_CASE = "|".join("".join(f"[{c}{c.upper()}]" for c in name) for name in _SPECIAL_USE)
# at most 64 characters before the @ (RFC 5321), 63 in a domain label; the top-level domain ends with a letter
EMAIL_PATTERN = r"^[^@]{1,64}@(?:[^@.]{1,63}\.)+[^@.]{0,62}[A-Za-z\u0080-\uffff]$"
EMAIL_SPECIAL_USE_PATTERN = f"[@.](?:{_ANY_CASE})$"


def Email(max_length: int = 254, *, examples: list[str] | None = None) -> Rules:
    """An email address a message can be sent to: email-validator decides, the schema tells. Use as
    `Annotated[EmailStr, Email()]`."""
    schema: dict[str, Any] = {
        "type": "string",
        "format": "email",
        "maxLength": max_length,
        "pattern": EMAIL_PATTERN,
        "not": {"pattern": EMAIL_SPECIAL_USE_PATTERN},
        "description": "An address on a public domain (not .test, .local, .invalid, .localhost, .onion or .arpa)",
    }
    if examples:
        schema["examples"] = examples
    return Rules(Field(max_length=max_length), AfterValidator(_local_part_fits), WithJsonSchema(schema))


def _local_part_fits(address: str) -> str:
    if len(address.rpartition("@")[0]) > 64:
        raise PydanticCustomError(
            "value_error", "value is not a valid email address: at most 64 characters before the @-sign."
        )
    return address
