"""Who is looking at the page: the session cookie, the language, the CSRF token, and the rendering helpers every page
uses. Object-level access is not decided here: each service checks it on the member the gateway's token names, so a
member cannot reach another member's data by changing an id in a URL (the gateway never calls on a member's behalf
as the administration, except for an administrator's own pages and to find the member of an address at sign-in)."""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote
from uuid import UUID

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from ..bootstrap import Gateway
from ..i18n import LANGUAGES, MESSAGES, local_time, translate

SESSION_COOKIE = "nv_session"
ANON_CSRF_COOKIE = "nv_csrf"
LANG_COOKIE = "nv_lang"
FLASH_PREFIXES = ("groups.", "meeting.", "saved", "admin.", "logout.", "profile.")
MAX_FIELD = 4000

templates = Jinja2Templates(directory=str(Path(__file__).resolve().parents[1] / "templates"))
templates.env.globals["local_time"] = local_time


class SignInRequired(Exception):
    pass


class Forbidden(Exception):
    pass


@dataclass(frozen=True)
class Viewer:
    member_id: UUID
    session_id: UUID
    csrf: str
    is_admin: bool


def gateway(request: Request) -> Gateway:
    return request.app.state.gateway


def language(request: Request) -> str:
    lang = request.cookies.get(LANG_COOKIE, "")
    if lang in LANGUAGES:
        return lang
    accept = request.headers.get("accept-language", "")[:200].lower()
    return "en" if accept.startswith("en") else "da"


async def viewer(request: Request) -> Viewer | None:
    if hasattr(request.state, "viewer"):
        cached: Viewer | None = request.state.viewer
        return cached
    gw = gateway(request)
    found = None
    token = request.cookies.get(SESSION_COOKIE, "")
    session = await gw.store.session(token, gw.clock()) if token else None
    if session is not None:
        found = Viewer(session.member_id, session.session_id, session.csrf, session.is_admin)
    request.state.viewer = found
    return found


async def signed_in(request: Request) -> Viewer:
    found = await viewer(request)
    if found is None:
        raise SignInRequired
    return found


async def admin(request: Request) -> Viewer:
    found = await signed_in(request)
    if not found.is_admin:
        raise Forbidden
    return found


def anon_csrf(request: Request) -> str:
    """The double-submit token of the forms shown before sign-in (the sign-in form itself)."""
    existing = request.cookies.get(ANON_CSRF_COOKIE, "")
    if re.fullmatch(r"[A-Za-z0-9_-]{20,64}", existing):
        return existing
    token = getattr(request.state, "new_anon_csrf", None)
    if token is None:
        token = request.state.new_anon_csrf = secrets.token_urlsafe(24)
    return str(token)


def csrf_ok(request: Request, form: dict[str, str], who: Viewer | None) -> bool:
    given = form.get("csrf", "")
    expected = who.csrf if who is not None else request.cookies.get(ANON_CSRF_COOKIE, "")
    return bool(given) and bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


async def read_form(request: Request) -> dict[str, str]:
    """The form as single strings: repeated keys are joined with "\\n" (checkbox lists), each value capped."""
    raw = await request.form()
    out: dict[str, str] = {}
    for key, value in raw.multi_items():
        if not isinstance(value, str) or len(key) > 100:
            continue
        value = value[:MAX_FIELD]
        out[key] = f"{out[key]}\n{value}" if key in out else value
    return out


def flash_key(request: Request) -> str | None:
    key = request.query_params.get("m", "")
    return key if key in MESSAGES and key.startswith(FLASH_PREFIXES) else None


def safe_next(target: str | None) -> str:
    """A path within the gateway to go on to; anything else (another host, //evil, a scheme) becomes '/'."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target or len(target) > 500:
        return "/"
    if any(ord(c) < 32 for c in target):
        return "/"
    return target


def redirect(path: str, message: str | None = None) -> RedirectResponse:
    if message:
        path += ("&" if "?" in path else "?") + "m=" + quote(message)
    return RedirectResponse(path, status_code=303)


async def render(request: Request, name: str, status: int = 200, **context: Any) -> Response:
    lang = language(request)
    who = await viewer(request)

    def t(key: str, **values: object) -> str:
        return translate(lang, key, **values)

    context.setdefault("errors", {})
    context.setdefault("values", {})
    response: HTMLResponse = templates.TemplateResponse(
        request,
        name,
        {
            "t": t,
            "lang": lang,
            "viewer": who,
            "csrf": who.csrf if who else anon_csrf(request),
            "flash": flash_key(request),
            "path": request.url.path,
            **context,
        },
        status_code=status,
    )
    response.headers["Cache-Control"] = "no-store"
    new = getattr(request.state, "new_anon_csrf", None)
    if new is not None and who is None:
        gw = gateway(request)
        response.set_cookie(
            ANON_CSRF_COOKIE, new, httponly=True, samesite="lax", secure=gw.settings.secure_cookies, max_age=3600
        )
    return response
