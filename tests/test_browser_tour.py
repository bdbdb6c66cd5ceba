"""A first visit on the shipped weights and gallery, in Debian's headless chromium driven by Playwright:
the selector's explained badge at two canvases, the FLOPs-vs-Acc@1 plot, the rank-per-stroke view of a
replayed traced example, and a downloaded sketch opened again. Screenshots go to test-output/:
badge-<px>.png (two), plot.png, rank.png, sketch.svg."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_browser import CHROMIUM, browser_page  # noqa: E402

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.is_file(), reason="Debian chromium is not installed at /usr/bin/chromium "
                       "(apt-get install -y chromium); the browser test needs it"),
    pytest.mark.filterwarnings("ignore:::gradio.queueing"),
]


@pytest.fixture(scope="module")
def url():
    from test_app import free_port

    from sketchdown.config import gallery_dir
    from webapp.config import AppConfig
    from webapp.demo import create_demo, launch

    demo = create_demo(AppConfig(weights=str(REPO / "weights" / "default"), gallery=gallery_dir(), warmup=False))
    port = free_port()
    launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


def _results(page) -> list[str]:
    return [img.get_attribute("src") or "" for img in page.locator("#sd-results img").all()]


def _settle(page, ms: int = 1500) -> list[str]:
    """The ranked photos once they stop changing (the last, always_last request has landed)."""
    last, same = None, 0
    for _ in range(60):
        page.wait_for_timeout(250)
        now = _results(page)
        same = same + 1 if now == last and now else 0
        last = now
        if same * 250 >= ms:
            break
    return last or []


def _replay(page, name: str, strokes: int) -> None:
    page.locator(f".sd-example[data-example='{name}']").click()
    page.wait_for_function(f"document.querySelector('.sd-count').textContent === '{strokes} strokes'", timeout=30_000)


def test_first_visit_tour(url, tmp_path):
    with browser_page(url + "?search=server", 1300, accept_downloads=True) as (page, errors, out):
        page.locator("#sd-draw canvas.sd-canvas").wait_for(timeout=60_000)
        # the explained badge at two canvases: the selector's pick at lambda_F 0 and at its largest value
        page.get_by_text("Teaching panel", exact=False).first.click()
        _replay(page, "chair", 7)
        _settle(page)
        badges = {}
        for lam in ("0", "0.2"):
            page.locator("#sd-lam label").filter(has_text=re.compile(rf"^\s*{re.escape(lam)}\s*$")).click()
            page.wait_for_timeout(300)
            _settle(page)
            badge = page.locator("#sd-selector .sd-badge").inner_text()
            px = int(re.search(r"(\d+)", badge).group(1))
            why = page.locator("#sd-selector .sd-why").inner_text()
            assert "7 strokes" in why and "points after simplification" in why and "224 px" in why, why
            img = page.locator("#sd-selector .sd-netview img")
            assert img.get_attribute("width") == str(px * round(192 / px))  # true pixel grid, integer blocks
            page.locator("#sd-selector").screenshot(path=str(out / f"badge-{px}.png"))
            badges[lam] = px
        assert badges["0"] != badges["0.2"], badges
        plot = page.locator("#sd-plot")
        plot.locator("img").first.wait_for(timeout=30_000)  # the matplotlib figure, redrawn after each query
        plot.scroll_into_view_if_needed()
        page.wait_for_timeout(500)
        plot.screenshot(path=str(out / "plot.png"))
        # early retrieval, shown: replaying a traced example plots its photo's rank after each stroke
        page.locator("#sd-lam label").filter(has_text=re.compile(r"^\s*0\s*$")).click()
        _replay(page, "traced: lion", 3)
        _settle(page)
        rank = page.locator("#sd-rank .sd-rank-line").first
        rank.wait_for(timeout=30_000)
        assert len(re.findall(r"\d+", rank.get_attribute("data-ranks") or "")) == 3
        page.locator("#sd-rank").screenshot(path=str(out / "rank.png"))
        before = _settle(page)
        # sketch out and back in: the downloaded JSON opens to the same ranking
        with page.expect_download() as dl:
            page.locator("#sd-draw .sd-save-json").click()
        saved = tmp_path / "sketch.json"
        dl.value.save_as(saved)
        with page.expect_download() as dl:
            page.locator("#sd-draw .sd-save-svg").click()
        dl.value.save_as(out / "sketch.svg")
        assert (out / "sketch.svg").read_text().count("<path") == 3
        page.locator("#sd-draw .sd-clear").click()
        page.wait_for_function("document.querySelectorAll('#sd-results img').length === 0", timeout=30_000)
        page.locator("#sd-sketch-file input[type=file]").set_input_files(str(saved))
        page.wait_for_function("document.querySelector('.sd-count').textContent === '3 strokes'", timeout=30_000)
        assert _settle(page) == before
        assert not errors, errors
