"""The gettext catalogues hold exactly the texts the code asks for, in every language, with the same placeholders;
the .po files are valid, complete and installed with the package."""

from __future__ import annotations

import ast
import string
import tomllib
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

import notifications
from notifications.adapters import catalogues, templates

PACKAGE = Path(notifications.__file__).parent
TEMPLATES = Path(templates.__file__)
# The families of ids the code builds from a meeting kind: text[f"{kind}_subject"] with kind "update", "cancel", ...
KIND_FAMILIES = {"{}_subject", "{}_intro"}


def _is_catalogue(node: ast.expr, *, in_templates: bool) -> bool:
    """`_TEXT[loc]` / `TEXT[loc]` / `texts(loc)` anywhere; in templates.py also its local alias `text`."""
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        return node.value.id in ("_TEXT", "TEXT")
    if isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute)):
        return (node.func.id if isinstance(node.func, ast.Name) else node.func.attr) == "texts"
    return in_templates and isinstance(node, ast.Name) and node.id == "text"


def _pattern(node: ast.JoinedStr) -> str:
    return "".join("{}" if isinstance(v, ast.FormattedValue) else str(v.value) for v in node.values)  # type: ignore[attr-defined]


def ids_used_in_code() -> set[str]:
    used: set[str] = set()
    families: set[str] = set()
    meeting_kinds: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Subscript) and _is_catalogue(node.value, in_templates=path == TEMPLATES):
                key = node.slice
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    used.add(key.value)
                elif isinstance(key, ast.JoinedStr):
                    families.add(_pattern(key))
                else:
                    pytest.fail(f"{path.name}:{node.lineno}: a text looked up by a computed id; teach this test")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "_meeting_message"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                meeting_kinds.add(node.args[0].value)
    unknown = families - KIND_FAMILIES
    assert not unknown, f"ids built as {sorted(unknown)}: teach this test which ids those are"
    used |= {family.format(kind) for family in families for kind in meeting_kinds}
    for value in vars(templates).values():
        if isinstance(value, catalogues.Family):
            used |= set(value.ids())
    return used


def test_the_languages_are_danish_first_then_english():
    assert catalogues.LOCALES == ("da", "en")
    assert catalogues.normalize_locale("en-GB") == "en" and catalogues.normalize_locale("de") == "da"


@pytest.mark.parametrize("locale", catalogues.LOCALES)
def test_every_id_the_code_uses_is_in_the_catalogue_and_nothing_else(locale):
    used = ids_used_in_code()
    assert len(used) > 40  # the scan found the code's lookups at all
    have = set(catalogues.texts(locale))
    assert sorted(used - have) == [], f"missing from {locale}"
    assert sorted(have - used) == [], f"{locale} holds ids the code no longer uses"


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


@pytest.mark.parametrize("locale", [loc for loc in catalogues.LOCALES if loc != catalogues.DEFAULT_LOCALE])
def test_placeholders_match_danish_for_every_id(locale):
    danish, other = catalogues.texts("da"), catalogues.texts(locale)
    assert set(other) == set(danish)
    for key, text in danish.items():
        assert _fields(other[key]) == _fields(text), key


@pytest.mark.parametrize("locale", catalogues.LOCALES)
def test_the_po_file_is_complete_and_plain(locale):
    path = catalogues.catalogue_path(locale)
    with path.open("rb") as po:
        catalog = read_po(po, abort_invalid=True)
    assert str(catalog.locale) == locale
    messages = [m for m in catalog if m.id]
    assert messages and all(m.string and not m.fuzzy for m in messages)
    assert not list(catalog.obsolete)
    assert len({m.id for m in messages}) == len(messages)
    for message in messages:
        _fields(str(message.string))  # a stray brace would raise here, as it would when the mail is built


def test_danish_words_and_dates_come_from_the_catalogue():
    assert catalogues.texts("da")["cancel_subject"] == "Aflyst: {title} – {date}"
    assert catalogues.texts("da")["update_subject"] == "Ændret: {title} – {date}"
    assert catalogues.texts("en")["long_date_format"] == "EEEE d MMMM y"


def test_a_missing_id_is_an_error_not_the_key_shown_to_a_member():
    with pytest.raises(KeyError):
        catalogues.texts("da")["no_such_text"]
    with pytest.raises(KeyError):
        catalogues.texts("de")


def test_the_catalogues_are_installed_with_the_package():
    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["notifications"]
    for locale in catalogues.LOCALES:
        relative = catalogues.catalogue_path(locale).relative_to(PACKAGE)
        assert any(relative.match(pattern) for pattern in patterns), relative
