"""The members' pages in a real browser (Debian's Chromium, driven by Playwright) against the real platform: sign-in
with the keyboard alone and the link from the SMTP server, joining a group, answering a meeting and seeing the
answer, a coordinator moving the meeting and the member seeing the move; axe-core finds no serious or critical WCAG
2.1 A/AA violation on any page. The screenshots in the README are taken here (docs/screenshots/)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from netvaerk_testing.browser import assert_accessible, focused, screenshot

from .conftest import Web
from .test_gateway import TITLES, world

pytestmark = pytest.mark.e2e


async def sign_in(page, web: Web, address: str, *, keyboard: bool = False) -> None:
    await page.goto(f"{web.url}/login")
    if keyboard:
        for _ in range(12):  # from the top of the page to the address field, by Tab alone
            await page.keyboard.press("Tab")
            if (await focused(page)).startswith("input#f-email"):
                break
        else:
            raise AssertionError("the address field cannot be reached with Tab")
        await page.keyboard.type(address)
        await page.keyboard.press("Enter")
    else:
        await page.get_by_label("E-mailadresse").fill(address)
        await page.get_by_role("button", name="Send mig et login-link").click()
    await page.get_by_role("heading", name="Tjek din indbakke").wait_for()
    link = await asyncio.to_thread(web.sign_in_link, address)
    await page.goto(link)
    if keyboard:
        assert (await focused(page)).startswith('button "Log ind"')  # the one button has the focus: Enter signs in
        await page.keyboard.press("Enter")
    else:
        await page.get_by_role("button", name="Log ind").click()
    await page.wait_for_url(f"{web.url}/")


async def test_a_member_signs_in_by_keyboard_joins_a_group_and_answers_a_meeting(web: Web, page):
    ids = await asyncio.to_thread(world, web)
    await page.goto(f"{web.url}/login")
    await assert_accessible(page)
    await screenshot(page, "login")

    await sign_in(page, web, "mette.eksempel@example.org", keyboard=True)
    await page.get_by_role("heading", name="Hej Mette Eksempel").wait_for()
    assert await page.get_by_text("Ikke besvaret").count() == 1
    await assert_accessible(page)

    await page.get_by_role("link", name="Grupper", exact=True).click()
    await assert_accessible(page)
    await screenshot(page, "groups")
    await page.get_by_role("button", name="Meld mig ind").click()  # the one group she is not in: vest
    await page.get_by_text("Du er nu med i gruppen.").wait_for()
    assert "Anna Fiktiv" in await page.locator("#h-directory + table").inner_text()  # now she sees who is in it
    await assert_accessible(page)

    await page.goto(f"{web.url}/meetings/{ids['meeting_a']}")
    await assert_accessible(page)
    await page.get_by_role("button", name="Jeg kommer", exact=True).click()
    await page.get_by_text("Dit svar er gemt.").wait_for()
    assert await page.get_by_role("button", name="Jeg kommer", exact=True).get_attribute("aria-pressed") == "true"
    assert "plads bekræftet" in await page.locator("#my-answer").inner_text()
    await screenshot(page, "meeting", full_page=True)

    await page.get_by_role("link", name="Overblik").click()
    assert "Jeg kommer" in await page.locator("li.meeting", has_text=TITLES["a"]).inner_text()
    await screenshot(page, "dashboard")

    await page.get_by_role("link", name="Min profil").click()
    await assert_accessible(page)
    await screenshot(page, "profile", full_page=True)

    await page.get_by_role("link", name="English").click()
    await page.get_by_role("heading", name="My profile").wait_for()
    await assert_accessible(page)


async def test_a_coordinator_moves_the_meeting_and_the_member_sees_it(web: Web, page, browser):
    ids = await asyncio.to_thread(world, web)
    env = {**os.environ, **web.process.env}
    made = subprocess.run(
        [sys.executable, "-m", "gateway.entrypoints.cli", "add-admin", "lars.proevesen@example.org"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0 and "is now an administrator" in made.stdout, made.stdout + made.stderr

    await sign_in(page, web, "lars.proevesen@example.org")
    await page.goto(f"{web.url}/groups/{ids['a']}")
    await assert_accessible(page)
    await page.goto(f"{web.url}/meetings/{ids['meeting_a']}")
    await assert_accessible(page)
    new_day = (datetime.now(UTC) + timedelta(days=45)).date()
    await page.get_by_label("Dato").fill(new_day.isoformat())
    await page.get_by_label("Starter kl.").fill("09:30")
    await page.get_by_label("Slutter kl.").fill("12:00")
    await page.get_by_role("button", name="Gem").nth(1).click()  # the agenda's Gem is first, the move's second
    await page.get_by_text("Mødet er flyttet. Medlemmerne får besked.").wait_for()
    await screenshot(page, "coordinator-meeting", full_page=True)

    # a form with a bad value comes back with the input kept and the error next to the field
    await page.get_by_label("Begrundelse").fill(" ")
    await page.get_by_role("button", name="Aflys mødet").click()
    await page.locator("#e-reason").wait_for()
    assert await page.get_by_label("Begrundelse").get_attribute("aria-invalid") == "true"
    await assert_accessible(page)

    await page.get_by_role("link", name="Administration").click()
    await assert_accessible(page)
    await screenshot(page, "admin", full_page=True)
    await page.get_by_role("link", name="Importér medlemmer fra en CSV-fil").click()
    await assert_accessible(page)

    mette = await (await browser.new_context(locale="da-DK")).new_page()
    await sign_in(mette, web, "mette.eksempel@example.org")
    await mette.goto(f"{web.url}/meetings/{ids['meeting_a']}")
    when = await mette.locator("#when").inner_text()
    assert "kl. 09:30" in when and str(new_day.day) in when, when
    assert await mette.get_by_role("heading", name="Flyt mødet").count() == 0

    # the pages that say something went wrong are as accessible as the rest
    await mette.goto(f"{web.url}/login/not-a-real-link")
    await mette.get_by_role("heading", name="Linket virker ikke").wait_for()
    await assert_accessible(mette)
    await mette.goto(f"{web.url}/meetings/{ids['meeting_b']}")
    await assert_accessible(mette)
    await mette.context.close()
