"""Retraining the selector of a shipped weight set: train_selector on a weight-set folder with K-fold
cross-validation over photos, ``export --base`` swapping only the selector, and ``make_results --reuse``
re-measuring only the rows that used it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from sketchdown.eval.data import PairedDataset, SketchItem
from training import export, make_results, train_selector
from training.checkpoints import load_teacher
from training.synthetic import random_shape
from training.train_selector import photo_folds, pick_report, reward_table, train_policy


def test_photo_folds_partition_photos() -> None:
    true = np.repeat(np.arange(10), 7)[np.random.default_rng(0).permutation(70)]  # 10 photos x 7 samples
    fold = photo_folds(true, 4, seed=3)
    assert fold.shape == (70,) and set(fold.tolist()) == {0, 1, 2, 3}
    for p in range(10):  # every sample of a photo in one fold
        assert len(set(fold[true == p].tolist())) == 1
    per_fold = [len(np.unique(true[fold == f])) for f in range(4)]
    assert sorted(per_fold) == [2, 2, 3, 3]  # round-robin: sizes differ by at most one photo
    assert (photo_folds(true, 4, seed=3) == fold).all()


def test_pick_report_matches_hand_count() -> None:
    r_acc = np.array([[0.5, 1.0], [1.0, 0.2], [0.1, 0.3]], np.float32)
    rank = np.array([[2, 1], [1, 5], [4, 3]], np.int32)
    full = np.array([True, True, False])
    flops = np.array([1e9, 3e9])
    rep = pick_report({0.0: np.array([1, 0, 1])}, r_acc, rank, full, flops, (32, 64))
    row = rep["0.0"]
    assert row["hist"] == {32: 1, 64: 2}
    assert row["r_acc"] == pytest.approx((1.0 + 1.0 + 0.3) / 3, abs=1e-4)
    assert row["acc1_full"] == 100.0 and row["acc1_all"] == pytest.approx(200 / 3, abs=0.01)
    assert row["gflops"] == pytest.approx(7 / 3, abs=1e-4) and row["gflops_full"] == pytest.approx(2.0)
    assert rep["fixed@32"]["acc1_full"] == 50.0 and rep["fixed@64"]["acc1_full"] == 50.0
    assert rep["fixed@64"]["r_acc"] == pytest.approx(0.5, abs=1e-4)


class _FixedEncoder(torch.nn.Module):
    """A 'student' whose embedding of sample i at canvas index c is a fixed table row (no rendering math)."""

    def __init__(self, table: torch.Tensor) -> None:  # (K, N, D)
        super().__init__()
        self.table, self.seen = table, 0

    def forward(self, x: torch.Tensor, canvas_index: int) -> torch.Tensor:
        i = self.seen
        self.seen = (self.seen + len(x)) % self.table.shape[1]
        return self.table[canvas_index, i : i + len(x)]


@pytest.mark.parametrize("category", [False, True])
def test_reward_table_ranks_match_metrics(category: bool) -> None:
    """The selector's rewards rank like the evaluation does (metrics.rank_of_true), for photo indices and
    for category-level masks (any right photo counts), with and without a fused HOG similarity."""
    from sketchdown.eval.metrics import rank_of_true
    from sketchdown.sketch.render import RenderSpec
    from sketchdown.sketch.strokes import from_strokes

    rng = np.random.default_rng(0)
    n, p, d, k = 12, 7, 8, 2
    emb = torch.nn.functional.normalize(torch.from_numpy(rng.normal(size=(k, n, d))).float(), dim=-1)
    photos = torch.nn.functional.normalize(torch.from_numpy(rng.normal(size=(p, d))).float(), dim=-1)
    if category:
        true = np.zeros((n, p), bool)
        true[np.arange(n), rng.integers(0, p, n)] = True
        true[np.arange(n), rng.integers(0, p, n)] = True  # one or two right photos per sample
    else:
        true = rng.integers(0, p, n)
    hog = torch.from_numpy(rng.normal(size=(n, p))).float()
    sketches = [from_strokes([[[0.0, 0.0], [1.0, 1.0]]])] * n
    for alpha in (0.0, 2.0):
        r_acc, rank = reward_table(_FixedEncoder(emb), (32, 64), sketches, true, photos, RenderSpec(), 0.2, 0.5, hog, alpha)
        for ci in range(k):
            sims = (emb[ci] @ photos.T + alpha * hog) / (1 + alpha)
            want = rank_of_true(sims.numpy(), true)
            assert (rank[:, ci] == want).all()
            assert (r_acc[:, ci] <= 1.0 / want + 1e-6).all()  # 1/rank minus a non-negative hinge


def test_train_policy_weighs_sources_equally() -> None:
    """Two sources wanting opposite canvases: 90 samples gain 1 from canvas 0, 10 samples gain 5 from
    canvas 1. Summed over samples canvas 0 wins (90 vs 50); with each source weighing the same, its mean
    reward decides and canvas 1 wins (5 vs 1)."""
    cfg = train_selector.SelectorConfig(steps=60, batch=100, lr=5e-2, estimator="expected",
                                        entropy=0.0, entropy_final=0.0, hidden=4, lam_power=1e6)  # lambda_F = 0
    seqs = [np.zeros((2, 5), np.float32)] * 100  # identical inputs: the policy can only learn a prior
    r_acc = np.zeros((100, 2), np.float32)
    r_acc[:90, 0] = 1.0
    r_acc[90:, 1] = 5.0
    source = np.array([0] * 90 + [1] * 10)
    idx = np.arange(100)
    x, lens = torch.zeros(1, 2, 5), torch.tensor([2])

    def p_canvas1(policy: torch.nn.Module) -> float:
        with torch.inference_mode():
            return torch.softmax(policy(x, lens, torch.zeros(1)), -1)[0, 1].item()

    torch.manual_seed(0)
    assert p_canvas1(train_policy(cfg, seqs, r_acc, np.zeros(2), idx, np.random.default_rng(0))) < 0.1
    torch.manual_seed(0)
    assert p_canvas1(train_policy(cfg, seqs, r_acc, np.zeros(2), idx, np.random.default_rng(0), source=source)) > 0.9


def test_load_teacher_from_weight_set(smoke_weights: Path) -> None:
    from sketchdown.bundles.bundle import load_bundle

    sk, ph, cfg, classes = load_teacher(smoke_weights)
    b = load_bundle(smoke_weights)
    for got, want in ((sk, b.full.encoder), (ph, b.photo_encoder)):
        ref = want.state_dict()
        assert all(torch.equal(v, ref[k]) for k, v in got.state_dict().items()) and got.state_dict().keys() == ref.keys()
    assert cfg["canvas"] == b.full.canvas_sizes[0] and cfg["photo_size"] == b.photo_spec.size
    assert classes == b.classes


def _vector_pairs(root: Path, photo_writer) -> PairedDataset:
    """6 photo files and 2 vector sketches each (the selector rows need strokes)."""
    rng = np.random.default_rng(0)
    photos = [photo_writer(root / f"p{i}.jpg", seed=i) for i in range(6)]
    items = [SketchItem(f"s{i}_{k}", random_shape(rng), i) for i in range(6) for k in range(2)]
    return PairedDataset("mine", items, photos, [f"class{i % 3}" for i in range(6)])


def test_selector_swap_end_to_end(smoke_weights: Path, tmp_path: Path, photo_writer, isolated_cache: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    w = tmp_path / "w"
    shutil.copytree(smoke_weights, w)
    data = _vector_pairs(tmp_path / "data", photo_writer)
    monkeypatch.setattr(make_results, "load_dataset", lambda name, **kw: data if name == "mine" else None)
    monkeypatch.setattr(make_results, "library_version", lambda: "tree-under-test")  # clean, whatever the checkout
    results = tmp_path / "RESULTS.md"
    first = make_results.main(["--weights", str(w), "--dataset", "mine", "--prefix-steps", "0",
                               "--results", str(results)])
    assert not any(r.get("reused") for r in first) and any("+selector(" in r["model"] for r in first)

    # a selector trained on the weight set itself (its student, photo encoder and HOG), with 2-fold CV,
    # on validation sketches plus category-level doodles (smoke: synthetic ones)
    rep = train_selector.main(["--smoke", "--student", str(w), "--folds", "2", "--estimator", "expected",
                               "--doodle-variants", "1", "--out", str(tmp_path / "sel")])
    cv = json.loads((tmp_path / "sel" / "cv.json").read_text())
    assert cv["folds"] == 2 and json.loads(json.dumps(rep["cv"])) == cv
    n = cv["samples"]
    cached = np.load(tmp_path / "sel" / "rewards.npz")
    n_doodles = len(cached["rank"]) - n
    assert n_doodles > 0 and set(rep) >= {"doodles", "fixed@32"}
    for key, rows in (("held_out", slice(0, n)), ("held_out_doodles", slice(n, None))):
        for lam in train_selector.SelectorConfig.lams:  # every sample judged once, held out
            assert sum(cv[key][str(lam)]["hist"].values()) == len(cached["rank"][rows])
        for k, c in enumerate((32, 48)):  # fixed canvases: the report against the cached rank table
            want = 100 * float((cached["rank"][rows, k] == 1).mean())
            assert cv[key][f"fixed@{c}"]["acc1_all"] == pytest.approx(want, abs=0.01)

    before = json.loads((w / "manifest.json").read_text())
    export.main(["--base", str(w), "--selector", str(tmp_path / "sel" / "selector.pt"), "--lams", "0,0.05",
                 "--default-lam", "0.05", "--out", str(w)])
    after = json.loads((w / "manifest.json").read_text())
    assert after["files"]["selector.safetensors"] != before["files"]["selector.safetensors"]
    for f in before["files"]:
        if f != "selector.safetensors":  # everything else byte-identical
            assert after["files"][f] == before["files"][f]
    assert len(after["components"]["selector"]["costs"]) == 2  # a trade-off selector: its R_comp per canvas
    assert after["components"]["selector"]["lams"] == [0.0, 0.05] and after["components"]["selector"]["default_lam"] == 0.05
    kept = [r["model"] for r in after["metrics"]["mine"]["rows"]]
    assert kept and not any("+selector(" in m for m in kept)
    assert len(kept) == len([r for r in before["metrics"]["mine"]["rows"] if "+selector(" not in r["model"]])

    second = make_results.main(["--weights", str(w), "--dataset", "mine", "--prefix-steps", "0",
                                "--reuse", "--results", str(results)])
    by_first = {r["model"]: r for r in first}
    for r in second:
        if "+selector(" in r["model"]:
            assert not r.get("reused")  # measured again with the new selector
            assert "(lambda_F=0)" in r["model"] or "(lambda_F=0.05)" in r["model"]  # the new set's lambdas
        else:
            assert r["reused"] and r["acc@1"] == by_first[r["model"]]["acc@1"]
    stored = json.loads((w / "manifest.json").read_text())["metrics"]["mine"]["rows"]
    assert [r["model"] for r in stored] == [r["model"] for r in second] and not any("reused" in r for r in stored)


def test_reuse_needs_the_same_conditions(smoke_weights: Path, tmp_path: Path, photo_writer, isolated_cache: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """--reuse keeps a stored row only if it was measured with the same library code and dataset inputs."""
    from dataclasses import replace

    from sketchdown.bundles.weights import read_manifest, write_manifest

    w = tmp_path / "w"
    shutil.copytree(smoke_weights, w)
    data = _vector_pairs(tmp_path / "data", photo_writer)
    fp = make_results.data_fingerprint(data)
    assert fp == make_results.data_fingerprint(data)  # deterministic
    moved = replace(data, sketches=[replace(data.sketches[0], photo=1), *data.sketches[1:]])
    assert make_results.data_fingerprint(moved) != fp  # a different pairing is a different dataset
    monkeypatch.setattr(make_results, "load_dataset", lambda name, **kw: data)
    monkeypatch.setattr(make_results, "library_version", lambda: "tree-under-test")
    args = ["--weights", str(w), "--dataset", "mine", "--prefix-steps", "0", "--results", str(tmp_path / "R.md")]
    first = make_results.main(args)
    assert {r["measured_with"]["data"] for r in first} == {fp}
    m = read_manifest(w)
    stale = m["metrics"]["mine"]["rows"][0]
    stale["measured_with"] = stale["measured_with"] | {"library": "another-tree"}
    write_manifest(w, m)
    second = make_results.main([*args, "--reuse"])
    assert [r["model"] for r in second] == [r["model"] for r in first]
    assert not second[0].get("reused") and all(r.get("reused") for r in second[1:])
    assert read_manifest(w)["metrics"]["mine"]["rows"][0]["measured_with"] == first[0]["measured_with"]
    monkeypatch.setattr(make_results, "library_version", lambda: "tree-under-test-dirty")
    third = make_results.main([*args, "--reuse"])  # uncommitted code: nothing is reused
    assert not any(r.get("reused") for r in third)


def test_export_base_needs_a_selector(smoke_weights: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        export.main(["--base", str(smoke_weights), "--out", str(tmp_path / "w")])


def test_reuse_on_raster_sketches_leaves_the_manifest_alone(smoke_weights: Path, tmp_path: Path, photo_writer,
                                                            isolated_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The selector has no rows on raster sketches (no strokes): a --reuse run finds nothing missing and
    does not rewrite the manifest (it used to, every time, reordering its JSON)."""
    from sketchdown.sketch.render import render_sketch
    from sketchdown.sketch.strokes import from_raster

    w = tmp_path / "w"
    shutil.copytree(smoke_weights, w)
    vec = _vector_pairs(tmp_path / "data", photo_writer)
    items = [SketchItem(it.name, from_raster((255 * render_sketch(it.sketch, 48)).astype(np.uint8)), it.photo)
             for it in vec.sketches]
    data = PairedDataset("mine", items, vec.photos, vec.photo_labels)
    monkeypatch.setattr(make_results, "load_dataset", lambda name, **kw: data)
    monkeypatch.setattr(make_results, "library_version", lambda: "tree-under-test")
    args = ["--weights", str(w), "--dataset", "mine", "--prefix-steps", "0", "--results", str(tmp_path / "R.md")]
    first = make_results.main(args)
    assert first and not any("+selector(" in r["model"] for r in first)
    before = (w / "manifest.json").read_bytes()
    mtime = (w / "manifest.json").stat().st_mtime_ns
    second = make_results.main([*args, "--reuse"])
    assert all(r.get("reused") for r in second) and [r["model"] for r in second] == [r["model"] for r in first]
    assert (w / "manifest.json").stat().st_mtime_ns == mtime and (w / "manifest.json").read_bytes() == before


def test_only_limits_a_set_to_its_datasets() -> None:
    """make_results --only SET=D1,D2: that set is evaluated on D1 and D2 alone; a misspelt set is an error."""
    assert make_results.parse_only(["chairv2=chairv2", "default=doodles,gallery"], ["default", "chairv2"]) == {
        "chairv2": {"chairv2"}, "default": {"doodles", "gallery"}}
    assert make_results.parse_only([], ["default"]) == {}
    for bad in ("chairv3=chairv2", "chairv2", "chairv2=,"):
        with pytest.raises(SystemExit, match="--only"):
            make_results.parse_only([bad], ["default", "chairv2"])
