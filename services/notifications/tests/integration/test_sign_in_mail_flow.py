"""The web gateway's sign-in mail, in-process against real NATS JetStream, a real database (PostgreSQL and SQLite) and
a real SMTP server (the Maildir sink): one mail per link in the member's language, transactional (no
List-Unsubscribe), the link gone from every table once it was sent and never in the delivery log; who may ask, what
link is refused, and the limit per member."""

from __future__ import annotations

import secrets
import uuid

from netvaerk_testing.plugin import wait_until

from . import test_notifications_flow as flow
from .test_gdpr import dump
from .test_notifications_flow import mails, member, publish

app, js, smtp = flow.app, flow.js, flow.smtp  # the flow tests' fixtures: the service, JetStream, the SMTP sink


def a_link() -> str:
    return f"https://netvaerk.example.org/login/{secrets.token_urlsafe(32)}"


async def in_directory(app, js, *people) -> None:
    for p in people:
        await publish(js, p)

    async def known() -> bool:
        answers = [(await app.get(f"/members/{p.member_id}/preferences")).status_code for p in people]
        return answers == [200] * len(people)

    await wait_until(known, timeout=15, message="the members in the directory")


async def ask(app, member_id, link_id, link, **kwargs):
    return await app.post(f"/members/{member_id}/sign-in-mail", json={"link_id": str(link_id), "link": link}, **kwargs)


def to(path, address: str) -> list:
    return [m for m in mails(path) if m["To"].addresses[0].addr_spec == address]


async def sent(app, member_id, n: int) -> bool:
    log = (await app.get("/deliveries", params={"member_id": str(member_id), "kind": "sign_in"})).json()
    return len(log) == n and all(d["status"] == "sent" for d in log)


async def test_the_link_arrives_once_in_the_members_language_and_is_then_kept_nowhere(app, js, smtp):
    mette, john = member("Mette Eksempel", "mette@example.org"), member("John Example", "john@example.org", "en")
    await in_directory(app, js, mette, john)
    mette_link, john_link = a_link(), a_link()
    mette_link_id = uuid.uuid4()

    first = await ask(app, mette.member_id, mette_link_id, mette_link)
    assert (first.status_code, first.json()) == (202, {"status": "queued"})
    assert (await ask(app, john.member_id, uuid.uuid4(), john_link)).status_code == 202
    await wait_until(lambda: len(mails(smtp["path"])) >= 2, timeout=15, message="two sign-in mails")
    await wait_until(lambda: sent(app, mette.member_id, 1), timeout=15, message="the delivery log says sent")
    await wait_until(lambda: sent(app, john.member_id, 1), timeout=15, message="the delivery log says sent")

    # the gateway asks again for the same link: the same answer, nothing more is sent
    again = await ask(app, mette.member_id, mette_link_id, mette_link)
    assert (again.status_code, again.json()) == (202, {"status": "queued"})

    [danish] = to(smtp["path"], "mette@example.org")
    [english] = to(smtp["path"], "john@example.org")
    assert danish["Subject"] == "Dit login-link til Netværk"
    assert english["Subject"] == "Your sign-in link to Netværk"
    text = danish.get_body(("plain",)).get_content()
    assert mette_link in text.splitlines()
    assert "Mette Eksempel" in text and "15 minutter" in text and "én gang" in text and "se bort fra" in text
    assert f'href="{mette_link}"' in danish.get_body(("html",)).get_content()
    english_text = english.get_body(("plain",)).get_content()
    assert john_link in english_text.splitlines() and "15 minutes" in english_text and "ignore" in english_text
    assert f'href="{john_link}"' in english.get_body(("html",)).get_content()
    for message in (danish, english):
        assert message["List-Unsubscribe"] is None and message["List-Unsubscribe-Post"] is None

    # the link is nowhere in the service's tables now, nor in what it answers about the member
    tables = await dump(app)
    assert mette_link not in tables and john_link not in tables
    assert str(mette.member_id) in tables  # the dump does see the rows
    assert "sign_in" in tables
    for path in (
        "/deliveries",
        f"/members/{mette.member_id}/deliveries",
        f"/members/{mette.member_id}/export",
    ):
        response = await app.get(path)
        assert response.status_code == 200, (path, response.text)
        assert mette_link not in response.text and "sign_in" in response.text, path
    [logged] = (await app.get(f"/members/{mette.member_id}/deliveries")).json()
    assert (logged["kind"], logged["status"], logged["cause_event_id"]) == ("sign_in", "sent", str(mette_link_id))
    assert logged["subject"] == "Dit login-link til Netværk"

    await wait_until(lambda: sent(app, mette.member_id, 1), timeout=5, message="still one")
    assert len(to(smtp["path"], "mette@example.org")) == 1


async def test_who_may_ask_which_links_are_refused_and_the_limit_per_member(app, js, smtp):
    ragna = member("Ragna Eksempel", "ragna@example.org")
    await in_directory(app, js, ragna)

    unknown = await ask(app, uuid.uuid4(), uuid.uuid4(), a_link())
    assert unknown.status_code == 404 and unknown.headers["content-type"] == "application/problem+json"
    own = await ask(app, ragna.member_id, uuid.uuid4(), a_link(), headers={"X-Netvaerk-Member": str(ragna.member_id)})
    assert own.status_code == 403 and own.headers["content-type"] == "application/problem+json"
    for bad in (
        "javascript:alert(document.cookie)",
        "https://netvaerk.example.org/login/abc\u0007def",
        "https://netvaerk.example.org/login/abc\ndef",
        "https://netvaerk.example.org/login/abc def",
        "ftp://netvaerk.example.org/login/abc",
        "https://netvaerk.example.org/login/" + "a" * 600,
    ):
        refused = await ask(app, ragna.member_id, uuid.uuid4(), bad)
        assert refused.status_code == 422, (bad, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in refused.json()["errors"]] == ["link"], refused.text
        assert bad not in refused.text
    assert (await app.get("/deliveries", params={"member_id": str(ragna.member_id)})).json() == []

    link_ids = [uuid.uuid4() for _ in range(5)]
    for link_id in link_ids:
        response = await ask(app, ragna.member_id, link_id, a_link())
        assert response.status_code == 202, response.text
    sixth = await ask(app, ragna.member_id, uuid.uuid4(), a_link())
    assert sixth.status_code == 429, sixth.text
    assert sixth.headers["content-type"] == "application/problem+json"
    assert 1 <= int(sixth.headers["retry-after"]) <= 15 * 60
    assert sixth.json()["retry_after"] == int(sixth.headers["retry-after"])
    # a link already owed is no new mail: asked again, it is still 202, and nothing more is sent
    assert (await ask(app, ragna.member_id, link_ids[0], a_link())).status_code == 202
    await wait_until(lambda: sent(app, ragna.member_id, 5), timeout=15, message="five sign-in mails sent")
    assert len(to(smtp["path"], "ragna@example.org")) == 5
