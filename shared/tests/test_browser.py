"""The browser test support: Debian's Chromium under Playwright, axe-core's WCAG 2.1 A/AA checks, keyboard focus,
screenshots, and what a failing browser test leaves behind. Pages come from a small HTTP server in the test."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from netvaerk_testing import browser as support
from netvaerk_testing.browser import assert_accessible, axe_source, focused, screenshot, tab_order

PIXEL = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)

BROKEN = f"""<!doctype html>
<html lang="da"><head><meta charset="utf-8"><title>Tilmelding</title></head>
<body><main>
  <h1>Tilmelding</h1>
  <p style="color: #b0b0b0; background: #ffffff">Udfyld venligst formularen nedenfor.</p>
  <img src="{PIXEL}" width="40" height="40">
  <input type="text" name="navn">
</main></body></html>"""

GOOD = """<!doctype html>
<html lang="da"><head><meta charset="utf-8"><title>Tilmelding til netværksmøde</title></head>
<body><main>
  <h1>Tilmelding</h1>
  <form action="/tak" method="get">
    <label for="email">E-mail</label>
    <input id="email" name="email" type="email" autocomplete="email">
    <button type="submit">Tilmeld</button>
  </form>
</main></body></html>"""

THANKS = """<!doctype html>
<html lang="da"><head><meta charset="utf-8"><title>Tak</title></head><body><main><h1>Tak</h1></main></body></html>"""

# what the gateway sends: no inline script at all, so axe-core cannot come in by a <script> tag
STRICT_CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'"


class _Pages(BaseHTTPRequestHandler):
    routes = {
        "/broken": (BROKEN, {}),
        "/good": (GOOD, {}),
        "/tak": (THANKS, {}),
        "/strict": (GOOD.replace("<h1>", "<h1 id='strict'>"), {"Content-Security-Policy": STRICT_CSP}),
        "/strict-broken": (BROKEN, {"Content-Security-Policy": STRICT_CSP}),
    }

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        path = self.path.split("?")[0]
        if path not in self.routes:
            self.send_error(404)
            return
        body, headers = self.routes[path]
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def test_a_page_with_serious_violations_fails_naming_the_rules(page, site):
    await page.goto(f"{site}/broken")
    with pytest.raises(AssertionError) as failure:
        await assert_accessible(page)
    message = str(failure.value)
    for rule in ("label", "image-alt", "color-contrast"):
        assert f"  {rule} [" in message, message
    assert 'input[name="navn"]' in message or "input" in message
    assert "img" in message and f"{site}/broken" in message


async def test_violations_below_the_impacts_asked_for_do_not_fail(page, site):
    await page.goto(f"{site}/broken")
    found = await assert_accessible(page, impacts=())  # nothing is bad enough: returns what it found
    assert {"label", "image-alt", "color-contrast"} <= {v["id"] for v in found}
    with pytest.raises(AssertionError, match="color-contrast") as failure:
        await assert_accessible(page, impacts=("serious",))
    assert "image-alt" not in str(failure.value)  # critical, not asked for


async def test_a_correct_page_passes_and_can_be_used_by_keyboard(page, site):
    await page.goto(f"{site}/good")
    assert await assert_accessible(page) == []
    assert await tab_order(page, 2) == ['input#email "E-mail"', 'button "Tilmeld"']
    assert await page.evaluate("document.activeElement.tagName") == "BUTTON"
    await page.keyboard.press("Shift+Tab")
    assert await page.evaluate("document.activeElement.id") == "email"
    await page.keyboard.type("mette.jensen@kommune.example.org")
    await page.keyboard.press("Enter")  # submits the form from the keyboard
    await page.wait_for_url(f"{site}/tak?email=mette.jensen%40kommune.example.org")
    assert await page.title() == "Tak"
    assert await focused(page) == "body"


async def test_axe_runs_under_a_strict_content_security_policy(page, site):
    await page.goto(f"{site}/strict")
    assert await page.locator("#strict").count() == 1
    assert await assert_accessible(page) == []
    await page.goto(f"{site}/strict-broken")
    with pytest.raises(AssertionError, match="image-alt"):
        await assert_accessible(page)


async def test_the_page_is_danish_at_1280_by_800_in_a_fresh_context(page, browser, site):
    await page.goto(f"{site}/good")
    assert await page.evaluate("navigator.language") == "da-DK"
    assert await page.evaluate("[innerWidth, innerHeight]") == [1280, 800]
    assert await page.evaluate("new Intl.DateTimeFormat().resolvedOptions().timeZone") == "Europe/Copenhagen"
    assert await page.context.cookies() == []
    other = await browser.new_context()
    try:
        assert other is not page.context
    finally:
        await other.close()


async def test_screenshot_writes_a_png_under_docs_screenshots(page, site, tmp_path, monkeypatch):
    monkeypatch.setenv("NETVAERK_SCREENSHOTS", str(tmp_path / "shots"))
    await page.goto(f"{site}/good")
    path = await screenshot(page, "tilmelding")
    assert path == tmp_path / "shots" / "tilmelding.png"
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (1280, 800)
    with pytest.raises(ValueError):
        await screenshot(page, "../escape")


def test_screenshots_go_to_docs_screenshots_of_the_checkout(monkeypatch):
    monkeypatch.delenv("NETVAERK_SCREENSHOTS", raising=False)
    root = Path(__file__).resolve().parents[2]
    assert support.screenshots_dir() == root / "docs" / "screenshots"


def test_axe_core_is_the_pinned_version_and_installed_once():
    source = axe_source()
    assert f"axe v{support.AXE_CORE_VERSION}" in source[:200]
    assert axe_source() is source
    assert (support.axe_dir() / "node_modules" / "axe-core" / "axe.min.js").is_file()


def test_chromium_is_there_and_chromium_path_wins(monkeypatch, tmp_path):
    assert os.access(support.chromium_executable(), os.X_OK)
    monkeypatch.setenv("CHROMIUM_PATH", str(tmp_path / "nope"))
    with pytest.raises(RuntimeError, match="CHROMIUM_PATH"):
        support.chromium_executable()


def test_a_failing_browser_test_leaves_a_screenshot_and_later_async_tests_still_run(tmp_path, site):
    """In a pytest of its own: the failure's screenshot and HTML in var/test-artifacts, named in the report."""
    (tmp_path / "test_inner.py").write_text(
        textwrap.dedent(
            f"""
            import asyncio

            async def test_fails(page):
                await page.goto("{site}/good")
                assert await page.title() == "a title it does not have"

            async def test_passes(page):
                await page.goto("{site}/tak")

            async def test_plain_asyncio_after_the_browser():
                await asyncio.sleep(0)

            def test_asyncio_run_after_the_browser():
                asyncio.run(asyncio.sleep(0))
            """
        )
    )
    var = tmp_path / "var"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "netvaerk_testing.plugin",
            "-p",
            "no:cacheprovider",
            "-o",
            "asyncio_mode=auto",
            "-o",
            "asyncio_default_fixture_loop_scope=function",
            "-q",
            "test_inner.py",
        ],
        cwd=tmp_path,
        env={**os.environ, "NETVAERK_VAR": str(var)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 failed, 3 passed" in done.stdout, done.stdout
    shots = sorted((var / "test-artifacts").iterdir())
    assert [p.name for p in shots] == ["test_inner.py_test_fails.html", "test_inner.py_test_fails.png"], shots
    assert shots[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert '<label for="email">E-mail</label>' in shots[0].read_text()
    assert f"screenshot {var / 'test-artifacts' / 'test_inner.py_test_fails.png'}" in done.stdout, done.stdout
