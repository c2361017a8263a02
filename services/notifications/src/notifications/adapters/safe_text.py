"""Member, group and meeting text made safe for where it leaves the platform: mail headers, mail bodies, ICS.

The API refuses control characters, but names reach us through events from other services and through our own
database, so every builder here cleans what it writes once more instead of trusting the edge (defence in depth): a
control character in a header could split it ("Evil\\r\\nBcc: victim@example.net"), make the email package refuse to
build the message, or, in a body or calendar, forge lines that look like ours.
"""

from __future__ import annotations

import re

# C0 (NUL, TAB, CR, LF, ... US), DEL, C1 (including NEL) and the Unicode line/paragraph separators: everything
# str.splitlines() or a mail/calendar parser might take for the end of a line, and nothing printable.
_CONTROL_RUN = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
# ICS TEXT may hold HTAB and (escaped) line breaks; every other control character is dropped (RFC 5545 3.3.11).
_LINE_BREAK = re.compile("\r\n|[\r\n\u2028\u2029]")
_ICS_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# What a stored error message may not hold: PostgreSQL refuses NUL in text, and the rest would garble logs.
_ERROR_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]+")


def one_line(value: str | None) -> str:
    """Text for one line: a header, a display name, an ICS parameter, a name inside a mail body.

    Every run of control characters (C0 including CR, LF, NUL and TAB; DEL; C1; U+2028/U+2029) becomes a single
    space, and the result is trimmed. `None` gives ''.
    """
    return _CONTROL_RUN.sub(" ", value or "").strip()


def ics_text(value: str | None) -> str:
    """Text for an ICS TEXT value (SUMMARY, LOCATION, DESCRIPTION): line breaks (CRLF, CR, LF, U+2028/U+2029) become
    one LF, which the icalendar package writes as the escape '\\n'; other control characters except TAB are dropped;
    trimmed. Backslash, semicolon and comma are left for the icalendar package to escape."""
    return _ICS_CONTROL.sub("", _LINE_BREAK.sub("\n", value or "")).strip()


def uri_text(value: str | None) -> str:
    """A URI as we pass it on: control characters (and so any line break) removed, trimmed.

    No valid URI holds one; the WHATWG URL parser drops tabs and newlines the same way.
    """
    return _CONTROL_RUN.sub("", value or "").strip()


def error_text(value: str, limit: int = 2000) -> str:
    """An error message fit for a text column and a log line: runs of control characters other than TAB and LF
    become one space, cut to `limit` characters."""
    return _ERROR_CONTROL.sub(" ", value)[:limit]
