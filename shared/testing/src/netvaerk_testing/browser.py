"""Real-browser tests: Playwright (async API) driving Debian's Chromium, with axe-core accessibility checks.

Fixtures (registered by netvaerk_testing.plugin):

    chromium_server  session  sync   one headless Chromium process for the whole run (a ChromiumServer: .cdp_url)
    browser          function async  a Playwright Browser connected to it, in the running test's event loop
    page             function async  a new context (locale da-DK, viewport 1280x800) and a page in it; when the test
                                     fails, a screenshot and the page's HTML go to var/test-artifacts/

    async def test_sign_in_page(page):
        await page.goto(url)
        await assert_accessible(page)

Why not a session-scoped Playwright Browser, sync or async:
* The sync API runs its event loop in a greenlet and leaves that loop marked as running in the thread between calls
  (playwright/sync_api/_context_manager.py). Once started, asyncio.run() and pytest-asyncio's runners refuse to
  start in that thread ("cannot be called from a running event loop"): every async test after it would break.
* Async Playwright objects belong to the event loop that made them. The project runs each test and each async fixture
  in a loop of its own (asyncio_default_test_loop_scope and asyncio_default_fixture_loop_scope are "function" in the
  root pyproject.toml), so a session-loop Browser could be used only by tests marked loop_scope="session" whose every
  async fixture (an app started in-process, a NATS connection) is session-loop too: an easy trap.
So the expensive, loop-free part is shared, the Chromium process (started once, ~0.15 s), and each test attaches to it
over the DevTools protocol from its own loop (Playwright's driver plus the connection, ~0.4 s; a context and a page,
~0.2 s). Browser tests are plain `async def` tests on the default function loop, next to in-process async fixtures;
do not mark them loop_scope="session".

Chromium: /usr/bin/chromium (Debian's package) or CHROMIUM_PATH; installed with apt-get when missing and we are root,
else a loud error (never a skip). No Playwright browser download (no `playwright install`).
axe-core: `npm install` of the pinned AXE_CORE_VERSION into <var>/npm/ (var/ is git-ignored; NETVAERK_VAR moves it),
once; injected into the page on each assert_accessible.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .infra import child_preexec, stop_process

if TYPE_CHECKING:
    from playwright.async_api import Page, ViewportSize

AXE_CORE_VERSION = "4.10.3"
WCAG_TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")
DEFAULT_CHROMIUM = "/usr/bin/chromium"
LOCALE = "da-DK"
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
DEFAULT_TIMEOUT_MS = 15_000  # Playwright's default is 30 s; a page of ours that takes 15 s is a failure anyway
CHROMIUM_START_TIMEOUT = 30.0

# The flags Chromium needs here (as root, in a container, headless) plus the ones Playwright's own launch adds to keep
# a browser under test deterministic (no throttled timers in background tabs, no first-run UI, no password store).
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--disable-renderer-backgrounding",
    "--disable-hang-monitor",
    "--disable-popup-blocking",
    "--disable-prompt-on-repost",
    "--disable-features=Translate,MediaRouter,OptimizationHints",
    "--no-default-browser-check",
    "--password-store=basic",
    "--use-mock-keychain",
    "--metrics-recording-only",
    "--force-color-profile=srgb",
    "--hide-scrollbars",
    "--mute-audio",
)


def repo_root() -> Path:
    """The checkout this package is installed from (editable), else the working directory."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "dev.py").is_file() and (parent / "shared" / "testing").is_dir():
            return parent
    return Path.cwd()


def var_dir() -> Path:
    """var/ of the checkout, or NETVAERK_VAR (as dev.py)."""
    return Path(os.environ.get("NETVAERK_VAR") or repo_root() / "var").resolve()


def artifacts_dir() -> Path:
    """Where a failing browser test leaves its screenshot and HTML."""
    return var_dir() / "test-artifacts"


def screenshots_dir() -> Path:
    """docs/screenshots of the checkout (the README shows them), or NETVAERK_SCREENSHOTS."""
    return Path(os.environ.get("NETVAERK_SCREENSHOTS") or repo_root() / "docs" / "screenshots")


def _say(message: str) -> None:
    print(f"netvaerk_testing.browser: {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------------------- Chromium


def chromium_executable() -> str:
    """Debian's Chromium (or CHROMIUM_PATH); installed with apt-get when missing and we are root. Raises otherwise."""
    configured = os.environ.get("CHROMIUM_PATH")
    path = configured or DEFAULT_CHROMIUM
    if os.access(path, os.X_OK):
        return path
    if configured:
        raise RuntimeError(f"CHROMIUM_PATH={configured!r} is not an executable file")
    apt = shutil.which("apt-get")
    if apt is not None and os.geteuid() == 0:
        cmd = [apt, "install", "-y", "-q", "--no-install-recommends", "chromium"]
        _say(f"{path} is missing: installing Debian's chromium ({' '.join(cmd)})")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if subprocess.run(cmd, env=env).returncode != 0:
            _say("apt-get install failed: apt-get update, then once more")
            subprocess.run([apt, "update", "-q"], env=env)
            subprocess.run(cmd, env=env)
        if os.access(path, os.X_OK):
            _say(f"installed {path}")
            return path
        raise RuntimeError(f"apt-get could not install chromium ({' '.join(cmd)}); {path} is still missing")
    raise RuntimeError(
        f"no Chromium at {path}: install Debian's package as root (apt-get install -y --no-install-recommends "
        "chromium) or set CHROMIUM_PATH. Playwright's own browser download is not used."
    )


@dataclass
class ChromiumServer:
    """One headless Chromium process; Playwright attaches to it with `connect_over_cdp(cdp_url)`."""

    proc: subprocess.Popen[bytes]
    cdp_url: str
    user_data_dir: Path
    executable: str

    def alive(self) -> bool:
        return self.proc.poll() is None


@contextlib.contextmanager
def run_chromium(workdir: Path, executable: str | None = None) -> Iterator[ChromiumServer]:
    """Start headless Chromium with a fresh profile under `workdir`, its DevTools on a free port; stop it after."""
    executable = executable or chromium_executable()
    workdir.mkdir(parents=True, exist_ok=True)
    profile = Path(tempfile.mkdtemp(prefix="chromium-profile-", dir=workdir))
    log_path = workdir / "chromium.log"
    log = open(log_path, "ab")
    proc = subprocess.Popen(
        [executable, *CHROMIUM_ARGS, f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        preexec_fn=child_preexec(),
    )
    log.close()
    try:
        # Chromium writes the port it chose and the browser target's path to DevToolsActivePort in the profile
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + CHROMIUM_START_TIMEOUT
        cdp_url = None
        while cdp_url is None:
            if proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {proc.returncode}:\n{_tail(log_path)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"chromium did not open DevTools in {CHROMIUM_START_TIMEOUT}s:\n{_tail(log_path)}")
            with contextlib.suppress(OSError):
                lines = port_file.read_text().split()
                if len(lines) >= 2:
                    cdp_url = f"ws://127.0.0.1:{lines[0]}{lines[1]}"
            if cdp_url is None:
                time.sleep(0.02)
        yield ChromiumServer(proc=proc, cdp_url=cdp_url, user_data_dir=profile, executable=executable)
    finally:
        stop_process(proc, timeout=10)
        shutil.rmtree(profile, ignore_errors=True)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) or "(empty log)"
    except OSError:
        return f"(no log at {path})"


# ------------------------------------------------------------------------------------------------------------- axe-core


def axe_dir() -> Path:
    return var_dir() / "npm" / f"axe-core-{AXE_CORE_VERSION}"


_axe_cache: dict[str, str] = {}


def axe_source() -> str:
    """The text of axe-core's axe.min.js (AXE_CORE_VERSION), npm-installed into <var>/npm once."""
    if AXE_CORE_VERSION in _axe_cache:
        return _axe_cache[AXE_CORE_VERSION]
    target = axe_dir()
    script = target / "node_modules" / "axe-core" / "axe.min.js"
    if not _axe_installed(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target.parent / ".install.lock", "w") as lock:  # parallel test runs install once
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not _axe_installed(target):
                _install_axe(target)
    text = script.read_text(encoding="utf-8")
    _axe_cache[AXE_CORE_VERSION] = text
    return text


def _axe_installed(target: Path) -> bool:
    try:
        meta = json.loads((target / "node_modules" / "axe-core" / "package.json").read_text())
    except (OSError, ValueError):
        return False
    return meta.get("version") == AXE_CORE_VERSION and (target / "node_modules" / "axe-core" / "axe.min.js").is_file()


def _install_axe(target: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(
            f"npm is not installed: it is needed once to fetch axe-core@{AXE_CORE_VERSION} into {target} "
            "(Debian: apt-get install -y --no-install-recommends npm)"
        )
    staging = Path(tempfile.mkdtemp(prefix=".axe-core-", dir=target.parent))
    cmd = [npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(staging)]
    cmd.append(f"axe-core@{AXE_CORE_VERSION}")
    _say(f"fetching axe-core {AXE_CORE_VERSION}: {' '.join(cmd)}")
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if done.returncode != 0 or not _axe_installed(staging):
            raise RuntimeError(
                f"`{' '.join(cmd)}` failed (exit {done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
            )
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


_AXE_RUN = """async ({tags, include, disable}) => {
  const options = {runOnly: {type: "tag", values: tags}, resultTypes: ["violations"]};
  if (disable.length) options.rules = Object.fromEntries(disable.map((id) => [id, {enabled: false}]));
  const results = await window.axe.run(include === null ? document : include, options);
  return results.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl, description: v.description,
    nodes: v.nodes.map((n) => ({target: n.target, html: n.html, failureSummary: n.failureSummary})),
  }));
}"""


async def inject_axe(page: Page) -> None:
    """Load axe-core into the page, unless it is there already.

    With a script tag first (page.add_script_tag); a page whose Content-Security-Policy forbids inline script (the
    gateway's does) refuses that, then the source is evaluated over the DevTools protocol, which CSP does not govern.
    """
    if await page.evaluate("typeof window.axe !== 'undefined'"):
        return
    source = axe_source()
    with contextlib.suppress(Exception):
        await page.add_script_tag(content=source)
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.evaluate(f"(() => {{ {source}\n}})()")
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        raise AssertionError(f"could not load axe-core into {page.url}")


async def axe_violations(
    page: Page, *, tags: Sequence[str] = WCAG_TAGS, include: str | None = None, disable: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is now (every impact), as plain dicts."""
    await inject_axe(page)
    result: list[dict[str, Any]] = await page.evaluate(
        _AXE_RUN, {"tags": list(tags), "include": include, "disable": list(disable)}
    )
    return result


def format_violations(violations: Iterable[dict[str, Any]], url: str = "") -> str:
    lines = [f"accessibility violations (axe-core {AXE_CORE_VERSION}, WCAG 2.1 A/AA){' on ' + url if url else ''}:"]
    for v in violations:
        lines.append(f"  {v['id']} [{v['impact']}]: {v['help']} ({v['helpUrl']})")
        for node in v["nodes"][:10]:
            lines.append(f"      {' '.join(str(t) for t in node['target'])}    {node['html'][:120]}")
        if len(v["nodes"]) > 10:
            lines.append(f"      ... and {len(v['nodes']) - 10} more")
    return "\n".join(lines)


async def assert_accessible(
    page: Page,
    *,
    impacts: Sequence[str] = ("serious", "critical"),
    include: str | None = None,
    disable: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """Fail when axe-core finds WCAG 2.1 A/AA violations of `impacts` on the page (rule id, impact, help, targets).

    `include`: a CSS selector to check only that part; `disable`: rule ids to leave out (say why in the test).
    Returns every violation found, the ones of lower impact included, for a test that wants to look at them.
    """
    __tracebackhide__ = True
    violations = await axe_violations(page, include=include, disable=disable)
    failing = [v for v in violations if v["impact"] in impacts]
    if failing:
        raise AssertionError(format_violations(failing, page.url))
    return violations


# ------------------------------------------------------------------------------------------------------ page helpers


_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


async def screenshot(page: Page, name: str, *, full_page: bool = False) -> Path:
    """The page as a PNG in docs/screenshots/<name>.png (the README shows them); returns the path."""
    if not _SAFE_NAME.fullmatch(name) or name.endswith(".png"):
        raise ValueError(f"screenshot name {name!r}: letters, digits, '.', '_' and '-', without .png")
    path = screenshots_dir() / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(path), full_page=full_page, animations="disabled", caret="hide")
    return path


_DESCRIBE_FOCUS = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return "body";
  let text = el.tagName.toLowerCase();
  if (el.id) text += "#" + el.id;
  else if (el.getAttribute("name")) text += "[name=" + el.getAttribute("name") + "]";
  const label = el.getAttribute("aria-label") || (el.labels && el.labels[0] && el.labels[0].textContent)
    || (["A", "BUTTON"].includes(el.tagName) ? el.textContent : "");
  if (label && label.trim()) text += " " + JSON.stringify(label.trim().replace(/\\s+/g, " "));
  return text;
}"""


async def focused(page: Page) -> str:
    """document.activeElement in short: 'input#email "E-mail"', 'button "Send"', 'a "Forside"', or 'body'."""
    result: str = await page.evaluate(_DESCRIBE_FOCUS)
    return result


async def tab_order(page: Page, count: int) -> list[str]:
    """Press Tab `count` times; what had the focus after each press (see `focused`)."""
    order = []
    for _ in range(count):
        await page.keyboard.press("Tab")
        order.append(await focused(page))
    return order


def failure_artifact_path(nodeid: str) -> Path:
    """var/test-artifacts/<test id>.png (and .html) for a failing browser test."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", nodeid).strip("_")[-180:]
    return artifacts_dir() / f"{safe}.png"
