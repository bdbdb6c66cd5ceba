"""sketchdown/bundle.py, retriever.py and cli.py end to end on real tiny weights.

The weights come from the training scripts' smoke runs (the session fixture ``smoke_weights``); the
photo branch runs HED, so the galleries here hold 2-4 small photos.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from sketchdown.bundles.bundle import load_bundle
from sketchdown.bundles.flops import encoder_flops, selector_flops
from sketchdown.bundles.photo import PhotoSpec, hed_edges, load_hed
from sketchdown.bundles.weights import WeightsError
from sketchdown.cli import main
from sketchdown.retrieval.gallery import INDEX_FILE, GalleryError, GalleryIndex
from sketchdown.retrieval.retriever import Retriever
from sketchdown.sketch.hog import hog_descriptor, hog_flops, ink_hogs
from sketchdown.sketch.imageio import open_image
from sketchdown.sketch.render import ink_to_tensor, render_sketch
from sketchdown.sketch.strokes import Sketch, SketchError, from_raster, stroke_sequence

SKETCH = Sketch(
    (
        np.array([[10, 80], [10, 30], [45, 5], [80, 30], [80, 80], [10, 80]], np.float32),
        np.array([[35, 80], [35, 55], [55, 55], [55, 80]], np.float32),
        np.array([[20, 40], [30, 40]], np.float32),
    )
)


@pytest.fixture(scope="module")
def bundle(smoke_weights: Path):
    return load_bundle(smoke_weights)


@pytest.fixture(scope="module")
def gallery_dir(tmp_path_factory: pytest.TempPathFactory, photo_writer) -> Path:
    root = tmp_path_factory.mktemp("gallery") / "photos"
    for i, rel in enumerate(["chairs/a.png", "chairs/b.jpg", "tables/c.png", "d.jpg"]):
        photo_writer(root / rel, seed=i, size=(96, 72))
    return root


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("index") / "smoke"


@pytest.fixture(scope="module")
def retriever(bundle, gallery_dir: Path, index_dir: Path) -> Retriever:
    return Retriever.from_folder(bundle, gallery_dir, index_dir)  # builds the index (HED on 4 photos)


@pytest.fixture()
def sketch_file(tmp_path: Path) -> Path:
    p = tmp_path / "house.json"
    p.write_text(SKETCH.to_json())
    return p


# ---- bundle ------------------------------------------------------------------------------------
def test_load_bundle(bundle, smoke_weights: Path) -> None:
    assert bundle.name == "smoke" and bundle.source == str(smoke_weights)
    assert set(bundle.sketch) == {"teacher", "student"}
    t, s = bundle.sketch["teacher"], bundle.sketch["student"]
    assert bundle.full is t and t.is_full and not s.is_full
    assert t.canvas_sizes == (64,) and s.canvas_sizes == (32, 48) and s.default_canvas == 48
    assert bundle.selector is not None and bundle.selector.model == "student" == bundle.default_model
    from training.train_selector import SelectorConfig

    lams = SelectorConfig.lams  # what the smoke export ships; the app starts at the middle one
    assert bundle.selector.lams == lams and bundle.selector.default_lam == lams[len(lams) // 2]
    assert bundle.photo_spec == PhotoSpec("hed", 64)
    # gallery vectors: the 256-d embedding + the HOG the smoke fusion picked
    assert bundle.hog is not None and bundle.embed_dim == 256 + bundle.hog.dim and bundle.classes == ["class0", "class1", "class2"]  # the teacher's category head
    assert len(bundle.photo_id) == 64  # a sha256 (stable across loads: the CLI searches below reuse one index)
    # the shipped weights are the checkpoint's, in fp16
    ck = torch.load(smoke_weights.parent.parent / "T" / "best.pt", map_location="cpu", weights_only=True)
    for k, v in t.encoder.state_dict().items():
        if v.is_floating_point():
            torch.testing.assert_close(v, ck["sketch"][k].half().float(), rtol=0, atol=0)


# ---- retriever ---------------------------------------------------------------------------------
def test_retrieve_auto(retriever: Retriever, bundle, gallery_dir: Path) -> None:
    res = retriever.retrieve(SKETCH, k=3, canvas="auto")
    student, teacher, sel = bundle.sketch["student"], bundle.sketch["teacher"], bundle.selector
    # hits: ranked, best first, real files of the gallery
    assert [h.rank for h in res.hits] == [1, 2, 3]
    scores = [h.score for h in res.hits]
    # the smoke weights fuse HOG (fit_fusion --smoke --doodle-val: 1.0 on instance-level galleries, 0.5
    # on category-level ones); an index built without --granularity is category-level
    assert retriever.granularity == "category" and retriever.gallery.meta["granularity"] == "category"
    alpha = student.hog_alpha_category
    assert bundle.hog is not None and alpha == 0.5 and student.hog_alpha == 1.0
    assert retriever.hog_alpha("student") == alpha
    # fused score: cosine + alpha * HOG cosine (HOG vectors are non-negative, so their cosine is in [0, 1])
    assert scores == sorted(scores, reverse=True) and all(-1.0 <= s <= 1.0 + alpha + 1e-6 for s in scores)
    assert all(Path(h.path).is_file() and Path(h.path).is_relative_to(gallery_dir) for h in res.hits)
    # the selector's canvas
    assert res.model == "student" and res.canvas in student.canvas_sizes
    assert set(res.canvas_probs) == set(student.canvas_sizes)
    assert sum(res.canvas_probs.values()) == pytest.approx(1.0, abs=1e-5)
    assert res.canvas == max(res.canvas_probs, key=res.canvas_probs.get)
    assert 0.0 <= res.abstraction <= 1.0
    # cost: student at that canvas + the selector's GRU; full = the teacher at its canvas
    steps = len(stroke_sequence(SKETCH))
    sel_flops = selector_flops(sel.policy, steps)
    ci = student.canvas_sizes.index(res.canvas)
    assert res.selector_gflops == pytest.approx(sel_flops / 1e9) and sel_flops > 0
    assert res.hog_gflops == pytest.approx(hog_flops(bundle.hog) / 1e9) and res.hog_gflops > 0
    assert res.gflops == pytest.approx((student.flops(res.canvas) + sel_flops + hog_flops(bundle.hog)) / 1e9, rel=1e-9)
    assert res.full_gflops == pytest.approx(teacher.flops(64) / 1e9, rel=1e-9)
    assert student._flops[res.canvas] == encoder_flops(student.encoder, res.canvas, ci)  # the cache holds the count
    assert 0 < res.gflops < res.full_gflops and res.saving_pct > 0
    assert res.params == student.params() + sum(p.numel() for p in sel.policy.parameters())
    assert res.latency_ms > 0
    # what the network saw, and the ranking against brute force over the stored photo vectors
    assert res.canvas_image.shape == (res.canvas, res.canvas)
    np.testing.assert_array_equal(res.canvas_image, render_sketch(SKETCH, res.canvas, bundle.render))
    with torch.inference_mode():
        emb = student.encoder(ink_to_tensor(res.canvas_image), ci)[0].numpy()
    np.testing.assert_allclose(res.embedding, emb, atol=1e-5)
    # the stored photo vectors are [embedding, HOG of the photo's edge map]: recompute the HOG part
    stored = retriever.gallery.embeddings()
    d = emb.shape[0]
    inks = [hed_edges(load_hed(), np.asarray(open_image(Path(retriever.gallery.root) / q), np.uint8))
            for q in retriever.gallery.paths]
    np.testing.assert_allclose(stored[:, d:], ink_hogs(inks, bundle.hog, bundle.render), atol=1e-4)
    sims = stored[:, :d] @ emb + alpha * stored[:, d:] @ hog_descriptor(render_sketch(SKETCH, bundle.hog.size, bundle.render), bundle.hog)
    top = np.argsort(-sims, kind="stable")[:3]
    assert [h.index for h in res.hits] == list(top)
    np.testing.assert_allclose(scores, sims[top], atol=1e-5)
    # fusion off: the network's cosine alone, and no HOG FLOPs
    off = retriever.retrieve(SKETCH, k=3, canvas=res.canvas, fusion=False)
    cos = stored[:, :d] @ emb
    assert [h.index for h in off.hits] == list(np.argsort(-cos, kind="stable")[:3]) and off.hog_gflops == 0
    np.testing.assert_allclose([h.score for h in off.hits], np.sort(cos)[::-1][:3], atol=1e-5)
    assert off.gflops == pytest.approx(student.flops(res.canvas) / 1e9, rel=1e-9)
    # an instance-level gallery (same vectors) weighs the HOG by the instance alpha
    inst = Retriever(bundle, dataclasses.replace(retriever.gallery, meta=dict(retriever.gallery.meta, granularity="instance")))
    res_i = inst.retrieve(SKETCH, k=3, canvas=res.canvas)
    sims_i = cos + student.hog_alpha * (sims - cos) / alpha
    np.testing.assert_allclose([h.score for h in res_i.hits], np.sort(sims_i)[::-1][:3], atol=1e-5)


def test_retrieve_forced_canvas(retriever: Retriever, bundle) -> None:
    student = bundle.sketch["student"]
    res = retriever.retrieve(SKETCH, k=10, canvas=32)
    assert res.canvas == 32 and res.canvas_probs is None and res.selector_gflops == 0
    hog = hog_flops(bundle.hog)
    assert res.gflops == pytest.approx((student.flops(32) + hog) / 1e9) and student.flops(32) < student.flops(48)
    assert res.canvas_image.shape == (32, 32) and len(res.hits) == 4  # k capped at the gallery size
    with pytest.raises(ValueError, match="runs at canvas"):
        retriever.retrieve(SKETCH, canvas=100)
    t = retriever.retrieve(SKETCH, k=2, model="teacher")  # no selector for the teacher: its canvas
    assert t.model == "teacher" and t.canvas == 64 and t.canvas_probs is None
    # the "full network" is the teacher's network; a fused teacher query also pays the HOG
    assert t.gflops == pytest.approx(t.full_gflops + hog / 1e9)
    ras = retriever.retrieve(from_raster(np.asarray(render_sketch(SKETCH, 64) < 0.5, np.uint8) * 255), k=2)
    assert ras.canvas == student.default_canvas and ras.canvas_probs is None  # raster: no strokes to read


def test_retrieve_errors(retriever: Retriever, bundle) -> None:
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        retriever.retrieve(SKETCH, model="nope")
    with pytest.raises(SketchError):
        retriever.retrieve("[[[1, 2]]]")  # type: ignore[arg-type]
    with pytest.raises(GalleryError, match="no gallery"):
        Retriever(bundle).retrieve(SKETCH)


def test_from_folder_reuses_or_refuses(retriever: Retriever, bundle, gallery_dir: Path, index_dir: Path, tmp_path: Path) -> None:
    stamp = (index_dir / INDEX_FILE).stat().st_mtime_ns
    again = Retriever.from_folder(bundle, gallery_dir, index_dir, rebuild="never")
    assert again.gallery.paths == retriever.gallery.paths
    assert (index_dir / INDEX_FILE).stat().st_mtime_ns == stamp  # loaded, not rebuilt
    with pytest.raises(GalleryError, match="no gallery index"):
        Retriever.from_folder(bundle, gallery_dir, tmp_path / "none", rebuild="never")


# ---- CLI ---------------------------------------------------------------------------------------
def _search(sketch: Path, gallery: Path, index: Path, weights: Path, *extra: str) -> list[str]:
    return ["search", str(sketch), "--gallery", str(gallery), "--index", str(index), "--weights", str(weights), *extra]


def _one_line_error(capsys: pytest.CaptureFixture[str], code: int, *needles: str) -> str:
    """Exit status 2 and exactly one ``error: ...`` line on stderr, no traceback."""
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert "Traceback" not in err and err.startswith("error: ") and err.count("\n") == 1, err
    for n in needles:
        assert n in err, err
    return err


def test_cli_index(tmp_path: Path, smoke_weights: Path, photo_writer, capsys, isolated_cache) -> None:
    photos = tmp_path / "two"
    photo_writer(photos / "x.png", seed=5)
    photo_writer(photos / "sub" / "y.jpg", seed=6)
    out = tmp_path / "idx"
    assert main(["index", str(photos), "--out", str(out), "--weights", str(smoke_weights), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info == {"index": str(out), "photos": 2, "skipped": [], "index_type": "flat", "weights": "smoke"}
    assert (out / INDEX_FILE).is_file()
    assert not isolated_cache.exists()  # --out given: nothing written to the user cache


def test_cli_search_json(
    retriever: Retriever, gallery_dir: Path, index_dir: Path, smoke_weights: Path, sketch_file: Path, capsys
) -> None:
    assert main(_search(sketch_file, gallery_dir, index_dir, smoke_weights, "--k", "3", "--no-rebuild", "--json")) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"results", "canvas", "gflops", "full_gflops", "latency_ms"} <= set(out)
    assert len(out["results"]) == 3
    assert all({"path", "score", "rank"} <= set(r) for r in out["results"])
    assert [r["rank"] for r in out["results"]] == [1, 2, 3]
    ref = retriever.retrieve(Sketch(tuple(np.round(s, 2) for s in SKETCH.strokes)), k=3)  # the file holds 2 decimals
    assert [r["path"] for r in out["results"]] == [h.path for h in ref.hits]
    assert [r["score"] for r in out["results"]] == pytest.approx([h.score for h in ref.hits], abs=1e-4)
    assert out["canvas"] == ref.canvas and out["gflops"] == pytest.approx(ref.gflops)
    assert out["full_gflops"] == pytest.approx(ref.full_gflops) and out["latency_ms"] > 0
    assert out["hog"] is True and out["hog_alpha"] == 0.5  # the category-level weight
    # --no-hog: the network's ranking alone, as the Retriever gives it with fusion=False
    assert main(_search(sketch_file, gallery_dir, index_dir, smoke_weights, "--k", "3", "--no-rebuild", "--json", "--no-hog")) == 0
    off = json.loads(capsys.readouterr().out)
    ref_off = retriever.retrieve(Sketch(tuple(np.round(s, 2) for s in SKETCH.strokes)), k=3, fusion=False)
    assert off["hog"] is False and [r["path"] for r in off["results"]] == [h.path for h in ref_off.hits]
    assert off["gflops"] == pytest.approx(ref_off.gflops) and off["gflops"] < out["gflops"]


def test_cli_search_text(
    gallery_dir: Path, index_dir: Path, smoke_weights: Path, sketch_file: Path, capsys, retriever: Retriever
) -> None:
    argv = _search(sketch_file, gallery_dir, index_dir, smoke_weights, "--k", "2", "--canvas", "32", "--model", "student")
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("model student | canvas 32px")
    assert lines[1].split()[0] == "1" and str(gallery_dir) in lines[1]


def test_cli_text_search_prints_no_progress_for_a_loaded_index(
    gallery_dir: Path, index_dir: Path, smoke_weights: Path, sketch_file: Path, capsys, retriever: Retriever
) -> None:
    # an unknown model fails right after the index is loaded: a cheap way to see what stderr holds
    code = main(_search(sketch_file, gallery_dir, index_dir, smoke_weights, "--model", "nope", "--no-rebuild"))
    _one_line_error(capsys, code, "unknown model 'nope'")


def test_cli_error_unknown_model(
    gallery_dir: Path, index_dir: Path, smoke_weights: Path, sketch_file: Path, retriever: Retriever, capsys
) -> None:
    code = main(_search(sketch_file, gallery_dir, index_dir, smoke_weights, "--model", "nope", "--no-rebuild", "--json"))
    _one_line_error(capsys, code, "unknown model 'nope'")


def test_cli_flops_json(bundle, smoke_weights: Path, capsys) -> None:
    assert main(["flops", "--weights", str(smoke_weights), "--json"]) == 0
    rows = [json.loads(ln) for ln in capsys.readouterr().out.strip().splitlines()]
    got = {(r["model"], r["canvas"]): r for r in rows}
    assert set(got) == {("smoke/teacher", 64), ("smoke/student", 32), ("smoke/student", 48)}
    for (name, c), r in got.items():
        br = bundle.sketch[name.split("/")[1]]
        assert r["gflops"] == pytest.approx(br.flops(c) / 1e9) and r["params"] == br.params()
    assert main(["flops", "--weights", str(smoke_weights), "--canvas", "32", "--model", "student", "--json"]) == 0
    rows = [json.loads(ln) for ln in capsys.readouterr().out.strip().splitlines()]
    assert [(r["model"], r["canvas"]) for r in rows] == [("smoke/student", 32)]


def test_cli_error_corrupt_weights(tmp_path: Path, smoke_weights: Path, sketch_file: Path, gallery_dir: Path, capsys) -> None:
    bad = tmp_path / "corrupt"
    shutil.copytree(smoke_weights, bad)
    f = bad / "student.safetensors"
    data = bytearray(f.read_bytes())
    data[-100] ^= 0xFF
    f.write_bytes(bytes(data))
    code = main(_search(sketch_file, gallery_dir, tmp_path / "i", bad, "--no-rebuild"))
    _one_line_error(capsys, code, "sha256", "student.safetensors")
    _one_line_error(capsys, main(["flops", "--weights", str(bad)]), "sha256")
    with pytest.raises(WeightsError):
        load_bundle(bad)


def test_cli_error_bad_sketch_files(tmp_path: Path, smoke_weights: Path, gallery_dir: Path, index_dir: Path, capsys) -> None:
    def search(sketch: Path) -> int:
        return main(_search(sketch, gallery_dir, index_dir, smoke_weights, "--no-rebuild"))

    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    _one_line_error(capsys, search(empty), "empty")
    blank = tmp_path / "blank.json"
    blank.write_text("")
    _one_line_error(capsys, search(blank), "could not be parsed")
    img = tmp_path / "drawing.png"
    img.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    _one_line_error(capsys, search(img), "drawing.png", "not a readable image")
    _one_line_error(capsys, search(tmp_path / "none.json"), "no such sketch file")


def test_cli_error_stale_index(
    tmp_path: Path,
    bundle,
    retriever: Retriever,
    gallery_dir: Path,
    index_dir: Path,
    smoke_weights: Path,
    sketch_file: Path,
    photo_writer,
    capsys,
) -> None:
    photos, idx = tmp_path / "photos", tmp_path / "idx"
    shutil.copytree(gallery_dir, photos)
    shutil.copytree(index_dir, idx)
    GalleryIndex.load(idx, photos, bundle.photo_id)  # the copy is the same folder, as indexed
    photo_writer(photos / "tables" / "new.png", seed=11)
    _one_line_error(capsys, main(_search(sketch_file, photos, idx, smoke_weights, "--no-rebuild", "--json")), "stale", "changed")
    code = main(_search(sketch_file, photos, tmp_path / "missing", smoke_weights, "--no-rebuild", "--json"))
    _one_line_error(capsys, code, "no gallery index")


@pytest.mark.parametrize("granularity", ["instance", "category"])
def test_evaluate_matches_the_retriever(bundle, gallery_dir: Path, tmp_path: Path, granularity: str) -> None:
    """evaluate() (batched, cached, fused similarity computed in bulk) gives the same ranks and FLOPs as
    answering every sketch through Retriever.retrieve, for plain, +HOG and selector rows, on a gallery of
    either granularity (each has its own HOG weight)."""
    from sketchdown.bundles.photo import EdgeCache
    from sketchdown.eval.data import PairedDataset, SketchItem
    from sketchdown.eval.evaluate import evaluate
    from sketchdown.eval.rows import RowKey as Row
    from sketchdown.retrieval.gallery import embed_photos, make_index

    photos = sorted(p for p in gallery_dir.rglob("*") if p.is_file())
    rng = np.random.default_rng(5)
    items = [SketchItem(f"s{i}", Sketch(tuple(rng.uniform(0, 100, (5, 2)).astype(np.float32) for _ in range(3))), i % len(photos))
             for i in range(6)]
    data = PairedDataset("tiny", items, photos, [""] * len(photos), granularity=granularity)
    cache = EdgeCache(tmp_path / "cache")  # the same (8-bit cached) edge maps for both sides
    lam = bundle.selector.lams[0]
    rows = [Row("student", 32), Row("student", 32, hog=True), Row("student", None, lam, hog=True), Row("teacher", 64, hog=True)]
    got = {r["model"]: r for r in evaluate(bundle, data, rows, prefix_steps=0, latency_queries=1, edge_cache=cache)}
    pemb, ok, _ = embed_photos(bundle, photos, edge_cache=cache)
    g = GalleryIndex(Path("/"), [str(p.resolve()) for p in photos], [""] * len(photos), [""] * len(photos), make_index(pemb, "flat"),
                     {"granularity": granularity})
    r = Retriever(bundle, g, backend="eager")
    assert r.hog_alpha("student") == (1.0 if granularity == "instance" else 0.5)
    for row in rows:
        res = [r.retrieve(it.sketch, k=len(photos), canvas="auto" if row.canvas is None else row.canvas, model=row.model,
                          lam=row.lam, fusion=row.hog) for it in items]
        ranks = [1 + [h.index for h in x.hits].index(it.photo) for x, it in zip(res, items, strict=True)]
        e = got[row.with_weights(bundle.name).label()]
        assert e["mean_rank"] == pytest.approx(np.mean(ranks), abs=1e-2), row
        assert e["acc@1"] == pytest.approx(100 * np.mean(np.array(ranks) == 1), abs=1e-2), row
        assert e["gflops_per_query"] == pytest.approx(np.mean([x.gflops for x in res]), abs=1e-4), row


def test_from_folder_granularity_override_and_bad_value(bundle, gallery_dir: Path, index_dir: Path) -> None:
    """A caller can say what a gallery is (it only changes the HOG weight): the recorded index is reused."""
    r = Retriever.from_folder(bundle, gallery_dir, index_dir, rebuild="never", granularity="instance")
    assert r.granularity == "instance" and r.hog_alpha("student") == bundle.sketch["student"].hog_alpha
    assert Retriever.from_folder(bundle, gallery_dir, index_dir, rebuild="never").granularity == "category"
    with pytest.raises(GalleryError, match="granularity"):
        Retriever.from_folder(bundle, gallery_dir, index_dir, rebuild="never", granularity="fine")


@pytest.mark.parametrize("canvas", [None, 32])
def test_batched_queries_match_the_retriever_per_sketch(retriever: Retriever, canvas: int | None) -> None:
    """encode_queries on a batch (mixed canvases, a raster sketch among vector ones, HOG fused) gives each
    sketch the Retriever's own single-query canvas, selector output, embedding and search vector."""
    from sketchdown.retrieval.encode import encode_queries, pad_sequences

    b = retriever.bundle
    eager = Retriever(b, retriever.gallery, backend="eager")
    rng = np.random.default_rng(3)
    raster = np.full((80, 80), 255, np.uint8)
    raster[20:60, 38:42] = 0
    sketches = [SKETCH, from_raster(raster)] + [
        Sketch(tuple(rng.uniform(0, 100, (int(rng.integers(2, 30)), 2)).astype(np.float32) for _ in range(int(rng.integers(1, 6)))))
        for _ in range(7)]
    model, lam = b.selector.model, b.selector.lams[-1]
    alpha = eager.hog_alpha(model)
    assert alpha > 0
    q = encode_queries(b, sketches, model, canvas, lam, alpha, bs=3)
    if canvas is None:
        assert len(set(q.choice.canvases)) > 1 or len(b.sketch[model].canvas_sizes) == 1
    for i, sk in enumerate(sketches):
        res = eager.retrieve(sk, k=2, canvas="auto" if canvas is None else canvas, model=model, lam=lam)
        assert q.choice.canvases[i] == res.canvas
        assert q.choice.probs[i] == pytest.approx(res.canvas_probs) if res.canvas_probs else q.choice.probs[i] is None
        assert q.choice.flops[i] == round(res.selector_gflops * 1e9)
        np.testing.assert_allclose(q.encoded.embeddings[i], res.embedding, atol=1e-5)
        np.testing.assert_allclose(q.vectors[i], eager.query_vector(sk, res.embedding, alpha), atol=1e-5)
        # and the plain per-sketch computation: selector on the unpadded sequence, one render, encoder, HOG
        br, c = b.sketch[model], res.canvas
        if canvas is None and not sk.is_raster:
            seq = stroke_sequence(sk)
            with torch.inference_mode():
                logits = b.selector.policy(torch.from_numpy(seq)[None], torch.tensor([len(seq)]), torch.tensor([lam]))[0]
            assert c == br.canvas_sizes[int(logits.argmax())]
            assert q.choice.flops[i] == selector_flops(b.selector.policy, len(seq))
        with torch.inference_mode():
            e = br.encoder(ink_to_tensor(render_sketch(sk, c, b.render)), br.canvas_index(c))[0].numpy()
        h = hog_descriptor(render_sketch(sk, b.hog.size, b.render), b.hog)
        np.testing.assert_allclose(q.vectors[i], np.concatenate([e, alpha * h]), atol=1e-5)
    # the padded batch the selector reads holds each sequence, zeros after its length
    seqs = [stroke_sequence(s) for s in sketches if not s.is_raster]
    x, lens = pad_sequences(seqs)
    assert x.shape == (len(seqs), max(map(len, seqs)), 5) and lens.tolist() == [len(s) for s in seqs]
    for row, s in zip(x, seqs, strict=True):
        assert torch.equal(row[: len(s)], torch.from_numpy(s)) and not row[len(s):].any()
