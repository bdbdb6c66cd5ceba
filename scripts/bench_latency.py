"""Mouse-up-to-results latency of the running app, through its API (what a browser waits for after
each stroke, minus rendering): replays the example sketches stroke by stroke, one ``/retrieve`` call
per completed stroke, and prints JSON with the median and p95 round trip.

    python scripts/bench_latency.py --url http://127.0.0.1:7860 --strokes 50
    python scripts/bench_latency.py --launch --strokes 50     # start the app in-process on a free port
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sketchdown.sketch.examples import EXAMPLES, example_json  # noqa: E402


def stroke_queries(n: int) -> list[str]:
    """``n`` stroke JSONs: every example's growing prefix (one per mouse-up), cycling through them."""
    one_round = [example_json(name, i) for name, strokes in EXAMPLES.items() for i in range(1, len(strokes) + 1)]
    return [one_round[i % len(one_round)] for i in range(n)]


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q / 100 * (len(xs) - 1))))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:7860/", help="a running app")
    p.add_argument("--launch", action="store_true", help="start the app in this process instead (env SKETCHDOWN_WEIGHTS_SET, ...)")
    p.add_argument("--strokes", type=int, default=50)
    p.add_argument("--warmup", type=int, default=3)
    a = p.parse_args(argv)

    from gradio_client import Client

    demo = None
    url = a.url
    if a.launch:
        from webapp.config import AppConfig
        from webapp.demo import create_demo, launch

        port = free_port()
        demo = create_demo(AppConfig.from_env())
        launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
        url = f"http://127.0.0.1:{port}/"
    try:
        client = Client(url, verbose=False, download_files=False, analytics_enabled=False)
        for q in stroke_queries(a.warmup):
            client.predict(q, api_name="/retrieve")
        wall, server, handler, gflops, canvases, errors = [], [], [], [], {}, 0
        full = None
        for q in stroke_queries(a.strokes):
            t0 = time.perf_counter()
            out = client.predict(q, api_name="/retrieve")
            wall.append((time.perf_counter() - t0) * 1000)
            r = out[1]
            if r.get("error"):
                errors += 1
                continue
            server.append(r["latency_ms"])
            handler.append(r.get("handler_ms", r["latency_ms"]))
            gflops.append(r["gflops"])
            full = r["full_gflops"]
            canvases[str(r["canvas"])] = canvases.get(str(r["canvas"]), 0) + 1
        client.close()
    finally:
        if demo is not None:
            demo.close()
    report = {
        "url": url,
        "strokes": len(wall),
        "errors": errors,
        "roundtrip_ms": {"median": round(statistics.median(wall), 1), "p95": round(pct(wall, 95), 1),
                         "min": round(min(wall), 1), "max": round(max(wall), 1)},
        "server_retrieve_ms": {"median": round(statistics.median(server), 1), "p95": round(pct(server, 95), 1)} if server else None,
        "handler_ms": {"median": round(statistics.median(handler), 1), "p95": round(pct(handler, 95), 1)} if handler else None,
        "gflops_per_query": {"median": round(statistics.median(gflops), 5), "full_network": full} if gflops else None,
        "canvas_hist": canvases,
    }
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
