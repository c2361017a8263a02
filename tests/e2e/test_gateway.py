"""The web gateway in front of the real services (processes, PostgreSQL, NATS, a real SMTP server): sign-in by the
emailed link, a member's answer, a coordinator's move that the member then sees, and object-level access — a member
reaches nothing of another group's, a coordinator manages only their own group — over the pages and the JSON API.
The browser tests (test_gateway_browser.py) drive the same pages in Chromium."""

from __future__ import annotations

import html
import re
import time
import urllib.parse
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from netvaerk_shared import service_tokens

from .conftest import GATEWAY_KEY, Web

pytestmark = pytest.mark.e2e


def wait_for(condition, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} not met within {timeout}s")


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def person(name: str, email: str, organisation: str, kind: str = "public_authority") -> dict:
    return {
        "name": name,
        "email": email,
        "job_title": "Projektleder",
        "organisation": {"name": organisation, "kind": kind, "cvr": None},
        "locale": "da",
        "consents": ["meeting_invitations", "show_email"],
    }


def future(days: int, hour: int) -> tuple[str, str]:
    start = (datetime.now(UTC) + timedelta(days=days)).replace(hour=hour, minute=0, second=0, microsecond=0)
    return start.isoformat(), (start + timedelta(hours=3)).isoformat()


TITLES = {"a": "Forårsmøde: agile kontrakter og SKI", "b": "Vestmøde: databeskyttelse i praksis"}


def world(web: Web) -> dict:
    """Two groups; Mette a member of A, Lars its coordinator, Anna a member of B; a meeting in each group."""
    p = web.platform
    ids: dict = {}
    for key, name in (("a", "Offentlig digitalisering øst"), ("b", "Offentlig digitalisering vest")):
        status, group = p.call(
            "members",
            "POST",
            "/groups",
            {
                "name": name,
                "region": "Øst" if key == "a" else "Vest",
                "description": "Test",
                "topics": ["SKI"],
                "capacity": None,
                "requires_approval": False,
            },
        )
        assert status == 201, group
        ids[key] = group["group_id"]
    for key, body, group, role in (
        ("mette", person("Mette Eksempel", "mette.eksempel@example.org", "Eksempel Kommune"), "a", "member"),
        (
            "lars",
            person("Lars Prøvesen", "lars.proevesen@example.org", "Eksempel IT A/S", "supplier"),
            "a",
            "coordinator",
        ),
        ("anna", person("Anna Fiktiv", "anna.fiktiv@example.org", "Prøve Region"), "b", "member"),
    ):
        status, member = p.call("members", "POST", "/members", body)
        assert status == 201, member
        ids[key] = member["member_id"]
        status, joined = p.call("members", "POST", f"/groups/{ids[group]}/members", {"member_id": ids[key]})
        assert status == 201, joined
        if role == "coordinator":
            status, _ = p.call(
                "members", "PUT", f"/groups/{ids[group]}/members/{ids[key]}/role", {"role": "coordinator"}
            )
            assert status == 200
    # the other services learn of them through events: wait for the welcome mails (notifications knows them then)
    wait_for(lambda: len(p.mails()) >= 3, what="three welcome mails")
    for key in ("a", "b"):
        starts, ends = future(30, 12)
        body = {
            "group_id": ids[key],
            "title": TITLES[key],
            "starts_at": starts,
            "ends_at": ends,
            "timezone": "Europe/Copenhagen",
            "capacity": 20,
        }
        status, meeting = wait_for(
            lambda body=body: (lambda r: r if r[0] == 201 else None)(p.call("meetings", "POST", "/meetings", body)),
            what="meetings to know the group",
        )
        ids[f"meeting_{key}"] = meeting["meeting_id"]
    wait_for(lambda: len(p.mails()) >= 6, what="the three invitations")  # so later mail counts are the test's own
    return ids


def sign_in(web: Web, address: str) -> httpx.Client:
    client = httpx.Client(base_url=web.url, follow_redirects=True, timeout=10)
    page = client.get("/login")
    assert page.status_code == 200 and "Log ind" in page.text
    sent = client.post("/login", data={"email": address, "csrf": csrf_of(page.text)})
    assert sent.status_code == 200 and "Tjek din indbakke" in sent.text
    link = web.sign_in_link(address)
    confirm = client.get(link)
    assert confirm.status_code == 200, confirm.text[:500]
    home = client.post(link, data={"csrf": csrf_of(confirm.text)})
    assert home.status_code == 200 and str(home.url).rstrip("/") == web.url.rstrip("/"), home.text[:500]
    assert "nv_session" in client.cookies
    return client


def test_sign_in_answer_and_a_coordinators_move_reach_the_member(web: Web):
    ids = world(web)
    mette = sign_in(web, "mette.eksempel@example.org")
    dashboard = mette.get("/")
    assert (
        "Hej Mette Eksempel" in dashboard.text and TITLES["a"] in dashboard.text and "Ikke besvaret" in dashboard.text
    )
    assert TITLES["b"] not in dashboard.text

    page = mette.get(f"/meetings/{ids['meeting_a']}")
    answered = mette.post(
        f"/meetings/{ids['meeting_a']}/rsvp", data={"response": "attending", "csrf": csrf_of(page.text)}
    )
    assert answered.status_code == 200 and "Dit svar er gemt" in answered.text and "plads bekræftet" in answered.text
    assert "Jeg kommer</strong>" in mette.get("/").text

    lars = sign_in(web, "lars.proevesen@example.org")
    page = lars.get(f"/meetings/{ids['meeting_a']}")
    assert "Flyt mødet" in page.text
    new_day = (datetime.now(UTC) + timedelta(days=40)).date().isoformat()
    moved = lars.post(
        f"/meetings/{ids['meeting_a']}/reschedule",
        data={"date": new_day, "start": "09:30", "end": "12:00", "csrf": csrf_of(page.text)},
    )
    assert moved.status_code == 200 and "Mødet er flyttet" in moved.text
    seen = mette.get(f"/meetings/{ids['meeting_a']}").text
    assert "kl. 09:30" in seen and "Flyt mødet" not in seen  # she sees the move, and no coordinator's form

    # a topic Mette proposes, Lars takes into the meeting's agenda; a bad agenda line comes back with the input kept
    group_page = mette.get(f"/groups/{ids['a']}")
    proposed = mette.post(
        f"/groups/{ids['a']}/proposals",
        data={
            "topic": "Agile kontrakter i praksis",
            "details": "Erfaringer med K02",
            "kind": "talk",
            "csrf": csrf_of(group_page.text),
        },
    )
    assert proposed.status_code == 200 and "Agile kontrakter i praksis" in proposed.text
    proposal = re.search(r'action="/proposals/([0-9a-f-]{36})/accept"', lars.get(f"/groups/{ids['a']}").text)
    assert proposal, "the coordinator sees no way to take the proposal in"
    lcsrf = csrf_of(lars.get(f"/groups/{ids['a']}").text)
    taken = lars.post(
        f"/proposals/{proposal.group(1)}/accept",
        data={"meeting_id": ids["meeting_a"], "minutes": "45", "next": f"/groups/{ids['a']}", "csrf": lcsrf},
    )
    assert taken.status_code == 200 and "taget med på dagsordenen" in taken.text
    assert "Agile kontrakter i praksis" in mette.get(f"/meetings/{ids['meeting_a']}").text.split("Dagsorden", 1)[1]
    bad = lars.post(
        f"/meetings/{ids['meeting_a']}/agenda", data={"agenda": "check-in; Runden\nnonsense", "csrf": lcsrf}
    )
    assert bad.status_code == 422 and "check-in; Runden\nnonsense" in bad.text.replace("&#10;", "\n")

    # the link in the mail has been used: a second use says so and offers a new one
    link = web.used and sorted(web.used)[0]
    again = httpx.Client(base_url=web.url, timeout=10).get(link)
    assert again.status_code == 410 and "allerede brugt" in again.text and 'action="/login"' in again.text


def test_a_member_reaches_nothing_of_another_group_and_a_coordinator_manages_only_their_own(web: Web):
    ids = world(web)
    mette = sign_in(web, "mette.eksempel@example.org")
    csrf = csrf_of(mette.get("/").text)
    assert mette.get(f"/meetings/{ids['meeting_b']}").status_code == 403
    other_group = mette.get(f"/groups/{ids['b']}").text
    assert "Anna Fiktiv" not in other_group and "Kun gruppens medlemmer" in other_group
    refused = mette.post(f"/meetings/{ids['meeting_b']}/rsvp", data={"response": "attending", "csrf": csrf})
    assert refused.status_code in (403, 404) and "Dit svar er gemt" not in refused.text
    assert (
        mette.post(
            f"/meetings/{ids['meeting_a']}/reschedule",
            data={"date": "2031-01-07", "start": "10:00", "end": "12:00", "csrf": csrf},
        ).status_code
        == 403
    )

    # the only routes that name another member are a coordinator's: to a member they are closed
    assert (
        mette.post(
            f"/meetings/{ids['meeting_a']}/attendance/{ids['lars']}", data={"attended": "yes", "csrf": csrf}
        ).status_code
        == 403
    )
    assert mette.post(f"/groups/{ids['a']}/requests/{ids['anna']}/approve", data={"csrf": csrf}).status_code == 403
    export = mette.get("/profile/export")
    assert export.status_code == 200 and export.json()["member_id"] == ids["mette"] and "Anna Fiktiv" not in export.text

    # a form without the session's CSRF token changes nothing
    forged = mette.post(f"/meetings/{ids['meeting_a']}/rsvp", data={"response": "declined", "csrf": "not-the-token"})
    assert forged.status_code == 400
    status, seats = web.platform.call("meetings", "GET", f"/meetings/{ids['meeting_a']}/rsvps")
    assert all(a["member_id"] != ids["mette"] for a in seats["answers"])

    # the JSON API: the same session, the same rules, CSRF in a header
    session = mette.get("/api/session").json()
    assert session["member_id"] == ids["mette"] and not session["administrator"]
    assert mette.put(f"/api/meetings/{ids['meeting_a']}/rsvp", json={"response": "tentative"}).status_code == 403
    ok = mette.put(
        f"/api/meetings/{ids['meeting_a']}/rsvp",
        json={"response": "tentative"},
        headers={"X-CSRF-Token": session["csrf"]},
    )
    assert ok.status_code == 200 and ok.json()["response"] == "tentative"
    other = mette.put(
        f"/api/meetings/{ids['meeting_b']}/rsvp",
        json={"response": "attending"},
        headers={"X-CSRF-Token": session["csrf"]},
    )
    assert other.status_code in (403, 404) and other.headers["content-type"].startswith("application/problem+json")
    assert httpx.get(f"{web.url}/api/dashboard").status_code == 401

    lars = sign_in(web, "lars.proevesen@example.org")
    lcsrf = csrf_of(lars.get("/").text)
    assert lars.get(f"/meetings/{ids['meeting_b']}").status_code == 403
    moved = lars.post(
        f"/meetings/{ids['meeting_b']}/reschedule",
        data={"date": "2031-01-07", "start": "10:00", "end": "12:00", "csrf": lcsrf},
    )
    assert moved.status_code == 403
    status, meeting_b = web.platform.call("meetings", "GET", f"/meetings/{ids['meeting_b']}")
    assert meeting_b["sequence"] == 0


def test_the_services_open_only_to_the_gateways_tokens_and_its_api_keeps_its_contract(web: Web):
    ids = world(web)
    members = web.platform.services["members"].url
    assert httpx.get(f"{members}/members/{ids['anna']}").status_code == 401
    as_mette = service_tokens.mint(GATEWAY_KEY, audience="members", member_id=__import__("uuid").UUID(ids["mette"]))
    # the token names Mette: a header naming Anna changes nothing, and Anna's profile stays closed to her
    answer = httpx.get(
        f"{members}/members/{ids['anna']}",
        headers={"Authorization": f"Bearer {as_mette}", "X-Netvaerk-Member": ids["anna"]},
    )
    assert answer.status_code == 403
    assert (
        httpx.get(f"{members}/members/{ids['mette']}", headers={"Authorization": f"Bearer {as_mette}"}).status_code
        == 200
    )
    wrong_key = service_tokens.mint("x" * 40, audience="members", member_id=None)
    assert (
        httpx.get(f"{members}/members/{ids['anna']}", headers={"Authorization": f"Bearer {wrong_key}"}).status_code
        == 401
    )
    for_meetings = service_tokens.mint(GATEWAY_KEY, audience="meetings", member_id=None)
    assert (
        httpx.get(f"{members}/members/{ids['anna']}", headers={"Authorization": f"Bearer {for_meetings}"}).status_code
        == 401
    )
    assert httpx.get(f"{members}/healthz").status_code == 200

    # the gateway's own API, as its OpenAPI document says, for a signed-in member (schemathesis, every check)
    mette = sign_in(web, "mette.eksempel@example.org")
    headers = {
        "Cookie": f"nv_session={mette.cookies['nv_session']}",
        "X-CSRF-Token": mette.get("/api/session").json()["csrf"],
    }
    api_contract_holds(web.url, headers)


def api_contract_holds(base_url: str, headers: dict[str, str]) -> None:
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.config import SchemathesisConfig

    from gateway.entrypoints.http import create_app

    config = SchemathesisConfig.from_dict(
        {
            "seed": 20270311,
            "generation": {"max-examples": 25, "deterministic": True, "database": "none"},
            "checks": {"enabled": True},
            "cache": {"enabled": False},
        }
    )
    schema = schemathesis.openapi.from_dict(create_app().openapi(), config=config)
    ran = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def one(case) -> None:
            case.call_and_validate(base_url=base_url, headers=headers)

        one()
        ran += 1
    assert ran == 3


def test_an_unknown_address_gets_the_same_answer_and_no_mail_and_a_service_away_is_said(web: Web):
    ids = world(web)
    client = httpx.Client(base_url=web.url, follow_redirects=True, timeout=10)
    before = len(web.platform.mails())
    page = client.get("/login")
    sent = client.post("/login", data={"email": "nobody@example.org", "csrf": csrf_of(page.text)})
    assert sent.status_code == 200 and "Tjek din indbakke" in sent.text
    bad = client.post("/login", data={"email": "not an address", "csrf": csrf_of(page.text)})
    assert bad.status_code == 422 and 'value="not an address"' in bad.text and 'aria-invalid="true"' in bad.text
    time.sleep(1.5)
    assert len(web.platform.mails()) == before
    # three links per address in 15 minutes, then the same page says to wait (and no mail goes)
    for _ in range(3):
        assert (
            client.post("/login", data={"email": "anna.fiktiv@example.org", "csrf": csrf_of(page.text)}).status_code
            == 200
        )
    slow = client.post("/login", data={"email": "Anna.Fiktiv@example.org", "csrf": csrf_of(page.text)})
    assert slow.status_code == 429 and "Vent et kvarter" in slow.text
    wait_for(lambda: len(web.platform.mails()) == before + 3, what="three sign-in mails to Anna")
    # hostile input in a form: refused next to the field, the rest of what was typed kept
    injected = client.post("/login", data={"email": "x@example.org\r\nBcc: y@example.org", "csrf": csrf_of(page.text)})
    assert injected.status_code == 422 and 'aria-invalid="true"' in injected.text

    mette = sign_in(web, "mette.eksempel@example.org")
    web.platform.services["meetings"].stop()
    away = mette.get("/")
    assert away.status_code == 503 and "møder" in away.text and "Traceback" not in away.text
    assert mette.get("/profile").status_code == 200  # what does not need the meetings service still works
    # a proposal sent while meetings is away: the page keeps what she typed and sends it again once it is back
    typed = {"topic": "Databeskyttelse i skyen", "details": "Linje 1\nLinje 2", "kind": "topic"}
    lost = mette.post(f"/groups/{ids['a']}/proposals", data={**typed, "csrf": csrf_of(mette.get("/profile").text)})
    assert lost.status_code == 503 and "Databeskyttelse i skyen" in lost.text and "Send igen" in lost.text
    web.platform.services["meetings"].start()
    again = re.search(r'<form method="post" action="([^"]+)">(.*?)</form>', lost.text, re.S)
    fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', again.group(2))
    body = urllib.parse.urlencode([(k, html.unescape(v)) for k, v in fields])
    resent = mette.post(again.group(1), content=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resent.status_code == 200 and "Databeskyttelse i skyen" in resent.text
    status, proposals = web.platform.call("meetings", "GET", f"/groups/{ids['a']}/proposals")
    assert [p["description"] for p in proposals if p["title"] == "Databeskyttelse i skyen"] == ["Linje 1\nLinje 2"]
