"""The interactive page in a real browser, with no CDN access.

``agentev viz`` serves ``viz/app.py``; headless Chromium (Debian's ``/usr/bin/chromium``,
installed by ``make setup``) loads it with every request to a host other than this machine
refused, clicks Step and watches the status line and the floor plan change. The Solara server
gets a CDN address that refuses connections, so an asset missing from agentev's asset cache
shows up as a failed request instead of being fetched quietly by the server.

A screenshot of the page goes to ``$AGENTEV_ARTIFACTS`` (default ``test-artifacts/``).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from agentev import webassets

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
#: Schemes that never leave the browser.
LOCAL_SCHEMES = {"data", "blob", "about", "chrome", "chrome-error"}
#: A CDN address that refuses connections (port 9, discard, on loopback).
DEAD_CDN = "http://127.0.0.1:9/npm/"
STEPS = 3
SERVER_START_S = 90.0
#: Flags that keep Chromium off the network by itself (updates, sync, QUIC probes).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: How Solara shows a Python exception: the traceback as text in the page (an app or render
#: error replaces the page with ``<pre>Traceback ...</pre>``), or a ``solara.Error`` alert.
TRACEBACK_TEXT = "Traceback (most recent call last)"
ERROR_ALERT = ".v-alert.error"
STATUS = re.compile(r"t = (\d+(?:\.\d+)?) min \(((?:day \d+ )?\d\d:\d\d)\)")


def _missing_setup() -> str | None:
    """What ``make setup`` should have installed and is not there, or None."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing: run `make setup` (it installs Debian's chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed: run `make setup` (pip install -e '.[dev]')"
    missing = webassets.missing_packages()
    if missing:
        return (
            f"Solara's front-end assets are not in {webassets.assets_dir()} "
            f"({', '.join(p.spec for p in missing)}): run `make setup` "
            "(python -m agentev.webassets)"
        )
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class VizServer:
    """A running ``agentev viz`` and everything it printed."""

    process: subprocess.Popen
    lines: list[str] = field(default_factory=list)
    url: str | None = None
    ready: threading.Event = field(default_factory=threading.Event)

    def read(self) -> None:
        """Collect the output (the pipe must be drained, or the server blocks on it)."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            match = re.search(r"agentev viz: serving (\S+)", line)
            if match:
                self.url = match.group(1)
                self.ready.set()
        self.ready.set()

    def log(self) -> str:
        return "\n".join(self.lines[-60:])


def _agentev() -> list[str]:
    script = Path(sys.executable).with_name("agentev")
    return [str(script)] if script.exists() else [sys.executable, "-m", "agentev.cli"]


@pytest.fixture
def viz_server() -> Iterator[VizServer]:
    """``agentev viz --no-open`` on a free port, stopped afterwards."""
    problem = _missing_setup()
    if problem:
        pytest.fail(problem, pytrace=False)
    port = _free_port()
    env = dict(os.environ, SOLARA_ASSETS_CDN=DEAD_CDN, SOLARA_TELEMETRY_MIXPANEL_ENABLE="false")
    process = subprocess.Popen(
        [*_agentev(), "viz", "--no-open", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, so nothing outlives the test
    )
    server = VizServer(process)
    threading.Thread(target=server.read, daemon=True).start()
    try:
        server.ready.wait(SERVER_START_S)
        if server.url is None:
            pytest.fail(
                f"agentev viz printed no address within {SERVER_START_S:.0f} s "
                f"(exit code {process.poll()}):\n{server.log()}",
                pytrace=False,
            )
        yield server
    finally:
        process.terminate()  # agentev viz stops its Solara server on SIGTERM
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def artifacts() -> Path:
    path = Path(os.environ.get("AGENTEV_ARTIFACTS") or REPO / "test-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _is_local(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in LOCAL_SCHEMES or parts.hostname in LOCAL_HOSTS


#: SHA-256 of the floor plan's image bytes (the ``.agentev-floor`` image, else the largest
#: image on the page), or null while it is not loaded.
FLOOR_DIGEST_JS = """
async () => {
  let imgs = [...document.querySelectorAll('.agentev-floor img')];
  if (!imgs.length) imgs = [...document.querySelectorAll('img')];
  imgs = imgs.filter(i => i.complete && i.naturalWidth > 0);
  if (!imgs.length) return null;
  imgs.sort((a, b) => b.naturalWidth * b.naturalHeight - a.naturalWidth * a.naturalHeight);
  try {
    const bytes = await (await fetch(imgs[0].src)).arrayBuffer();
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
    return Array.from(digest, b => b.toString(16).padStart(2, '0')).join('');
  } catch (e) {
    return null;  // the image changed (and its blob URL was revoked) in the meantime
  }
}
"""


def _wait_for(predicate, timeout_s: float, interval_s: float = 0.2):
    """The first truthy value of ``predicate()`` within ``timeout_s``, else None."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    return None


def _minutes(status_text: str) -> float:
    match = STATUS.search(status_text)
    assert match, f"status line {status_text!r} does not read like 't = 0 min (00:00) · ...'"
    minutes, clock = float(match.group(1)), match.group(2)
    day, minute = divmod(int(minutes), 24 * 60)
    expected = f"{minute // 60:02d}:{minute % 60:02d}"
    expected = expected if day == 0 else f"day {day + 1} {expected}"
    assert clock == expected, f"status line {status_text!r}: {minutes:g} min is {expected}"
    return minutes


def _traceback_on_page(page) -> str:
    """The Python traceback the page shows, or ''."""
    from playwright.sync_api import Error as PlaywrightError

    try:
        shown = page.get_by_text(TRACEBACK_TEXT)
        return shown.first.inner_text(timeout=5_000) if shown.count() else ""
    except PlaywrightError as exc:
        return f"(cannot read the page: {exc})"


def _exercise(page, url: str) -> list[float]:
    """Load the page, click Step ``STEPS`` times; return the times shown, in minutes."""
    page.goto(url)
    status = page.locator(".agentev-status")
    traceback = page.get_by_text(TRACEBACK_TEXT)
    status.or_(traceback).first.wait_for(timeout=45_000)

    def shown_minutes() -> float:
        return _minutes(status.inner_text(timeout=5_000))

    times = [shown_minutes()]
    assert times == [0], f"a new page starts at t = 0 min, not {times[0]:g}"
    floor = _wait_for(lambda: page.evaluate(FLOOR_DIGEST_JS), 15)
    assert floor, "the floor plan image did not load"

    step = page.get_by_role("button", name="Step", exact=True)
    for _ in range(STEPS):
        step.click()
        later = _wait_for(lambda: (t := shown_minutes()) > times[-1] and t, 20)
        assert later, f"the time stayed at {times[-1]:g} min after a Step click"
        times.append(later)
    changed = _wait_for(
        lambda: (d := page.evaluate(FLOOR_DIGEST_JS)) not in (None, floor) and d, 15
    )
    assert changed, f"the floor plan image is the same after {STEPS} steps"
    return times


def test_page_renders_offline_and_steps(viz_server: VizServer, artifacts: Path):
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    external: list[str] = []
    failed: list[str] = []
    page_errors: list[str] = []

    def refuse(route) -> None:
        external.append(route.request.url)
        route.abort()

    def on_response(response) -> None:
        if response.status >= 400:
            failed.append(f"{response.url} ({response.status})")

    def on_failed(request) -> None:
        if _is_local(request.url):
            failed.append(f"{request.url} ({request.failure})")

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.route(lambda url: not _is_local(url), refuse)
            page = context.new_page()
            page.on("websocket", lambda ws: None if _is_local(ws.url) else external.append(ws.url))
            page.on("requestfailed", on_failed)
            page.on("response", on_response)
            page.on("pageerror", lambda exc: page_errors.append(str(exc)))
            problem = None
            try:
                times = _exercise(page, viz_server.url)
                error_text = _traceback_on_page(page)
                alerts = page.locator(ERROR_ALERT).all_inner_texts()
            except (AssertionError, PlaywrightError) as exc:
                problem = (
                    f"{exc}\ntraceback on the page: {_traceback_on_page(page) or None}\n"
                    f"failed requests: {failed}\nrefused external requests: {external}\n"
                    f"JavaScript errors: {page_errors}\nagentev viz output:\n{viz_server.log()}"
                )
            finally:
                with contextlib.suppress(PlaywrightError):  # keep the test's own failure
                    page.screenshot(path=artifacts / "browser-page.png", full_page=True)
            if problem:
                pytest.fail(problem, pytrace=False)
        finally:
            browser.close()

    assert times[-1] > 0
    assert not error_text, f"the page shows a Python traceback:\n{error_text}"
    assert not alerts, f"the page shows error boxes: {alerts}"
    assert not external, f"the page asked for hosts other than this machine: {external}"
    assert not failed, f"requests failed (an asset missing from the cache?): {failed}"
    assert not page_errors, f"JavaScript errors: {page_errors}"
    assert viz_server.process.poll() is None, f"agentev viz stopped:\n{viz_server.log()}"
