"""The Gradio app's handlers on the real Retriever (tiny smoke-trained weights, a 6-photo gallery), its
configuration, upload safety, and its API through gradio_client on localhost.

The app is built once per test session from an ``AppConfig`` (the ``web_app`` fixture in conftest.py).
"""

from __future__ import annotations

import io
import json
import socket
import zipfile
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from conftest import APP_PHOTOS as PHOTOS
from PIL import Image

from sketchdown.eval.plot import flops_vs_acc, metric_rows
from sketchdown.sketch.examples import EXAMPLES, example_json
from sketchdown.sketch.hog import hog_flops
from webapp import views
from webapp.config import AppConfig, parse_args
from webapp.demo import app_examples, launch
from webapp.handlers import AUTO, GALLERY_DEFAULT, GALLERY_MINE
from webapp.session import SESSIONS_ROOT, Session, cleanup_session
from webapp.uploads import MAX_UPLOAD_FILES, UploadError, collect_uploads

REPO = Path(__file__).resolve().parent.parent

# gradio's queue trips pandas 3 deprecation warnings, and gr.Warning outside a request warns: not ours
pytestmark = [pytest.mark.filterwarnings("ignore:::gradio.queueing"), pytest.mark.filterwarnings("ignore:::gradio.helpers")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def h(web_app):
    """The handlers over the shared tiny model."""
    return web_app.handlers


def png_bytes(color=(200, 30, 30), size=(24, 18)) -> bytes:
    buf = io.BytesIO()
    im = Image.new("RGB", size, (255, 255, 255))
    im.paste(color, (4, 4, size[0] - 4, size[1] - 4))
    im.save(buf, "PNG")
    return buf.getvalue()


def test_importing_the_entry_point_loads_nothing(monkeypatch):
    """``import app`` (what Spaces and ``gradio app.py`` do) neither loads weights nor builds the page."""
    import importlib

    import webapp.model

    calls = []
    monkeypatch.setattr(webapp.model, "load_bundle", lambda *a, **k: calls.append(a))
    app = importlib.import_module("app")
    assert "demo" not in vars(app) and not calls


# ---- the per-stroke handler ------------------------------------------------------------------
def test_module_config(h, web_app):
    assert h.model.retriever.gallery is not None and len(h.model.retriever.gallery) == len(PHOTOS)
    assert h.model.default_choice == "student+selector"
    assert [v for _, v in h.model.choices] == ["student+selector", "student", "teacher"]
    assert isinstance(web_app.demo, gr.Blocks)


def test_retrieve_returns_photos_and_readout(h):
    s = Session()
    photos, readout, sel_html, flops_html, cats, status, cmp_a, cmp_b, cmp_md, rank, s2 = h.retrieve(example_json("fish"), session=s)
    assert s2 is s and status == ""
    assert len(photos) == len(PHOTOS)  # k=10 capped at the gallery size
    assert all(Path(p).is_file() and cap.startswith(f"#{i + 1} ") for i, (p, cap) in enumerate(photos))
    assert readout["error"] is None and readout["model"] == "student" and readout["selector"] is True
    assert readout["canvas"] in (32, 48) and readout["canvas_choice"] == "selector"
    assert abs(sum(readout["canvas_probs"].values()) - 1) < 1e-3
    assert 0 <= readout["abstraction"] <= 1
    assert 0 < readout["gflops"] < readout["full_gflops"] and readout["latency_ms"] > 0
    assert readout["selector_gflops"] > 0 and readout["saving_pct"] > 0
    assert [r["rank"] for r in readout["results"]] == list(range(1, len(PHOTOS) + 1))
    assert f"canvas <b>{readout['canvas']}</b> px" in sel_html and "data:image/png;base64," in sel_html
    assert "GFLOPs" in flops_html and "fewer FLOPs" in flops_html
    assert cmp_a == [] and cmp_b == [] and rank["visible"] is False  # no traced example replayed
    # the smoke student carries the teacher's 3-class head: the panel shows its top classes
    assert cats["visible"] is True and set(cats["value"]) <= {"class0", "class1", "class2"}
    json.dumps(readout)  # the API's readout is plain JSON


@pytest.mark.parametrize("text", ["[]", "", None, "[[]]", '{"strokes": []}'])
def test_empty_canvas_clears_results(h, text):
    photos, readout, sel_html, flops_html, _, status, *_ = h.retrieve(text, session=Session())
    assert photos == [] and readout.get("empty") is True and readout["error"] is None and status == ""
    assert sel_html == views.SELECTOR_EMPTY and flops_html == views.FLOPS_EMPTY


@pytest.mark.parametrize("text, words", [
    ("not json", "could not be parsed"),
    ('{"a": 1}', "expected a list of strokes"),
    ("[[[1, 2], [3]]]", "[x, y] points"),
    ("[[[1e12, 0], [1, 1]]]", "coordinates"),
    ('[[["a", "b"]]]', "not a number"),
])
def test_invalid_json_gives_clean_message(h, text, words):
    s = Session()
    photos, readout, *_, status, _, _, _, _, s2 = h.retrieve(text, session=s)
    assert photos == [] and words in readout["error"] and status.startswith("⚠️") and words in status
    assert "\n" not in readout["error"] and s2.queries == 0
    assert h.retrieve(example_json("chair"), session=s)[1]["error"] is None  # keeps serving


def test_forced_canvas_and_model_choice(h):
    b = h.model.bundle
    r = h.retrieve(example_json("guitar"), "student+selector", "48", session=Session())[1]
    assert r["canvas"] == 48 and r["canvas_choice"] == "forced" and r["canvas_probs"] is None and r["selector_gflops"] == 0
    hog = hog_flops(b.hog) / 1e9  # the smoke weights fuse HOG: every query also pays for the descriptor
    assert r["hog"] and r["hog_gflops"] == pytest.approx(hog, rel=1e-4)
    assert r["hog_alpha"] == b.sketch["student"].alpha_for(h.model.retriever.granularity) > 0  # the gallery's weight
    assert r["gflops"] == pytest.approx(b.sketch["student"].flops(48) / 1e9 + hog, rel=1e-4)
    # the HOG checkbox off: the network alone, fewer FLOPs
    off = h.retrieve(example_json("guitar"), "student+selector", "48", hog=False, session=Session())[1]
    assert not off["hog"] and off["hog_alpha"] == 0 and off["gflops"] == pytest.approx(b.sketch["student"].flops(48) / 1e9, rel=1e-4)
    assert off["error"] is None and len(off["results"]) == len(r["results"])
    r = h.retrieve(example_json("guitar"), "student", AUTO, session=Session())[1]
    assert r["canvas"] == b.sketch["student"].default_canvas and r["canvas_choice"] == "fixed" and not r["selector"]
    r = h.retrieve(example_json("guitar"), "teacher", session=Session())[1]
    assert r["model"] == "teacher" and r["canvas"] == 64 and r["gflops"] == pytest.approx(r["full_gflops"] + hog, rel=1e-4)
    r = h.retrieve(example_json("guitar"), "student", "64", session=Session())[1]
    assert "runs at canvas [32, 48]" in r["error"]
    r = h.retrieve(example_json("guitar"), "nope", session=Session())[1]
    assert "unknown model" in r["error"]


def test_lambda_reaches_the_selector(h):
    from sketchdown.sketch.strokes import from_json

    sk = from_json(example_json("cat face"))
    for lam in h.model.bundle.selector.lams:
        r = h.retrieve(example_json("cat face"), "student+selector", AUTO, lam, session=Session())[1]
        canvas, probs, _ = h.model.retriever.select_canvas(sk, "student", lam)
        assert r["lambda_F"] == lam and r["canvas"] == canvas
        assert r["canvas_probs"] == {str(c): round(p, 4) for c, p in probs.items()}
    assert "lambda_F must be in [0, 1]" in h.retrieve(example_json("fish"), "student+selector", AUTO, 2.0,
                                                        session=Session())[1]["error"]


def test_session_totals_accumulate_per_state(h, web_app):
    a, b = Session(), Session()
    got = [h.retrieve(example_json("fish", n), session=a)[1] for n in (1, 2, 3)]
    h.retrieve(example_json("chair"), session=b)
    assert a.queries == 3 and b.queries == 1
    assert a.gflops == pytest.approx(sum(r["gflops"] for r in got), rel=1e-3)
    assert a.full_gflops == pytest.approx(sum(r["full_gflops"] for r in got), rel=1e-3)
    assert got[-1]["session"]["queries"] == 3
    flops_html = h.retrieve(example_json("fish"), session=a)[3]
    assert "<b>4</b> retrievals" in flops_html
    # errors and empty canvases do not count
    h.retrieve("[]", session=a)
    h.retrieve("oops", session=a)
    assert a.queries == 4
    # each browser session starts from its own copy of the State's default
    state = next(blk for blk in web_app.demo.blocks.values() if isinstance(blk, gr.State) and isinstance(blk.value, Session))
    assert state.value.queries == 0 and state.value is not a and state.value is not b


def test_compare_two_ranked_lists(h):
    out = h.retrieve(example_json("fish"), compare="teacher", session=Session())
    cmp_a, cmp_b, md = out[6], out[7], out[8]
    assert len(cmp_a) == len(cmp_b) == len(PHOTOS)
    assert "**teacher**" in md and "**student**" in md and "Photos in both top-" in md


def test_model_change_updates_canvas_choices(h):
    canvas, lam = h.on_model_change("teacher")
    assert canvas["choices"] == [(AUTO, AUTO), ("64", "64")] or canvas["choices"] == [AUTO, "64"]
    assert lam["interactive"] is False
    canvas, lam = h.on_model_change("student+selector")
    assert lam["interactive"] is True


def test_flops_plot():
    assert metric_rows({}) == ("", [])
    assert flops_vs_acc(None) is None
    rows = [{"model": "w/student@32", "acc@1": 20.0, "gflops_per_query": 0.02},
            {"model": "w/student+selector(lambda_F=0.2)", "acc@1": 22.0, "gflops_per_query": 0.03},
            {"model": "w/teacher@64", "acc@1": 25.0, "gflops_per_query": 0.06},
            {"model": "w/bad", "acc@1": None, "gflops_per_query": 0.1}]
    assert metric_rows({"rows": rows})[1] == rows[:3]
    name, got = metric_rows({"chairv2": {"rows": rows}})
    assert name == "chairv2" and len(got) == 3
    fig = flops_vs_acc({"chairv2": {"rows": rows}}, current=0.025, full=0.06)
    ax = fig.axes[0]
    assert "chairv2" in ax.get_title() and any("this query" in t.get_text() for t in ax.get_legend().get_texts())


def test_weights_and_address_defaults(monkeypatch):
    def address(argv: list[str]) -> tuple[str, int]:
        cfg = AppConfig.from_env(parse_args(argv))
        return cfg.host, cfg.port

    for var in ("SKETCHDOWN_WEIGHTS_DIR", "SKETCHDOWN_GALLERY", "SKETCHDOWN_GRANULARITY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SKETCHDOWN_WEIGHTS_SET", "/some/weights")
    assert AppConfig.from_env(parse_args(["--weights", "cli/w"])).weights == "cli/w"
    assert AppConfig.from_env().weights == "/some/weights"
    monkeypatch.delenv("SKETCHDOWN_WEIGHTS_SET")
    exp = "imagenet-lite0"
    for name in ("default", "chairv2"):
        if (REPO / "weights" / name / "manifest.json").is_file():
            exp = str(REPO / "weights" / name)
            break
    cfg = AppConfig.from_env()
    assert cfg.weights == exp and cfg.gallery == REPO / "gallery" / "photos" and cfg.granularity is None
    cfg = AppConfig.from_env(parse_args(["--gallery", "/my/photos", "--granularity", "instance"]))
    assert cfg.gallery == Path("/my/photos") and cfg.granularity == "instance"
    for var in ("GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT", "PORT"):
        monkeypatch.delenv(var, raising=False)
    assert address([]) == ("127.0.0.1", 7860)
    monkeypatch.setenv("PORT", "9001")
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    assert address([]) == ("0.0.0.0", 9001)
    assert address(["--host", "::1", "--port", "7000"]) == ("::1", 7000)


def test_result_captions_credit_photographers(tmp_path):
    from types import SimpleNamespace

    credits = views.photo_credits(str(REPO / "gallery" / "photos"))
    assert credits["gcompris-kitten.jpg"] == "GalgenTX, CC-BY-2.0"  # a CC-BY photo shows its author
    assert "animals-clownfish.jpg" not in credits  # Tux Paint stamps: one GPL notice in ATTRIBUTION.md
    hits = [SimpleNamespace(path=str(REPO / "gallery" / "photos" / f), rank=i + 1, label="x", score=0.5)
            for i, f in enumerate(["gcompris-kitten.jpg", "animals-clownfish.jpg", "gcompris-butterfly.jpg"])]
    caps = [c for _, c in views.gallery_items(SimpleNamespace(hits=hits))]
    assert caps == ["#1 x · 0.50 · © GalgenTX, CC-BY-2.0", "#2 x · 0.50",
                    "#3 x · 0.50 · © 2014 Jee & Rani Nature Photography, CC-BY-SA-4.0"]  # its author writes the ©
    (tmp_path / "metadata.json").write_text("[1, 2]")  # a user's own, unrelated metadata.json
    assert views.photo_credits(str(tmp_path)) == {}


def test_examples_are_valid_sketches():
    from sketchdown.sketch.strokes import from_json

    for name, strokes in EXAMPLES.items():
        sk = from_json(example_json(name))
        assert sk.num_strokes == len(strokes) >= 4
        x0, y0, x1, y1 = sk.bbox()
        assert 0 <= x0 < x1 <= 400 and 0 <= y0 < y1 <= 400


def test_app_offers_traced_examples(web_app):
    from sketchdown.sketch.strokes import from_strokes

    ex = app_examples(web_app.config.examples_dir)
    traced = {k: v for k, v in ex.items() if k.startswith("traced: ")}
    assert set(EXAMPLES) < set(ex) and len(traced) >= 3
    for strokes in traced.values():
        x0, y0, x1, y1 = from_strokes(strokes).bbox()
        assert 0 <= x0 < x1 <= 400 and 0 <= y0 < y1 <= 400


# ---- your own photos -----------------------------------------------------------------------------
def test_zip_with_unsafe_paths_is_unpacked_safely(tmp_path):
    z = tmp_path / "up.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("../evil.txt", "x")
        zf.writestr("../../evil.png", png_bytes())
        zf.writestr("/abs.png", png_bytes())
        zf.writestr("C:/win.png", png_bytes())
        zf.writestr("a/../../b.png", png_bytes())
        zf.writestr("ok/one.png", png_bytes())
        zf.writestr("two.png", png_bytes((30, 30, 200)))
        zf.writestr("other/two.png", png_bytes((30, 200, 30)))
        zf.writestr("notes.txt", "hello")
        zf.writestr("broken.jpg", b"not an image at all")
        zf.writestr("__MACOSX/._one.png", b"junk")
    dest = tmp_path / "session" / "photos"
    saved, notes = collect_uploads([z], dest)
    assert sorted(p.name for p in saved) == ["one.png", "two-2.png", "two.png"]
    assert all(p.parent == dest for p in saved)
    assert sum("unsafe path" in n for n in notes) == 5
    assert any("broken.jpg" in n for n in notes) and any("notes.txt" in n for n in notes)
    found = {p.name for p in tmp_path.rglob("*")} | {p.name for p in tmp_path.parent.glob("*")}
    assert not found & {"evil.txt", "evil.png", "abs.png", "win.png", "b.png"}


def test_upload_limits(tmp_path):
    z = tmp_path / "many.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for i in range(MAX_UPLOAD_FILES + 1):
            zf.writestr(f"p{i}.png", png_bytes())
    dest = tmp_path / "d1"
    with pytest.raises(UploadError, match="too many photos"):
        collect_uploads([z], dest)
    assert not any(dest.glob("*"))  # refused before unpacking anything
    files = []
    for i in range(MAX_UPLOAD_FILES + 1):
        f = tmp_path / "plain" / f"p{i}.png"
        f.parent.mkdir(exist_ok=True)
        f.write_bytes(png_bytes())
        files.append(f)
    with pytest.raises(UploadError, match="too many photos"):
        collect_uploads(files, tmp_path / "d2")
    # per-file and total size limits (small limits keep the test fast)
    big = png_bytes(size=(400, 400))
    z2 = tmp_path / "big.zip"
    with zipfile.ZipFile(z2, "w") as zf:
        zf.writestr("big.png", big)
        zf.writestr("small.png", png_bytes())
    saved, notes = collect_uploads([z2], tmp_path / "d3", max_file_bytes=len(big) - 1)
    assert [p.name for p in saved] == ["small.png"] and any("larger than" in n for n in notes)
    with pytest.raises(UploadError, match="uncompressed"):
        collect_uploads([z2], tmp_path / "d4", max_total_bytes=len(big) // 2)
    with pytest.raises(UploadError, match="no usable photos"):
        collect_uploads([tmp_path / "plain" / "p0.png"], tmp_path / "d5", max_file_bytes=10)
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(UploadError, match="no usable photos"):
        collect_uploads([bad], tmp_path / "d6")


def test_index_uploads_is_per_session(h, tmp_path):
    z = tmp_path / "mine.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in PHOTOS[:3]:
            zf.write(REPO / "gallery" / "photos" / f, f"holiday/{f}")
        zf.writestr("../evil.txt", "x")
    mine, other = Session(), Session()
    status, radio, s = h.index_uploads([str(z)], mine)
    assert s is mine and "Indexed **3**" in status and "unsafe path" in status and radio["value"] == GALLERY_MINE
    assert mine.dir and Path(mine.dir).is_relative_to(SESSIONS_ROOT)
    r = h.retrieve(example_json("fish"), source=GALLERY_MINE, session=mine)
    assert len(r[0]) == 3 and all(Path(p).is_relative_to(mine.dir) for p, _ in r[0])
    assert {x["file"] for x in r[1]["results"]} == set(PHOTOS[:3])
    # another session neither sees these photos nor can search them
    r2 = h.retrieve(example_json("fish"), source=GALLERY_MINE, session=other)
    assert r2[0] == [] and "no photos of yours" in r2[1]["error"]
    assert len(h.retrieve(example_json("fish"), session=other)[0]) == len(PHOTOS)
    # a bad upload is refused with a message; the previous photos are replaced, the app keeps serving
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../evil.txt", "x")
    status, radio, _ = h.index_uploads([str(evil)], mine)
    assert status.startswith("⚠️") and "no usable photos" in status and radio["value"] == GALLERY_DEFAULT
    status, _, _ = h.index_uploads([], mine)
    assert status.startswith("⚠️")
    d = mine.dir
    cleanup_session(mine)
    assert not Path(d).exists() and mine.gallery is None


# ---- the API through gradio_client ----------------------------------------------------------------
def test_api_through_gradio_client(h, web_app):
    from gradio_client import Client

    port = free_port()
    launch(web_app.demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=False, analytics_enabled=False)
        out = client.predict(example_json("chair"), api_name="/retrieve")
        readout = out[1]
        assert {"canvas", "gflops", "full_gflops", "latency_ms"} <= readout.keys()
        assert readout["canvas"] in (32, 48) and 0 < readout["gflops"] < readout["full_gflops"]
        assert len(out[0]) == len(PHOTOS) and out[0][0]["caption"].startswith("#1 ")
        out = client.predict(example_json("chair"), "teacher", api_name="/retrieve")
        assert out[1]["model"] == "teacher" and out[1]["canvas"] == 64
        lam = h.model.bundle.selector.lams[-1]  # one of the shipped lambda_F choices
        out = client.predict(example_json("fish"), "student+selector", "Auto", lam, 3, api_name="/retrieve")
        assert out[1]["lambda_F"] == lam and len(out[0]) == 3
        out = client.predict(example_json("fish"), "student+selector", "32", api_name="/retrieve")
        assert out[1]["canvas"] == 32 and out[1]["canvas_choice"] == "forced"
        out = client.predict("[]", api_name="/retrieve")
        assert out[1]["empty"] is True and out[0] == []
        out = client.predict("{broken", api_name="/retrieve")
        assert "could not be parsed" in out[1]["error"]
        client.close()
    finally:
        web_app.demo.close()


# ---- sketches in and out ------------------------------------------------------------------------
def test_downloaded_strokes_open_to_the_same_ranking(h, tmp_path):
    page = example_json("guitar")  # what the page sends, and what its "JSON" button downloads
    f = tmp_path / "sketch.json"
    f.write_text(page, "utf-8")
    out = h.open_sketch(str(f), None, AUTO, None, 10, "Off", GALLERY_DEFAULT, True, Session())
    assert len(out) == 12 and "Opened **sketch.json**: 7 strokes" in out[6]
    assert json.loads(out[0]) == json.loads(page)  # onto the canvas unchanged; its change event searches
    ranked = [r["file"] for r in h.retrieve(out[0], session=Session())[1]["results"]]
    assert ranked == [r["file"] for r in h.retrieve(page, session=Session())[1]["results"]]


def test_open_sketch_image_and_bad_files(h, tmp_path):
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (300, 300), "white")
    ImageDraw.Draw(img).ellipse((40, 80, 260, 220), outline="black", width=4)
    img.save(tmp_path / "drawing.png")
    out = h.open_sketch(str(tmp_path / "drawing.png"), None, AUTO, None, 5, "Off", GALLERY_DEFAULT, True, Session())
    assert out[1] and out[2]["error"] is None and "Results for the image **drawing.png**" in out[6]  # searched as is
    big = tmp_path / "big.json"  # strokes off the canvas are scaled onto it
    big.write_text(json.dumps([[[0, 0], [2000, 1000]], [[500, 900], [1500, 100]]]), "utf-8")
    pts = np.array([p for s in json.loads(h.open_sketch(str(big), *[None] * 7, Session())[0]) for p in s])
    assert pts.min() >= 19.9 and pts.max() <= 380.1
    for name, text, msg in (("notes.txt", "hi", "not a sketch file"), ("bad.json", "[[[1, 2], [3", "stroke JSON"),
                            ("empty.png", "", "")):
        (tmp_path / name).write_text(text, "utf-8")
        out = h.open_sketch(str(tmp_path / name), *[None] * 7, Session())
        assert out[6].startswith("⚠️") and msg in out[6], out[6]


# ---- the confidence cascade in the app ---------------------------------------------------------------
@pytest.fixture
def cascade_h(h, monkeypatch):
    """The handlers with a cascade on the tiny weights: at lambda_F 0 every sketch escalates (never sure),
    at 0.5 every sketch stops at 32 px (any lead is enough)."""
    from sketchdown.bundles.cascade import CascadeSpec

    spec = CascadeSpec("student", (32, 48), (0.0, 0.5), ((float("inf"),), (0.0,)), ((float("inf"),), (0.0,)), 0.0)
    monkeypatch.setattr(h.model.bundle, "cascade", spec)
    return h


def test_cascade_is_offered_after_the_gru(cascade_h):
    h = cascade_h
    assert [v for _, v in h.model.choices][:2] == ["student+selector", "student+cascade"]
    assert h.retrieve(example_json("fish"), session=Session())[1]["canvas_choice"] == "selector"  # the default
    _, r, sel_html, flops_html, *_ = h.retrieve(example_json("fish"), "student+cascade", session=Session())
    assert r["error"] is None and r["canvas_choice"] == "cascade" and r["canvas"] == 48 and r["lambda_F"] == 0.0
    assert [p["canvas"] for p in r["cascade"]] == [32, 48] and r["cascade"][-1]["threshold"] is None
    b = h.model.bundle.sketch["student"]
    assert r["gflops"] == pytest.approx((b.flops(32) + b.flops(48) + hog_flops(h.model.bundle.hog)) / 1e9, abs=1e-6)
    assert "confidence cascade" in sel_html and "never stops here" in sel_html and "earlier passes" in flops_html
    r = h.retrieve(example_json("fish"), "student+cascade", AUTO, 0.5, session=Session())[1]
    assert r["canvas"] == 32 and len(r["cascade"]) == 1 and r["selector_gflops"] == 0
    gru = h.retrieve(example_json("fish"), "student+selector", AUTO, session=Session())[1]
    assert gru["canvas_choice"] == "selector" and gru["cascade"] is None and gru["canvas_probs"]


def test_model_change_offers_each_policys_lambdas(cascade_h):
    _, lam = cascade_h.on_model_change("student+cascade")
    assert lam["interactive"] is True and [v for _, v in lam["choices"]] == [0.0, 0.5] and lam["value"] == 0.0
    _, lam = cascade_h.on_model_change("student+selector")
    assert [v for _, v in lam["choices"]] == list(cascade_h.model.bundle.selector.lams)
