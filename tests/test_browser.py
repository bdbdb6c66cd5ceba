"""A real browser session: Debian's chromium, headless, driven by Playwright, draws strokes on the
app's canvas with the mouse and checks that the selector badge, the ranked photos and the FLOP
counter update. Saves a screenshot to test-output/browser.png."""

from __future__ import annotations

import contextlib
import re
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.is_file(), reason="Debian chromium is not installed at /usr/bin/chromium "
                       "(apt-get install -y chromium); the browser test needs it"),
    pytest.mark.filterwarnings("ignore:::gradio.queueing"),  # gradio's queue vs pandas 3 deprecations
]

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_app import PHOTOS, free_port  # noqa: E402

from webapp.demo import launch  # noqa: E402


@pytest.fixture(scope="module")
def url(web_app):
    port = free_port()
    launch(web_app.demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    web_app.demo.close()


@contextlib.contextmanager
def browser_page(url: str, height: int, **kw):
    """(page at ``url`` in headless chromium, list of the page's script errors, test-output folder)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    out = REPO / "test-output"
    out.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": height}, **kw)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url, wait_until="load")  # not networkidle: Gradio's heartbeat keeps the network busy
            yield page, errors, out
        finally:
            browser.close()


def test_draw_strokes_updates_results(url):
    with browser_page(url + "?search=server", 1100) as (page, errors, out):
        canvas = page.locator("#sd-draw canvas.sd-canvas")
        canvas.wait_for(timeout=60_000)
        badge = page.locator("#sd-selector .sd-badge")
        assert "sd-badge-idle" in (badge.get_attribute("class") or "")
        assert page.locator("#sd-results img").count() == 0
        box = canvas.bounding_box()
        assert box and box["width"] > 200

        def stroke(points: list[tuple[float, float]]) -> None:
            """Draw a polyline given in canvas fractions with the mouse."""
            x, y = points[0]
            page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"])
            page.mouse.down()
            for x, y in points[1:]:
                page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"], steps=6)
            page.mouse.up()

        session = page.locator("#sd-flops .sd-session")

        def retrievals() -> int:
            m = re.search(r"(\d+)\s+retrievals", session.inner_text()) if session.count() else None
            return int(m.group(1)) if m else 0

        t0 = time.perf_counter()
        stroke([(0.15, 0.5), (0.45, 0.3), (0.75, 0.5), (0.45, 0.7), (0.15, 0.5)])  # a fish body
        page.locator("#sd-selector .sd-badge:not(.sd-badge-idle)").wait_for(timeout=30_000)
        first = time.perf_counter() - t0
        assert re.fullmatch(r"canvas \d+ px", badge.inner_text().strip())
        page.wait_for_function("document.querySelectorAll('#sd-results img').length > 0", timeout=30_000)
        n1 = retrievals()
        assert n1 >= 1
        stroke([(0.75, 0.5), (0.9, 0.35), (0.9, 0.65), (0.75, 0.5)])  # tail
        stroke([(0.3, 0.45), (0.32, 0.46)])  # eye
        assert page.locator(".sd-count").inner_text() == "3 strokes"
        deadline = time.time() + 30
        while retrievals() <= n1 and time.time() < deadline:
            page.wait_for_timeout(100)
        assert retrievals() > n1, "the FLOP counter did not update after more strokes"
        page.wait_for_timeout(800)  # let the last (always_last) request land
        assert page.locator("#sd-results img").count() == len(PHOTOS)
        gflops = float(page.locator("#sd-flops .sd-q-gflops").inner_text())
        assert gflops > 0
        assert page.locator("#sd-selector .sd-bar-row").count() == 2  # one bar per canvas of the selector
        assert page.locator("#sd-selector .sd-netview img").get_attribute("src").startswith("data:image/png;base64,")
        page.screenshot(path=str(out / "browser.png"), full_page=True)
        # undo and clear work on the strokes and the results follow
        page.locator("#sd-draw .sd-undo").click()
        assert page.locator(".sd-count").inner_text() == "2 strokes"
        page.locator("#sd-draw .sd-clear").click()
        page.locator("#sd-selector .sd-badge-idle").wait_for(timeout=30_000)
        page.wait_for_function("document.querySelectorAll('#sd-results img').length === 0", timeout=30_000)
        assert not errors, errors
        print(f"first stroke to results: {first:.2f} s")


def test_in_page_search_ranks_without_the_server(url):
    """By default the page ranks the gallery itself: drawing shows ranked photos, the canvas and the FLOPs
    in the canvas' panel, updates while the pen moves, and sends no search request to the server; the
    checkbox hands the search back to the server, whose panels then fill in."""
    with browser_page(url, 1100) as (page, errors, out):
        searches: list[str] = []
        page.on("request", lambda r: searches.append(r.url) if "queue/join" in r.url or "/retrieve" in r.url else None)
        page.wait_for_function("window.sdLive && window.sdLive.mode === 'browser'", timeout=60_000)
        assert "runs here" in page.locator("#sd-draw .sd-where-note").inner_text()
        canvas = page.locator("#sd-draw canvas.sd-canvas")
        box = canvas.bounding_box()
        page.mouse.move(box["x"] + 0.2 * box["width"], box["y"] + 0.5 * box["height"])
        page.mouse.down()
        for i in range(1, 25):  # a slow stroke: results must arrive while the pen is still down
            page.mouse.move(box["x"] + (0.2 + 0.025 * i) * box["width"], box["y"] + (0.5 - 0.01 * i) * box["height"])
            page.wait_for_timeout(30)
        moves = page.evaluate("window.sdLive.queries.filter(q => q.kind === 'move').length")
        page.mouse.up()
        page.wait_for_function("window.sdLive.queries.some(q => q.kind === 'up')", timeout=30_000)
        assert moves >= 2, f"only {moves} live updates while the pen moved"
        assert page.locator("#sd-live .sd-live-grid img").count() == len(PHOTOS)
        side = int(re.fullmatch(r"(\d+) px", page.locator("#sd-live .sd-live-badge").inner_text().strip()).group(1))
        page.wait_for_timeout(200)  # the network's view is drawn from a bitmap made asynchronously
        assert page.evaluate("document.querySelector('#sd-live .sd-live-ink').width") % side == 0  # its true pixel grid
        assert "GFLOPs" in page.locator("#sd-live .sd-live-cost").inner_text()
        assert page.locator("#sd-results").is_hidden()
        page.wait_for_timeout(500)
        assert searches == [], f"the server was asked to search while drawing in the page: {searches}"
        page.screenshot(path=str(out / "in-page.png"), full_page=True)
        page.locator("#sd-draw .sd-inpage").uncheck()  # hand the search to the server: its panels fill in
        page.wait_for_function("document.querySelectorAll('#sd-results img').length > 0", timeout=30_000)
        assert searches, "switching to the server sent no search"
        assert "server" in page.locator("#sd-draw .sd-where-note").inner_text()
        page.locator("#sd-draw .sd-inpage").check()  # back in the page; a traced example's rank view is the server's
        page.wait_for_function("window.sdLive.mode === 'browser'", timeout=30_000)
        page.locator("#sd-draw .sd-example", has_text="traced:").first.click()
        page.wait_for_function("window.sdLive.mode === 'server'", timeout=30_000)
        page.locator("#sd-rank .sd-rank-line").first.wait_for(timeout=60_000)
        assert not errors, errors
