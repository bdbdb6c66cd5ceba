"""Uploaded photos really go away, and one user's indexing does not stall another's: ``app.py`` runs as a
child process on loopback (tiny smoke weights, a 6-photo gallery, its own TMPDIR, a few seconds of idle
timeout) and is driven from outside over HTTP, with raw ``urllib`` requests (Gradio's upload and queue
protocol, as a browser or script speaks it) and with ``gradio_client``.

``SD_PRIVACY_CLIENTS`` sets how many clients upload and vanish (default 12; the issue's 100 take ~2-3
minutes on 2 cores: run ``SD_PRIVACY_CLIENTS=100 python -m pytest tests/test_privacy.py -k vanish -s``).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import secrets
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import APP_PHOTOS, write_photo
from PIL import Image, ImageDraw

from sketchdown.sketch.examples import example_json

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

import load_test  # noqa: E402

IDLE_S = 4.0  # the app's idle timeout here: short, so the sweep is seen within the test
CLIENTS = int(os.environ.get("SD_PRIVACY_CLIENTS", "12"))
NEAR_LIMIT = (6300, 6300)  # 39.7 megapixels, just under sketchdown.sketch.imageio.MAX_PIXELS


# ---- a raw HTTP client: what a browser's page or a script sends -------------------------------------------
class RawClient:
    """One Gradio session spoken to over plain HTTP: upload files, run an event by its API name (through the
    queue, like the page does), fetch URLs. ``session`` is the session hash (random per client)."""

    def __init__(self, base: str, fns: dict[str, int]) -> None:
        self.base, self.fns, self.session = base.rstrip("/"), fns, secrets.token_hex(6)

    def upload(self, files: list[tuple[str, bytes]]) -> list[str]:
        """POST /gradio_api/upload; returns the server paths of the files."""
        boundary = secrets.token_hex(12)
        body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{n}"\r\n'
                        f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n" for n, data in files)
        body += f"--{boundary}--\r\n".encode()
        req = urllib.request.Request(f"{self.base}/gradio_api/upload", body,
                                     {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read())

    def call(self, api_name: str, data: list, timeout: float = 300, on_progress=None) -> list:
        """Run one event through the queue and return its outputs (raises on an error event); ``on_progress``
        gets the description of each progress message."""
        join = json.dumps({"data": data, "fn_index": self.fns[api_name], "session_hash": self.session,
                           "event_data": None, "trigger_id": None}).encode()
        req = urllib.request.Request(f"{self.base}/gradio_api/queue/join", join, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            event_id = json.loads(r.read())["event_id"]
        url = f"{self.base}/gradio_api/queue/data?session_hash={self.session}"
        with urllib.request.urlopen(url, timeout=timeout) as r:
            for line in r:
                if not line.startswith(b"data:"):
                    continue
                msg = json.loads(line[5:])
                if on_progress and msg.get("msg") == "progress":
                    on_progress(" ".join(str(p.get("desc")) for p in msg.get("progress_data") or []))
                if msg.get("event_id") == event_id and msg.get("msg") == "process_completed":
                    if not msg.get("success"):
                        raise RuntimeError(f"{api_name} failed: {msg.get('output')}")
                    return msg["output"]["data"]
        raise RuntimeError(f"{api_name}: the event stream ended without a result")

    def index(self, files: list[tuple[str, bytes]], on_progress=None) -> str:
        """Upload and index photos (the 'Index my photos' button); returns the status line."""
        paths = self.upload(files)
        payload = [{"path": p, "orig_name": Path(p).name, "meta": {"_type": "gradio.FileData"}} for p in paths]
        return self.call("index_photos", [payload, None], on_progress=on_progress)[0]

    def search_mine(self) -> tuple[list, dict]:
        """One /retrieve over 'My photos': (gallery items, readout)."""
        out = self.call("retrieve", [example_json("fish"), None, "Auto", None, 10, "Off", "My photos", True, None])
        return out[0], out[1]

    def status(self, path: str) -> int:
        """HTTP status of GET ``path`` (a path on the server, or a full URL)."""
        url = path if path.startswith("http") else self.base + path
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                r.read()
                return r.status
        except urllib.error.HTTPError as e:
            return e.code


def file_url(server_path: str) -> str:
    return "/gradio_api/file=" + urllib.parse.quote(server_path)


def photo_bytes(tmp: Path, seed: int) -> bytes:
    """A small, unique product-like photo as PNG bytes."""
    return write_photo(tmp / f"p{seed}.png", seed).read_bytes()


def near_limit_png() -> bytes:
    """A ~40-megapixel RGB PNG of ~140 kB: cheap to make and send, costly to decode (the issue's hostile upload)."""
    im = Image.new("RGB", NEAR_LIMIT, (255, 255, 255))
    d = ImageDraw.Draw(im)
    d.rectangle([1000, 1200, 5000, 5200], outline=(0, 0, 0), width=40)
    d.ellipse([2000, 2000, 4300, 4300], fill=(200, 60, 60))
    buf = io.BytesIO()
    im.save(buf, "PNG", compress_level=9)  # ~140 kB, ~0.7 s to make once
    return buf.getvalue()


# ---- the app under test ----------------------------------------------------------------------------------------
@contextlib.contextmanager
def app_server(weights: Path, tmp: Path, *extra: str) -> Iterator[SimpleNamespace]:
    """app.py on a free loopback port with its own TMPDIR (so its session folders and Gradio's upload cache
    can be inspected); yields url, proc, tmp, sessions, gradio and the event ids by API name."""
    gallery = tmp / "gallery"
    gallery.mkdir(parents=True)
    for f in APP_PHOTOS:
        (gallery / f).write_bytes((REPO / "gallery" / "photos" / f).read_bytes())
    tmpdir = tmp / "tmp"
    tmpdir.mkdir()
    port = load_test.free_port()
    proc = load_test.start_app(port, app_args=["--weights", str(weights), "--gallery", str(gallery), "--idle-timeout",
                                               str(IDLE_S), *extra], cache=str(tmp / "cache"), env={"TMPDIR": str(tmpdir)})
    url = f"http://127.0.0.1:{port}"
    try:
        with urllib.request.urlopen(f"{url}/config", timeout=30) as r:
            deps = json.loads(r.read())["dependencies"]
        fns = {d["api_name"]: d["id"] for d in deps if d.get("api_name")}
        yield SimpleNamespace(url=url, proc=proc, tmp=tmpdir, sessions=tmpdir / "sketchdown-sessions",
                              gradio=tmpdir / "gradio", fns=fns)
    finally:
        stop(proc)


def stop(proc) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except Exception:
            proc.kill()
            proc.wait(10)


def files_under(d: Path) -> list[Path]:
    """Every file below ``d``; a folder the server removes while it is being listed is skipped, not an error
    (the server sweeps sessions on its own thread while a test polls)."""
    return [Path(root) / f for root, _, files in os.walk(d) for f in files]


def user_files(srv: SimpleNamespace) -> list[Path]:
    """Every file of any user on the server's disk: session folders and Gradio's upload cache."""
    return files_under(srv.sessions) + files_under(srv.gradio)


def folders(srv: SimpleNamespace) -> list[Path]:
    """The per-user folders on the server's disk (``sketchdown-sessions/app-*/u-*``)."""
    return list(srv.sessions.glob("app-*/u-*"))


def wait_until(cond, timeout: float, every: float = 0.25) -> bool:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if cond():
            return True
        time.sleep(every)
    return cond()


def svg_jpeg(item: dict) -> Image.Image:
    """The JPEG thumbnail inside one inline SVG gallery item."""
    svg = urllib.parse.unquote(item["image"]["url"].split(",", 1)[1])
    b64 = re.search(r'href="data:image/jpeg;base64,([^"]+)"', svg).group(1)
    return Image.open(io.BytesIO(base64.b64decode(b64)))


pytestmark = pytest.mark.skipif(not (REPO / "weights" / "hed" / "hed.safetensors").is_file(), reason="weights/hed missing")


# ---- the tests ---------------------------------------------------------------------------------------------
def test_delete_my_photos_and_other_sessions(smoke_weights, tmp_path):
    """After indexing, Gradio's copies of the upload are gone; results are inline thumbnails sent only to the
    session; another session (gradio_client) neither searches nor fetches them; "Delete my photos" and then
    the idle timeout leave nothing on disk and every URL of them answers 404."""
    from gradio_client import Client

    with app_server(smoke_weights, tmp_path) as srv:
        a = RawClient(srv.url, srv.fns)
        photos = [(f"holiday-{i}.png", photo_bytes(tmp_path, i)) for i in range(3)]
        uploaded = a.upload(photos)
        assert all(a.status(file_url(p)) == 200 for p in uploaded)  # Gradio serves a fresh upload to anyone
        payload = [{"path": p, "orig_name": Path(p).name, "meta": {"_type": "gradio.FileData"}} for p in uploaded]
        status = a.call("index_photos", [payload, None])[0]
        assert "Indexed **3**" in status, status
        assert [a.status(file_url(p)) for p in uploaded] == [404] * 3  # Gradio's copies deleted once read
        assert files_under(srv.gradio) == []
        mine = [p for p in files_under(srv.sessions) if "/photos/" in p.as_posix()]
        assert sorted(p.name for p in mine) == sorted(n for n, _ in photos)

        items, readout = a.search_mine()
        assert readout["error"] is None and len(items) == 3
        for it in items:  # inline: no file path, no URL anyone else could fetch
            assert it["image"]["path"] is None and it["image"]["url"].startswith("data:image/svg+xml,")
            assert max(svg_jpeg(it).size) <= 384
        assert files_under(srv.gradio) == []  # showing the results copied nothing into Gradio's cache

        # another session: no search over them, no file of them (not even by the server path)
        b = Client(srv.url + "/", verbose=False, download_files=False, analytics_enabled=False)
        out = b.predict(example_json("fish"), "student+selector", "Auto", None, 10, "Off", "My photos", True, api_name="/retrieve")
        assert out[0] == [] and "no photos of yours" in out[1]["error"]
        b.close()
        other = RawClient(srv.url, srv.fns)
        assert {other.status(file_url(str(p))) for p in mine} == {404}
        assert {other.status("/gradio_api/file/" + str(p).lstrip("/")) for p in mine} == {404}
        assert {other.status(file_url(p)) for p in uploaded} == {404}

        # "Delete my photos": folder gone, searching them fails, nothing of theirs on disk
        msg = a.call("delete_photos", [None, None])[0]
        assert "deleted from the server" in msg
        assert user_files(srv) == [] and not any(p.exists() for p in mine)
        items, readout = a.search_mine()
        assert items == [] and "no photos of yours" in readout["error"]

        # the idle timeout: index again, then say nothing; the sweeper deletes them
        assert "Indexed **2**" in a.index(photos[:2])
        assert len(user_files(srv)) == 4  # 2 photos + 2 thumbnails
        t0 = time.time()
        assert wait_until(lambda: user_files(srv) == [], IDLE_S + 10), user_files(srv)
        print(f"\nidle timeout {IDLE_S} s: photos deleted {time.time() - t0:.1f} s after the last request")
        items, readout = a.search_mine()
        assert items == [] and "no photos of yours" in readout["error"]


def settled_rss(pid: int, seconds: int = 8) -> float:
    """The process's RSS (MB) once it settles: the lowest of one read a second (Gradio drops a departed
    session's state and the sweeper trims the heap on their own schedules)."""
    reads = []
    for _ in range(seconds):
        time.sleep(1.0)
        reads.append(load_test.rss_mb(pid))
    return min(reads)


def test_vanishing_clients_leave_nothing(smoke_weights, tmp_path):
    """``CLIENTS`` clients upload and index 10 photos each and go away without a word: after the idle timeout no
    folder or cached file of theirs is left, server RSS is back within 100 MB of where it started, and once
    the server has stopped no session folder is left either."""
    photos = [[(f"c{c}-{i}.png", photo_bytes(tmp_path, 1000 + 10 * c + i)) for i in range(10)] for c in range(CLIENTS)]
    with app_server(smoke_weights, tmp_path / "app") as srv:
        # one-time loads (HED, every indexing worker's thread pools and caches) are not the users' memory:
        # two clients at once, so each of the pool's workers has run before the baseline is read
        warm = [RawClient(srv.url, srv.fns) for _ in range(2)]
        pending = [threading.Thread(target=w.index, args=(photos[0][2 * i:2 * i + 2],)) for i, w in enumerate(warm)]
        for t in pending:
            t.start()
        for t in pending:
            t.join(120)
        for w in warm:
            w.call("delete_photos", [None, None])
        rss0 = load_test.rss_mb(srv.proc.pid)
        errors: list[str] = []

        def user(c: int) -> None:
            try:
                status = RawClient(srv.url, srv.fns).index(photos[c])
                if "Indexed **10**" not in status:
                    errors.append(status)
            except Exception as e:  # noqa: BLE001 (a failure is a result here)
                errors.append(f"{type(e).__name__}: {e}")

        t0 = time.time()
        threads = [threading.Thread(target=user, args=(c,)) for c in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        wall = time.time() - t0
        assert errors == []
        rss_peak = load_test.rss_mb(srv.proc.pid)
        left = len(folders(srv))  # the first clients' photos may be gone already: they have been idle since
        assert wait_until(lambda: user_files(srv) == [] and folders(srv) == [], IDLE_S + 15)
        rss1 = settled_rss(srv.proc.pid)
        print(f"\n{CLIENTS} clients x 10 photos indexed in {wall:.1f} s ({left} folders still there at the end); server RSS "
              f"{rss0:.0f} MB before, {rss_peak:.0f} MB after indexing, {rss1:.0f} MB after the idle sweep ({rss1 - rss0:+.0f} MB)")
        assert rss1 - rss0 < 100
        stop(srv.proc)
        assert user_files(srv) == [] and list(srv.sessions.iterdir()) == []  # the server's exit left nothing behind


def test_small_upload_not_stalled_by_a_big_one(smoke_weights, tmp_path):
    """Two users at once: while one uploads a zip of 40 near-limit (39.7-megapixel) PNGs, the other's one-photo
    uploads finish within 3 s, both while the big zip is being checked and while it is being indexed, and
    searches keep being answered; the big upload's peak RSS stays under 1 GB above the server's idle RSS."""
    big = io.BytesIO()
    one = near_limit_png()
    with zipfile.ZipFile(big, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(40):
            zf.writestr(f"big-{i:02d}.png", one)
    print(f"\nbig upload: {len(big.getvalue()) / 1e6:.1f} MB zip of 40 x {NEAR_LIMIT[0]}x{NEAR_LIMIT[1]} PNGs")
    with app_server(smoke_weights, tmp_path / "app") as srv:
        warm = RawClient(srv.url, srv.fns)
        warm.index([("warm.png", photo_bytes(tmp_path, 7))])
        warm.call("delete_photos", [None, None])
        rss0, peak = load_test.rss_mb(srv.proc.pid), [0.0]
        done, indexing = threading.Event(), threading.Event()
        result: dict[str, object] = {}

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], load_test.rss_mb(srv.proc.pid) or 0)
                time.sleep(0.05)

        def big_user() -> None:
            t = time.perf_counter()
            try:
                result["big"] = RawClient(srv.url, srv.fns).index(
                    [("big.zip", big.getvalue())], on_progress=lambda d: d.startswith("indexing") and indexing.set())
            except Exception as e:  # noqa: BLE001 (a failure is a result here)
                result["big"] = f"{type(e).__name__}: {e}"
            result["big_s"] = time.perf_counter() - t

        def small_user(seed: int) -> tuple[float, str, int]:
            c = RawClient(srv.url, srv.fns)
            t = time.perf_counter()
            status = c.index([("mine.png", photo_bytes(tmp_path, seed))])
            dt = time.perf_counter() - t
            items, readout = c.search_mine()
            assert readout["error"] is None, readout
            return dt, status, len(items)

        threading.Thread(target=sample, daemon=True).start()
        tb = threading.Thread(target=big_user)
        tb.start()
        time.sleep(2.0)  # the zip is being checked now
        checking = small_user(8)
        assert indexing.wait(300), "the big upload never started indexing"
        during = small_user(9)
        t = time.perf_counter()
        out = RawClient(srv.url, srv.fns).call("retrieve", [example_json("chair"), None, "Auto", None, 10, "Off",
                                                            "Default gallery", True, None])
        search_s = time.perf_counter() - t
        tb.join(600)
        done.set()
        print(f"one-photo upload (indexed + searched): {checking[0]:.2f} s while the zip was checked, {during[0]:.2f} s while "
              f"it was indexed; a default-gallery search {search_s:.2f} s; the big upload took {result.get('big_s', 0):.1f} s; "
              f"server RSS {rss0:.0f} MB before, peak {peak[0]:.0f} MB (+{peak[0] - rss0:.0f} MB)")
        assert "Indexed **40**" in str(result.get("big")), result.get("big")
        for dt, status, n in (checking, during):
            assert "Indexed **1**" in status and n == 1
            assert dt < 3.0
        assert out[1]["error"] is None and out[0]
        assert peak[0] - rss0 < 1024
