"""The page's own retrieval (``webapp/static/web``) against the Python library, in headless chromium:
its drawing against :func:`draw_profile` and OpenCV's resize, its HOG and selector input against the
library's, and (with ChairV2) its rankings against the server's on every test sketch."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from sketchdown.bundles.bundle import load_bundle
from sketchdown.retrieval.gallery import GalleryIndex
from sketchdown.retrieval.webexport import export_web
from sketchdown.sketch.examples import EXAMPLES
from sketchdown.sketch.hog import HogSpec, hog_descriptor
from sketchdown.sketch.lineprofile import draw_profile
from sketchdown.sketch.render import RenderSpec, render_sketch
from sketchdown.sketch.strokes import Sketch, from_strokes, stroke_sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_browser import CHROMIUM, browser_page  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
WEB = REPO / "webapp" / "static" / "web"
HARNESS = """<!doctype html><meta charset="utf-8"><title>harness</title>
<script type="module">
import * as S from './web/sketch.js';
window.S = S;
const w = new Worker('./web/worker.js', {type: 'module'});
const waiting = new Map();
let next = 0;
w.onmessage = (e) => { const m = e.data, key = m.type === 'ready' || m.id === undefined ? 'init' : m.id;
  const p = waiting.get(key); waiting.delete(key); m.type === 'error' ? p.reject(new Error(m.message)) : p.resolve(m); };
const ask = (key, msg) => new Promise((resolve, reject) => { waiting.set(key, {resolve, reject}); w.postMessage(msg); });
window.sdInit = () => ask('init', {type: 'init', manifest: new URL('./export/manifest.json', location.href).href,
                                   ort: new URL('./web/ort/ort.wasm.bundle.min.mjs', location.href).href});
window.sdQuery = (strokes, opts) => { const id = next++; return ask(id, {type: 'query', id, strokes, ...opts}); };
window.harnessReady = true;
</script>"""

pytestmark = pytest.mark.skipif(not CHROMIUM.is_file(), reason="Debian chromium is not installed at /usr/bin/chromium")


@contextlib.contextmanager
def serve(root: Path):
    """A static HTTP server over ``root`` on a free port: yields its URL."""
    handler = functools.partial(_Quiet, directory=str(root))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/"
    finally:
        srv.shutdown()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def site(tmp: Path, export: Path) -> Path:
    """A folder with the page's scripts, an export and the harness page."""
    (tmp / "web").symlink_to(WEB)
    (tmp / "export").symlink_to(export)
    (tmp / "index.html").write_text(HARNESS)
    return tmp


@contextlib.contextmanager
def harness(tmp: Path, export: Path):
    with serve(site(tmp, export)) as url, browser_page(url + "index.html", 600) as (page, errors, _):
        page.wait_for_function("window.harnessReady === true", timeout=30_000)
        info = page.evaluate("sdInit()")
        assert info["type"] == "ready", info
        yield page, errors, info


def strokes_json(sk: Sketch) -> list:
    return [s.astype(np.float64).tolist() for s in sk.strokes]


def sample_sketches() -> list[Sketch]:
    rng = np.random.default_rng(0)
    out = [from_strokes(v) for v in EXAMPLES.values()]
    for _ in range(4):  # random scribbles, a dot and a repeated point included
        strokes = [np.cumsum(rng.normal(0, 9, (int(rng.integers(2, 40)), 2)), 0).astype(np.float32) + 200 for _ in range(5)]
        strokes += [np.array([[50.0, 60.0]], np.float32), np.array([[10, 10], [10, 10], [40, 12]], np.float32)]
        out.append(Sketch(tuple(strokes)))
    return out


@pytest.fixture(scope="module")
def default_export(tmp_path_factory) -> Path:
    bundle = load_bundle(str(REPO / "weights" / "default"))
    gallery = GalleryIndex.load(REPO / "gallery" / "index" / "default", REPO / "gallery" / "photos")
    out = tmp_path_factory.mktemp("export")
    export_web(bundle, gallery, out)
    return out


def test_page_draws_and_describes_like_the_library(default_export, tmp_path):
    """Pixel for pixel: the page's drawing equals draw_profile's (up to 1/255 on a few pixels from float
    rounding), its area resize equals OpenCV's, its HOG and selector input equal the library's."""
    manifest = json.loads((default_export / "manifest.json").read_text())
    spec = RenderSpec()
    hog = HogSpec(**{k: v for k, v in manifest["hog"].items() if k not in ("dim", "flops")})
    with harness(tmp_path, default_export) as (page, errors, _):
        for sk in sample_sketches():
            js = page.evaluate("""([s, r, sel, hog]) => { const img = S.drawProfile(s, 256, r);
                const small = {}; for (const n of [32, 64, 96, 128]) small[n] = Array.from(S.downsample(img, 256, n));
                const seq = S.strokeSequence(s, sel);
                return {img: Array.from(img), small, seq: Array.from(seq.data), len: seq.length,
                        hog: Array.from(S.hogDescriptor(S.downsample(img, 256, 128), hog))}; }""",
                               [strokes_json(sk), manifest["render"], manifest["selector"], manifest["hog"]])
            ref = draw_profile(sk, 256, spec)
            img = np.array(js["img"], np.uint8).reshape(256, 256)
            diff = np.abs(img.astype(int) - ref.astype(int))
            assert diff.max() <= 1 and (diff > 0).mean() < 0.001, (diff.max(), (diff > 0).sum())
            for n, v in js["small"].items():  # the page's resize of its own drawing equals OpenCV's
                want = cv2.resize(img, (int(n), int(n)), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
                np.testing.assert_array_equal(np.array(v, np.float32).reshape(int(n), int(n)), want)
            ink = cv2.resize(img, (128, 128), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
            np.testing.assert_allclose(np.array(js["hog"], np.float32), hog_descriptor(ink, hog), atol=2e-4)
            seq = stroke_sequence(sk)
            assert js["len"] == len(seq)
            np.testing.assert_allclose(np.array(js["seq"], np.float32).reshape(-1, 5), seq, atol=1e-5)
        assert not errors, errors


def test_page_cascade_stops_where_the_retriever_stops(default_export, tmp_path):
    """The page's confidence cascade runs the passes the Retriever runs: the same canvases, the same
    margins to 0.02 (its drawing is OpenCV's to 1/255, its encoder ONNX Runtime Web's), the same stop
    unless a margin is that close to its threshold."""
    from sketchdown.retrieval.retriever import Retriever

    bundle = load_bundle(str(REPO / "weights" / "default"))
    if bundle.cascade is None:
        pytest.skip("the default weights have no cascade")
    retr = Retriever(bundle, GalleryIndex.load(REPO / "gallery" / "index" / "default", REPO / "gallery" / "photos"),
                     backend="eager")
    with harness(tmp_path, default_export) as (page, errors, _):
        for sk in sample_sketches():
            js = page.evaluate("(s) => sdQuery(s, {k: 5, canvas: 'cascade'})", strokes_json(sk))
            res = retr.retrieve(sk, k=5, canvas="cascade")
            assert js["cascade"] is not None and res.cascade is not None
            for p, (c, m, t) in zip(js["cascade"], res.cascade, strict=False):
                assert p["canvas"] == c and abs(p["margin"] - m) < 0.02
                assert (p["threshold"] is None) == (t == float("inf"))
            close = any(t != float("inf") and abs(m - t) < 0.02 for _, m, t in res.cascade)
            assert close or (js["canvas"] == res.canvas and len(js["cascade"]) == len(res.cascade))
            assert js["gflops"] == pytest.approx(res.gflops, rel=1e-6) or close
        assert not errors, errors


def test_profile_drawing_is_close_to_opencv():
    """The measured profile draws the examples as OpenCV does to within 5% of their ink per pixel, and
    area-downsampled to the smallest canvas within 0.06 anywhere (a plain distance-to-capsule ramp: 0.13)."""
    for sk in sample_sketches()[: len(EXAMPLES)]:
        ours, cv = draw_profile(sk).astype(np.float64) / 255, render_sketch(sk, 256).astype(np.float64)
        assert np.abs(ours - cv).mean() < 0.05 * cv.mean(), (np.abs(ours - cv).mean(), cv.mean())
        small = cv2.resize(draw_profile(sk), (32, 32), interpolation=cv2.INTER_AREA) / 255
        assert np.abs(small - render_sketch(sk, 32)).max() < 0.06


def test_page_ranking_matches_server_on_chairv2(tmp_path):
    """Every ChairV2 test sketch ranked in the page and by the Retriever (default weights, the 100 test
    photos, selector at its default lambda_F, HOG fused): the same top-1 photo for >= 95% and a top-10
    overlap >= 0.9."""
    from sketchdown.eval.data import DatasetError, get_sketch, load_chairv2
    from sketchdown.eval.evaluate import _photo_retriever

    try:
        data = load_chairv2(split="test")
    except (DatasetError, OSError) as e:
        pytest.skip(f"ChairV2 is not available ({e}); point SKETCHDOWN_DATA at ../shared/data")
    bundle = load_bundle(str(REPO / "weights" / "default"))
    retr, _ = _photo_retriever(bundle, data, None)
    export_web(bundle, retr.gallery, tmp_path / "export")
    sketches = [get_sketch(it) for it in data.sketches]
    server = [[h.index for h in retr.retrieve(sk, k=10).hits] for sk in sketches]
    (tmp_path / "site").mkdir()
    with harness(tmp_path / "site", tmp_path / "export") as (page, errors, _):
        page_res = page.evaluate("""async (all) => { const out = [];
            for (const s of all) { const r = await sdQuery(s, {k: 10, canvas: 'auto'});
                                   out.push({ids: r.hits.map(h => h.index), ms: r.ms.total, canvas: r.canvas}); }
            return out; }""", [strokes_json(sk) for sk in sketches])
        assert not errors, errors
    top1 = np.mean([p["ids"][0] == s[0] for p, s in zip(page_res, server, strict=True)])
    overlap = np.mean([len(set(p["ids"]) & set(s)) / 10 for p, s in zip(page_res, server, strict=True)])
    acc_page = np.mean([p["ids"][0] == it.photo for p, it in zip(page_res, data.sketches, strict=True)])
    acc_server = np.mean([s[0] == it.photo for s, it in zip(server, data.sketches, strict=True)])
    print(f"\nChairV2 test, {len(sketches)} sketches: same top-1 {100 * top1:.1f}%, top-10 overlap {overlap:.3f}; "
          f"Acc@1 page {100 * acc_page:.2f} vs server {100 * acc_server:.2f}; "
          f"page query median {np.median([p['ms'] for p in page_res]):.1f} ms")
    assert top1 >= 0.95 and overlap >= 0.9
