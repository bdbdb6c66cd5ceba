"""The Gradio app's handlers on the real Retriever (tiny smoke-trained weights, a 6-photo gallery), its
upload safety, and its API through gradio_client on localhost.

``app`` loads weights and gallery when imported, from SKETCHDOWN_WEIGHTS_SET / SKETCHDOWN_GALLERY, so
the fixture sets those (and SKETCHDOWN_CACHE) before the first import.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import shutil
import socket
import sys
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from sketchdown.sketch.hog import hog_flops

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from sketchdown.sketch.examples import EXAMPLES, example_json  # noqa: E402

# gradio's queue trips pandas 3 deprecation warnings, and gr.Warning outside a request warns: not ours
pytestmark = [pytest.mark.filterwarnings("ignore:::gradio.queueing"), pytest.mark.filterwarnings("ignore:::gradio.helpers")]

PHOTOS = ["animals-clownfish.jpg", "animals-lionfish.jpg", "animals-mammals-cats-lion.jpg",
          "hobbies-guitar-classical.jpg", "household-kettle.jpg", "food-carrot.jpg"]


def import_app(weights: Path, tmp_path_factory: pytest.TempPathFactory):
    """``import app`` with the tiny weights and a 6-photo gallery (once per test session: a module that
    is already imported with working weights is reused, e.g. by tests/test_browser.py)."""
    mod = sys.modules.get("app")
    if mod is not None and getattr(mod, "MODEL", None) is not None and mod.MODEL.bundle is not None:
        return mod
    gallery = tmp_path_factory.mktemp("app-gallery")
    for f in PHOTOS:
        shutil.copy(REPO / "gallery" / "photos" / f, gallery / f)
    env = {"SKETCHDOWN_WEIGHTS_SET": str(weights), "SKETCHDOWN_GALLERY": str(gallery),
           "SKETCHDOWN_CACHE": str(tmp_path_factory.mktemp("app-cache")), "GRADIO_ANALYTICS_ENABLED": "False"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:  # the app reads its configuration at import; the environment is restored afterwards
        mod = importlib.reload(mod) if mod is not None else importlib.import_module("app")
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert mod.MODEL.bundle is not None, mod.MODEL.error
    return mod


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app(smoke_weights, tmp_path_factory):
    return import_app(smoke_weights, tmp_path_factory)


def png_bytes(color=(200, 30, 30), size=(24, 18)) -> bytes:
    buf = io.BytesIO()
    im = Image.new("RGB", size, (255, 255, 255))
    im.paste(color, (4, 4, size[0] - 4, size[1] - 4))
    im.save(buf, "PNG")
    return buf.getvalue()


# ---- the per-stroke handler ------------------------------------------------------------------
def test_module_config(app):
    assert app.MODEL.retriever.gallery is not None and len(app.MODEL.retriever.gallery) == len(PHOTOS)
    assert app.MODEL.default_choice == "student+selector"
    assert [v for _, v in app.MODEL.choices] == ["student+selector", "student", "teacher"]
    assert isinstance(app.demo, app.gr.Blocks)


def test_retrieve_returns_photos_and_readout(app):
    s = app.Session()
    photos, readout, sel_html, flops_html, cats, status, cmp_a, cmp_b, cmp_md, s2 = app.retrieve(example_json("fish"), session=s)
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
    assert cmp_a == [] and cmp_b == []
    # the smoke student carries the teacher's 3-class head: the panel shows its top classes
    assert cats["visible"] is True and set(cats["value"]) <= {"class0", "class1", "class2"}
    json.dumps(readout)  # the API's readout is plain JSON


@pytest.mark.parametrize("text", ["[]", "", None, "[[]]", '{"strokes": []}'])
def test_empty_canvas_clears_results(app, text):
    photos, readout, sel_html, flops_html, _, status, *_ = app.retrieve(text, session=app.Session())
    assert photos == [] and readout.get("empty") is True and readout["error"] is None and status == ""
    assert sel_html == app.SELECTOR_EMPTY and flops_html == app.FLOPS_EMPTY


@pytest.mark.parametrize("text, words", [
    ("not json", "could not be parsed"),
    ('{"a": 1}', "expected a list of strokes"),
    ("[[[1, 2], [3]]]", "[x, y] points"),
    ("[[[1e12, 0], [1, 1]]]", "coordinates"),
    ('[[["a", "b"]]]', "not a number"),
])
def test_invalid_json_gives_clean_message(app, text, words):
    s = app.Session()
    photos, readout, *_, status, _, _, _, s2 = app.retrieve(text, session=s)
    assert photos == [] and words in readout["error"] and status.startswith("⚠️") and words in status
    assert "\n" not in readout["error"] and s2.queries == 0
    assert app.retrieve(example_json("chair"), session=s)[1]["error"] is None  # keeps serving


def test_forced_canvas_and_model_choice(app):
    b = app.MODEL.bundle
    r = app.retrieve(example_json("guitar"), "student+selector", "48", session=app.Session())[1]
    assert r["canvas"] == 48 and r["canvas_choice"] == "forced" and r["canvas_probs"] is None and r["selector_gflops"] == 0
    hog = hog_flops(b.hog) / 1e9  # the smoke weights fuse HOG: every query also pays for the descriptor
    assert r["hog"] and r["hog_gflops"] == pytest.approx(hog, rel=1e-4)
    assert r["hog_alpha"] == b.sketch["student"].alpha_for(app.MODEL.retriever.granularity) > 0  # the gallery's weight
    assert r["gflops"] == pytest.approx(b.sketch["student"].flops(48) / 1e9 + hog, rel=1e-4)
    # the HOG checkbox off: the network alone, fewer FLOPs
    off = app.retrieve(example_json("guitar"), "student+selector", "48", hog=False, session=app.Session())[1]
    assert not off["hog"] and off["hog_alpha"] == 0 and off["gflops"] == pytest.approx(b.sketch["student"].flops(48) / 1e9, rel=1e-4)
    assert off["error"] is None and len(off["results"]) == len(r["results"])
    r = app.retrieve(example_json("guitar"), "student", app.AUTO, session=app.Session())[1]
    assert r["canvas"] == b.sketch["student"].default_canvas and r["canvas_choice"] == "fixed" and not r["selector"]
    r = app.retrieve(example_json("guitar"), "teacher", session=app.Session())[1]
    assert r["model"] == "teacher" and r["canvas"] == 64 and r["gflops"] == pytest.approx(r["full_gflops"] + hog, rel=1e-4)
    r = app.retrieve(example_json("guitar"), "student", "64", session=app.Session())[1]
    assert "runs at canvas [32, 48]" in r["error"]
    r = app.retrieve(example_json("guitar"), "nope", session=app.Session())[1]
    assert "unknown model" in r["error"]


def test_lambda_reaches_the_selector(app):
    from sketchdown.sketch.strokes import from_json

    sk = from_json(example_json("cat face"))
    for lam in app.MODEL.bundle.selector.lams:
        r = app.retrieve(example_json("cat face"), "student+selector", app.AUTO, lam, session=app.Session())[1]
        canvas, probs, _ = app.MODEL.retriever.select_canvas(sk, "student", lam)
        assert r["lambda_F"] == lam and r["canvas"] == canvas
        assert r["canvas_probs"] == {str(c): round(p, 4) for c, p in probs.items()}
    assert "lambda_F must be in [0, 1]" in app.retrieve(example_json("fish"), "student+selector", app.AUTO, 2.0,
                                                        session=app.Session())[1]["error"]


def test_session_totals_accumulate_per_state(app):
    a, b = app.Session(), app.Session()
    got = [app.retrieve(example_json("fish", n), session=a)[1] for n in (1, 2, 3)]
    app.retrieve(example_json("chair"), session=b)
    assert a.queries == 3 and b.queries == 1
    assert a.gflops == pytest.approx(sum(r["gflops"] for r in got), rel=1e-3)
    assert a.full_gflops == pytest.approx(sum(r["full_gflops"] for r in got), rel=1e-3)
    assert got[-1]["session"]["queries"] == 3
    flops_html = app.retrieve(example_json("fish"), session=a)[3]
    assert "<b>4</b> retrievals" in flops_html
    # errors and empty canvases do not count
    app.retrieve("[]", session=a)
    app.retrieve("oops", session=a)
    assert a.queries == 4
    # each browser session starts from its own copy of the State's default
    state = next(blk for blk in app.demo.blocks.values() if isinstance(blk, app.gr.State) and isinstance(blk.value, app.Session))
    assert state.value.queries == 0 and state.value is not a and state.value is not b


def test_compare_two_ranked_lists(app):
    out = app.retrieve(example_json("fish"), compare="teacher", session=app.Session())
    cmp_a, cmp_b, md = out[6], out[7], out[8]
    assert len(cmp_a) == len(cmp_b) == len(PHOTOS)
    assert "**teacher**" in md and "**student**" in md and "Photos in both top-" in md


def test_model_change_updates_canvas_choices(app):
    canvas, lam = app.on_model_change("teacher")
    assert canvas["choices"] == [(app.AUTO, app.AUTO), ("64", "64")] or canvas["choices"] == [app.AUTO, "64"]
    assert lam["interactive"] is False
    canvas, lam = app.on_model_change("student+selector")
    assert lam["interactive"] is True


def test_flops_plot(app):
    assert app.metric_rows({}) == ("", [])
    assert app.flops_plot(None) is None
    rows = [{"model": "w/student@32", "acc@1": 20.0, "gflops_per_query": 0.02},
            {"model": "w/student+selector(lambda_F=0.2)", "acc@1": 22.0, "gflops_per_query": 0.03},
            {"model": "w/teacher@64", "acc@1": 25.0, "gflops_per_query": 0.06},
            {"model": "w/bad", "acc@1": None, "gflops_per_query": 0.1}]
    assert app.metric_rows({"rows": rows})[1] == rows[:3]
    name, got = app.metric_rows({"chairv2": {"rows": rows}})
    assert name == "chairv2" and len(got) == 3
    fig = app.flops_plot({"chairv2": {"rows": rows}}, current=0.025, full=0.06)
    ax = fig.axes[0]
    assert "chairv2" in ax.get_title() and any("this query" in t.get_text() for t in ax.get_legend().get_texts())


def test_weights_and_address_defaults(app, monkeypatch):
    monkeypatch.setenv("SKETCHDOWN_WEIGHTS_SET", "/some/weights")
    assert app.default_weights("cli/w") == "cli/w" and app.default_weights() == "/some/weights"
    monkeypatch.delenv("SKETCHDOWN_WEIGHTS_SET")
    exp = "imagenet-lite0"
    for name in ("default", "chairv2"):
        if (app.REPO / "weights" / name / "manifest.json").is_file():
            exp = str(app.REPO / "weights" / name)
            break
    assert app.default_weights() == exp
    for var in ("GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT", "PORT"):
        monkeypatch.delenv(var, raising=False)
    assert app.server_address(app.parse_args([])) == ("127.0.0.1", 7860)
    monkeypatch.setenv("PORT", "9001")
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    assert app.server_address(app.parse_args([])) == ("0.0.0.0", 9001)
    assert app.server_address(app.parse_args(["--host", "::1", "--port", "7000"])) == ("::1", 7000)


def test_result_captions_credit_photographers(app, tmp_path):
    from types import SimpleNamespace

    credits = app.photo_credits(str(REPO / "gallery" / "photos"))
    assert credits["gcompris-kitten.jpg"] == "GalgenTX, CC-BY-2.0"  # a CC-BY photo shows its author
    assert "animals-clownfish.jpg" not in credits  # Tux Paint stamps: one GPL notice in ATTRIBUTION.md
    hits = [SimpleNamespace(path=str(REPO / "gallery" / "photos" / f), rank=i + 1, label="x", score=0.5)
            for i, f in enumerate(["gcompris-kitten.jpg", "animals-clownfish.jpg", "gcompris-butterfly.jpg"])]
    caps = [c for _, c in app.gallery_items(SimpleNamespace(hits=hits))]
    assert caps == ["#1 x · 0.50 · © GalgenTX, CC-BY-2.0", "#2 x · 0.50",
                    "#3 x · 0.50 · © 2014 Jee & Rani Nature Photography, CC-BY-SA-4.0"]  # its author writes the ©
    (tmp_path / "metadata.json").write_text("[1, 2]")  # a user's own, unrelated metadata.json
    assert app.photo_credits(str(tmp_path)) == {}


def test_examples_are_valid_sketches():
    from sketchdown.sketch.strokes import from_json

    for name, strokes in EXAMPLES.items():
        sk = from_json(example_json(name))
        assert sk.num_strokes == len(strokes) >= 4
        x0, y0, x1, y1 = sk.bbox()
        assert 0 <= x0 < x1 <= 400 and 0 <= y0 < y1 <= 400


def test_app_offers_traced_examples(app):
    from sketchdown.sketch.strokes import from_strokes

    ex = app.app_examples()
    traced = {k: v for k, v in ex.items() if k.startswith("traced: ")}
    assert set(EXAMPLES) < set(ex) and len(traced) >= 3
    for strokes in traced.values():
        x0, y0, x1, y1 = from_strokes(strokes).bbox()
        assert 0 <= x0 < x1 <= 400 and 0 <= y0 < y1 <= 400


# ---- your own photos -----------------------------------------------------------------------------
def test_zip_with_unsafe_paths_is_unpacked_safely(app, tmp_path):
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
    saved, notes = app.collect_uploads([z], dest)
    assert sorted(p.name for p in saved) == ["one.png", "two-2.png", "two.png"]
    assert all(p.parent == dest for p in saved)
    assert sum("unsafe path" in n for n in notes) == 5
    assert any("broken.jpg" in n for n in notes) and any("notes.txt" in n for n in notes)
    found = {p.name for p in tmp_path.rglob("*")} | {p.name for p in tmp_path.parent.glob("*")}
    assert not found & {"evil.txt", "evil.png", "abs.png", "win.png", "b.png"}


def test_upload_limits(app, tmp_path):
    z = tmp_path / "many.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for i in range(app.MAX_UPLOAD_FILES + 1):
            zf.writestr(f"p{i}.png", png_bytes())
    dest = tmp_path / "d1"
    with pytest.raises(app.UploadError, match="too many photos"):
        app.collect_uploads([z], dest)
    assert not any(dest.glob("*"))  # refused before unpacking anything
    files = []
    for i in range(app.MAX_UPLOAD_FILES + 1):
        f = tmp_path / "plain" / f"p{i}.png"
        f.parent.mkdir(exist_ok=True)
        f.write_bytes(png_bytes())
        files.append(f)
    with pytest.raises(app.UploadError, match="too many photos"):
        app.collect_uploads(files, tmp_path / "d2")
    # per-file and total size limits (small limits keep the test fast)
    big = png_bytes(size=(400, 400))
    z2 = tmp_path / "big.zip"
    with zipfile.ZipFile(z2, "w") as zf:
        zf.writestr("big.png", big)
        zf.writestr("small.png", png_bytes())
    saved, notes = app.collect_uploads([z2], tmp_path / "d3", max_file_bytes=len(big) - 1)
    assert [p.name for p in saved] == ["small.png"] and any("larger than" in n for n in notes)
    with pytest.raises(app.UploadError, match="uncompressed"):
        app.collect_uploads([z2], tmp_path / "d4", max_total_bytes=len(big) // 2)
    with pytest.raises(app.UploadError, match="no usable photos"):
        app.collect_uploads([tmp_path / "plain" / "p0.png"], tmp_path / "d5", max_file_bytes=10)
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(app.UploadError, match="no usable photos"):
        app.collect_uploads([bad], tmp_path / "d6")


def test_index_uploads_is_per_session(app, tmp_path):
    z = tmp_path / "mine.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in PHOTOS[:3]:
            zf.write(REPO / "gallery" / "photos" / f, f"holiday/{f}")
        zf.writestr("../evil.txt", "x")
    mine, other = app.Session(), app.Session()
    status, radio, s = app.index_uploads([str(z)], mine)
    assert s is mine and "Indexed **3**" in status and "unsafe path" in status and radio["value"] == app.GALLERY_MINE
    assert mine.dir and Path(mine.dir).is_relative_to(app.SESSIONS_ROOT)
    r = app.retrieve(example_json("fish"), source=app.GALLERY_MINE, session=mine)
    assert len(r[0]) == 3 and all(Path(p).is_relative_to(mine.dir) for p, _ in r[0])
    assert {x["file"] for x in r[1]["results"]} == set(PHOTOS[:3])
    # another session neither sees these photos nor can search them
    r2 = app.retrieve(example_json("fish"), source=app.GALLERY_MINE, session=other)
    assert r2[0] == [] and "no photos of yours" in r2[1]["error"]
    assert len(app.retrieve(example_json("fish"), session=other)[0]) == len(PHOTOS)
    # a bad upload is refused with a message; the previous photos are replaced, the app keeps serving
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../evil.txt", "x")
    status, radio, _ = app.index_uploads([str(evil)], mine)
    assert status.startswith("⚠️") and "no usable photos" in status and radio["value"] == app.GALLERY_DEFAULT
    status, _, _ = app.index_uploads([], mine)
    assert status.startswith("⚠️")
    d = mine.dir
    app.cleanup_session(mine)
    assert not Path(d).exists() and mine.gallery is None


# ---- the API through gradio_client ----------------------------------------------------------------
def test_api_through_gradio_client(app):
    from gradio_client import Client

    port = free_port()
    app.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=False, analytics_enabled=False)
        out = client.predict(example_json("chair"), api_name="/retrieve")
        readout = out[1]
        assert {"canvas", "gflops", "full_gflops", "latency_ms"} <= readout.keys()
        assert readout["canvas"] in (32, 48) and 0 < readout["gflops"] < readout["full_gflops"]
        assert len(out[0]) == len(PHOTOS) and out[0][0]["caption"].startswith("#1 ")
        out = client.predict(example_json("chair"), "teacher", api_name="/retrieve")
        assert out[1]["model"] == "teacher" and out[1]["canvas"] == 64
        lam = app.MODEL.bundle.selector.lams[-1]  # one of the shipped lambda_F choices
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
        app.demo.close()
