"""Pointer-up-to-results latency of the in-page search, in headless chromium driven by Playwright: draws
the example sketches stroke by stroke with the mouse (clearing between sketches) until ``--strokes``
strokes are drawn, and prints JSON with what the page measured itself (``window.sdLive``):

- ``up_ms``: pointer-up to the ranked photos on the page (the worker's queue, the selector, drawing, the
  student, the HOG, scoring every gallery vector and the DOM update), median / p95 / max;
- ``up_already_shown``: pointer-ups whose strokes a live update had already ranked (counted at ~0 ms);
- ``worker_ms``: the worker's own time per query; ``moves_per_stroke``: live updates while the pen moved;
- ``server_requests``: searches sent to the server while drawing (0 when the page searches by itself).

    python scripts/bench_browser.py --launch --strokes 60      # the app in-process on a free port
    python scripts/bench_browser.py --url http://127.0.0.1:7860/ --strokes 60

Needs Debian's chromium (/usr/bin/chromium) and the playwright package (requirements-dev.txt).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scripts.bench_latency import free_port, pct  # noqa: E402
from sketchdown.sketch.examples import CANVAS, EXAMPLES  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def draw(page, box: dict, strokes: list, move_ms: float) -> int:
    """Draw ``strokes`` (canvas pixels) with the mouse, waiting for each stroke's results; returns strokes drawn."""
    sx, sy = box["width"] / CANVAS, box["height"] / CANVAS
    for s in strokes:
        before = page.evaluate("window.sdLive.queries.filter(q => q.kind === 'up').length")
        page.mouse.move(box["x"] + s[0][0] * sx, box["y"] + s[0][1] * sy)
        page.mouse.down()
        for x, y in s[1:]:
            page.mouse.move(box["x"] + x * sx, box["y"] + y * sy)
            page.wait_for_timeout(move_ms)
        page.mouse.up()
        page.wait_for_function(f"window.sdLive.queries.filter(q => q.kind === 'up').length > {before}", timeout=30_000)
    return len(strokes)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:7860/", help="a running app")
    p.add_argument("--launch", action="store_true", help="start the app in this process instead (env SKETCHDOWN_WEIGHTS_SET, ...)")
    p.add_argument("--strokes", type=int, default=60, help="at least this many strokes (whole sketches)")
    p.add_argument("--move-ms", type=float, default=8.0, help="pause between pointer moves (a pen reports every ~8-16 ms)")
    a = p.parse_args(argv)
    from playwright.sync_api import sync_playwright

    url = a.url
    if a.launch:
        from webapp.config import AppConfig
        from webapp.demo import create_demo, launch

        port = free_port()
        launch(create_demo(AppConfig.from_env()), prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
        url = f"http://127.0.0.1:{port}/"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        searches: list[str] = []
        page.on("request", lambda r: searches.append(r.url) if "queue/join" in r.url else None)
        page.goto(url, wait_until="load")
        page.wait_for_function("window.sdLive && window.sdLive.mode === 'browser'", timeout=120_000)
        info = page.evaluate("window.sdLive.info")
        box = page.locator("#sd-draw canvas.sd-canvas").bounding_box()
        drawn, sketches = 0, 0
        while drawn < a.strokes:
            for strokes in EXAMPLES.values():
                page.locator("#sd-draw .sd-clear").click()
                drawn += draw(page, box, strokes, a.move_ms)
                sketches += 1
                if drawn >= a.strokes:
                    break
        queries = page.evaluate("window.sdLive.queries")
        browser.close()
    up = [q["ms"] for q in queries if q["kind"] == "up"]
    ran = [q for q in queries if "workerMs" in q]
    work = [q["workerMs"] for q in ran]
    moves = [q for q in queries if q["kind"] == "move"]
    out = {
        "strokes": len(up), "sketches": sketches, "load_ms": round(info["loadMs"], 1), "photos": info["photos"],
        "up_ms_median": round(statistics.median(up), 2), "up_ms_p95": round(pct(up, 95), 2), "up_ms_max": round(max(up), 2),
        "worker_ms_median": round(statistics.median(work), 2),
        "worker_parts_ms_median": {k: round(statistics.median(q["parts"][k] for q in ran), 2)
                                   for k in ("select", "render", "encode", "search")},
        "moves_per_stroke": round(len(moves) / max(1, len(up)), 2),
        "up_already_shown": sum(bool(q.get("current")) for q in queries if q["kind"] == "up"),
        "canvas_hist": {str(c): sum(q["canvas"] == c for q in ran) for c in sorted({q["canvas"] for q in ran})},
        "server_requests": len(searches),
    }
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
