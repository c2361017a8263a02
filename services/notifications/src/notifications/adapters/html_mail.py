"""The text/html alternative of every mail: the same words as its text/plain part, laid out to read anywhere.

One column at most 600 px wide that shrinks with the screen, 16 px text, inline styles only (many mail clients drop
<style> and <head>), no images and nothing fetched from elsewhere, so it reads the same with images blocked and on
a phone. Every line of the text is HTML-escaped, so whatever a member or organiser typed (names, titles, places,
agenda items) stays text: it can open no tag, attribute or link. The one link a mail may make is one we give
(`links`: a sign-in link, checked at the edge), on a line of its own.
"""

from __future__ import annotations

import html

from .catalogues import normalize_locale

BODY_STYLE = "margin:0; padding:0; background-color:#ffffff;"
COLUMN_STYLE = (
    "max-width:600px; margin:0 auto; padding:16px; font-family:Arial, Helvetica, sans-serif; font-size:16px; "
    "line-height:1.5; color:#1a1a1a; text-align:left; overflow-wrap:break-word; word-wrap:break-word;"
)
PARAGRAPH_STYLE = "margin:0 0 16px 0; font-size:16px; line-height:1.5;"
LINK_STYLE = "color:#0b57d0; text-decoration:underline; word-break:break-all;"


def render_html(locale: str | None, body: str, *, title: str, links: tuple[str, ...] = ()) -> str:
    """An HTML document of `body` (plain text): a paragraph per block between blank lines, its lines kept apart
    with <br>; `title` (the subject) is the document's title. `lang` is the normalised locale ('da', 'en'). A line
    that is exactly one of `links` becomes that link (escaped, as its text too)."""
    paragraphs = [p.strip("\n") for p in body.replace("\r\n", "\n").strip().split("\n\n") if p.strip()]
    inner = "\n".join(
        f'<p style="{PARAGRAPH_STYLE}">' + "<br>\n".join(_line(line, links) for line in p.split("\n")) + "</p>"
        for p in paragraphs
    )
    lang = normalize_locale(locale)
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{lang}">\n'
        "<head>\n"
        '<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n"
        "</head>\n"
        f'<body style="{BODY_STYLE}">\n'
        f'<div lang="{lang}" style="{COLUMN_STYLE}">\n'
        f"{inner}\n"
        "</div>\n"
        "</body>\n"
        "</html>\n"
    )


def _line(line: str, links: tuple[str, ...]) -> str:
    if line and line in links:
        href = html.escape(line, quote=True)
        return f'<a href="{href}" style="{LINK_STYLE}">{href}</a>'
    return html.escape(line)
