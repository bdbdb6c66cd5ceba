"""Bounded load test and memory soak of the app through its API (loopback only; stops by itself).

Starts ``app.py`` as a child process in a process group of its own on a free 127.0.0.1 port (or uses
``--url``), then ``--users`` simulated users replay the example sketches stroke by stroke (one
``/retrieve`` per stroke, like a person drawing) for ``--seconds``. Each user is a thread speaking Gradio's
HTTP API directly (``POST /gradio_api/call/retrieve``, then its event stream) over one kept-alive
connection, as light as a browser tab, so the clients do not eat the cores the server is measured on
(``--client gradio`` uses one ``gradio_client.Client`` per user instead: it also downloads every
result photo and, with 20 users, takes ~1.6 of 2 cores itself). Prints one JSON object:
requests, throughput, p50/p95 latency, errors, and the server's RSS at start and end (sampled every
``--rss-every`` seconds, so a soak shows whether memory stays flat).

    python scripts/load_test.py --users 20 --seconds 60                 # the load test
    python scripts/load_test.py --users 2 --seconds 600 --rss-every 30 --think-ms 500  # 10-minute soak
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sketchdown.sketch.examples import EXAMPLES, example_json  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process and its children (Linux /proc), MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q / 100 * (len(xs) - 1))))]


def start_app(port: int, timeout: float = 180.0, app_args: list[str] | None = None, cache: str | None = None,
              env: dict[str, str] | None = None) -> subprocess.Popen:
    """``app.py`` on 127.0.0.1:``port`` with ``app_args`` (e.g. ``--weights``); ``cache`` is its SKETCHDOWN_CACHE
    (where the index of a gallery outside the repo goes); ``env``: more variables (e.g. its own TMPDIR).
    Returns once ``/`` answers."""
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", **({"SKETCHDOWN_CACHE": cache} if cache else {}), **(env or {}))
    proc = subprocess.Popen([sys.executable, str(REPO / "app.py"), "--host", "127.0.0.1", "--port", str(port), *(app_args or [])],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own process group: the clients are not its children
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited with {proc.returncode}: {proc.stderr.read()[-2000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
            return proc
        except OSError:
            time.sleep(1)
    proc.kill()
    raise RuntimeError(f"app.py did not answer within {timeout:.0f} s")


class HttpRetrieve:
    """``/retrieve`` through Gradio's HTTP API on one kept-alive connection: ``__call__(strokes)`` -> the
    outputs list. The other inputs are the endpoint's defaults (read once from ``/gradio_api/info``)."""

    def __init__(self, url: str, session: str) -> None:
        self.session = session  # one session per user, as a browser tab has
        u = urllib.parse.urlsplit(url)
        self.host, self.port, self.prefix = u.hostname, u.port or 80, u.path.rstrip("/")
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        info = json.loads(self._request("GET", "/gradio_api/info"))
        self.defaults = [p.get("parameter_default") for p in info["named_endpoints"]["/retrieve"]["parameters"]]

    def _request(self, method: str, path: str, body: bytes | None = None) -> bytes:
        for attempt in (0, 1):  # a kept-alive connection the server closed is reopened once
            try:
                self.conn.request(method, self.prefix + path, body, {"Content-Type": "application/json"} if body else {})
                r = self.conn.getresponse()
                data = r.read()
                if r.status != 200:
                    raise RuntimeError(f"HTTP {r.status} on {path}: {data[:200]!r}")
                return data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def __call__(self, strokes: str) -> list:
        body = json.dumps({"data": [strokes, *self.defaults[1:]], "session_hash": self.session}).encode()
        event = json.loads(self._request("POST", "/gradio_api/call/retrieve", body))["event_id"]
        stream = self._request("GET", f"/gradio_api/call/retrieve/{event}").decode()
        kind = data = None
        for line in stream.splitlines():
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:") and kind in ("complete", "error"):
                data = line[5:].strip()
                break
        if kind != "complete" or data is None:
            raise RuntimeError(f"event {kind}: {str(data)[:200]}")
        return json.loads(data)


def user(url: str, seconds: float, idx: int, lat: list[float], errors: list[str], lock: threading.Lock, think_s: float = 0.0,
         client_kind: str = "http") -> None:
    if client_kind == "gradio":
        from gradio_client import Client

        gc = Client(url, verbose=False)
        call = lambda strokes: gc.predict(strokes, api_name="/retrieve")  # noqa: E731
    else:
        call = HttpRetrieve(url, f"load-test-{idx}-{os.getpid()}")
    names = list(EXAMPLES)
    deadline = time.time() + seconds
    i = idx
    while time.time() < deadline:
        name = names[i % len(names)]
        for n in range(1, len(EXAMPLES[name]) + 1):
            if time.time() >= deadline:
                break
            t0 = time.perf_counter()
            try:
                out = call(example_json(name, n))
                ok = isinstance(out, (list, tuple)) and out[1].get("error") is None and len(out[0]) > 0
                err = None if ok else f"bad answer: {str(out[1])[:200]}"
            except Exception as e:  # a failed request is a result here, not a crash
                err = f"{type(e).__name__}: {e}"[:300]
            dt = (time.perf_counter() - t0) * 1000
            with lock:
                (errors.append(err) if err else lat.append(dt))
            if think_s:
                time.sleep(think_s)  # the time a person takes to draw the next stroke
        i += 1


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default=None, help="a running app (default: start app.py on loopback)")
    p.add_argument("--users", type=int, default=20)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--rss-every", type=float, default=10)
    p.add_argument("--think-ms", type=float, default=0, help="pause between a user's strokes (0: back to back)")
    p.add_argument("--client", choices=("http", "gradio"), default="http",
                   help="http: Gradio's HTTP API on a kept-alive connection (light); gradio: gradio_client (heavy)")
    p.add_argument("--weights", help="the started app's weights (app.py --weights; default: its own)")
    p.add_argument("--gallery", help="the started app's photo folder (app.py --gallery; default: its own)")
    p.add_argument("--cache", help="the started app's SKETCHDOWN_CACHE (indexes of galleries outside the repo)")
    a = p.parse_args(argv)

    proc = None
    url = a.url
    if url is None:
        port = free_port()
        app_args = [*(["--weights", a.weights] if a.weights else []), *(["--gallery", a.gallery] if a.gallery else [])]
        proc = start_app(port, app_args=app_args, cache=a.cache)
        url = f"http://127.0.0.1:{port}/"
    try:
        pid = proc.pid if proc else None
        rss = [(0.0, rss_mb(pid))] if pid else []
        lat: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        threads = [threading.Thread(target=user, args=(url, a.seconds, i, lat, errors, lock, a.think_ms / 1000, a.client),
                                    daemon=True) for i in range(a.users)]
        t0 = time.time()
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            time.sleep(min(a.rss_every, 1.0))
            if pid and time.time() - t0 - rss[-1][0] >= a.rss_every:
                rss.append((round(time.time() - t0, 1), rss_mb(pid)))
            if time.time() - t0 > a.seconds + 120:
                errors.append("users did not finish within 120 s of the deadline")
                break
        wall = time.time() - t0
        if pid:
            rss.append((round(wall, 1), rss_mb(pid)))
        result = {
            "users": a.users, "client": a.client, "think_ms": a.think_ms, "seconds": round(wall, 1), "requests": len(lat) + len(errors), "ok": len(lat),
            "errors": len(errors), "error_examples": sorted(set(errors))[:5],
            "throughput_rps": round(len(lat) / wall, 2),
            "p50_ms": round(pct(lat, 50), 1) if lat else None, "p95_ms": round(pct(lat, 95), 1) if lat else None,
            "server_rss_mb_start": round(rss[0][1], 1) if rss and rss[0][1] else None,
            "server_rss_mb_end": round(rss[-1][1], 1) if rss and rss[-1][1] else None,
            "server_rss_mb_samples": [(t, round(m, 1)) for t, m in rss if m],
        }
    finally:
        if proc:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
