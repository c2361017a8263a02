"""The words of our e-mails, read from the gettext catalogues in `notifications/locale/<lang>/LC_MESSAGES/`.

The .po files are the source of truth and the only copy: each is read with Babel's PO reader the first time a text
of its language is needed and kept in memory, so there is no compiled .mo that could drift from it. Message ids are
stable keys (`welcome_subject`), not source text: Danish is the default language, so `da` has every id and every
other catalogue the same ids with the same `{placeholders}` (a unit test holds them to that). A fuzzy or empty entry
counts as missing, and a missing id is a KeyError, never the key shown to a member.

A language is the name of a folder under `locale/`; a locale we have no catalogue for gets Danish.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from pathlib import Path

from babel.messages.pofile import read_po

DOMAIN = "notifications"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
DEFAULT_LOCALE = "da"


def catalogue_path(locale: str) -> Path:
    return LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


def available_locales() -> tuple[str, ...]:
    """The languages we have a catalogue for, the default first: ('da', 'en')."""
    found = sorted(p.parent.parent.name for p in LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))
    return (DEFAULT_LOCALE, *(loc for loc in found if loc != DEFAULT_LOCALE))


LOCALES = available_locales()


def normalize_locale(locale: str | None) -> str:
    """'da', 'en', 'en-GB', 'EN_us' -> 'da' or 'en'; a language without a catalogue ('de', '', None) -> Danish."""
    primary = (locale or "").replace("_", "-").split("-", 1)[0].strip().lower()
    return primary if primary in LOCALES else DEFAULT_LOCALE


@functools.cache
def texts(locale: str) -> Mapping[str, str]:
    """Every text of one catalogue, id -> text ('da', 'en'; not normalised: see `normalize_locale`)."""
    if locale not in LOCALES:
        raise KeyError(f"no catalogue for locale {locale!r}")
    with catalogue_path(locale).open("rb") as po:
        catalog = read_po(po, locale=locale, domain=DOMAIN, abort_invalid=True)
    return {
        str(message.id): str(message.string)
        for message in catalog
        if message.id and isinstance(message.id, str) and message.string and not message.fuzzy
    }


class _Texts(Mapping[str, Mapping[str, str]]):
    """locale -> (id -> text), loaded on first use: `TEXT["da"]["welcome_subject"]`."""

    def __getitem__(self, locale: str) -> Mapping[str, str]:
        return texts(locale)

    def __iter__(self) -> Iterator[str]:
        return iter(LOCALES)

    def __len__(self) -> int:
        return len(LOCALES)


TEXT: Mapping[str, Mapping[str, str]] = _Texts()


class Family(Mapping[str, Mapping[str, str]]):
    """A closed set of ids sharing a prefix, read per locale as name -> text:
    `Family("response_", ("attending", ...))["da"]["attending"]` is the text of `response_attending`."""

    def __init__(self, prefix: str, names: tuple[str, ...]) -> None:
        self.prefix = prefix
        self.names = names

    def ids(self) -> tuple[str, ...]:
        return tuple(self.prefix + name for name in self.names)

    def __getitem__(self, locale: str) -> Mapping[str, str]:
        catalogue = texts(locale)
        return {name: catalogue[self.prefix + name] for name in self.names}

    def __iter__(self) -> Iterator[str]:
        return iter(LOCALES)

    def __len__(self) -> int:
        return len(LOCALES)
