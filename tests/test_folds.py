"""Held-out training folds: a student trained with ``distill --holdout f/k`` never draws fold f's photos, and the
canvas selector takes those photos' sketches, ranked by that student, as extra held-out samples."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from training import distill, train_teacher
from training.checkpoints import load_checkpoint, save_checkpoint
from training.common import photo_fold_of, sample_batch, subset_source
from training.selector_data import FOLD_GROUP, reward_table
from training.synthetic import category_level, synthetic_source


def test_photo_fold_of_deals_every_photo_to_one_fold() -> None:
    for n, k in [(260, 4), (12, 2), (7, 3)]:
        fold = photo_fold_of(n, k)
        sizes = np.bincount(fold, minlength=k)
        assert fold.shape == (n,) and sizes.sum() == n and sizes.max() - sizes.min() <= 1
        assert np.array_equal(fold, photo_fold_of(n, k))  # a function of (n, k) alone: distill and selector agree
    assert not np.array_equal(photo_fold_of(260, 4), photo_fold_of(260, 5) % 4)


def test_held_out_photos_are_never_drawn() -> None:
    src = synthetic_source(12, seed=1)
    distill.hold(src, 1, 3)
    held = set(np.flatnonzero(photo_fold_of(12, 3) == 1).tolist())
    assert src.train_photos is not None and held.isdisjoint(src.train_photos) and len(src.train_photos) == 8
    rng = np.random.default_rng(0)
    drawn = set()
    for _ in range(40):
        b = sample_batch(src, 4, rng, {})
        drawn |= set(b.photo_ids)
    assert drawn == set(src.train_photos)  # every kept photo, none of the held-out ones
    with pytest.raises(SystemExit, match="category-level"):
        distill.hold(category_level(synthetic_source(6, seed=3)), 0, 2)
    with pytest.raises(SystemExit, match="FOLD/FOLDS"):
        distill.main(["--smoke", "--holdout", "2", "--out", "/nonexistent"])


def test_subset_source_keeps_its_photos_sketches_and_edge_maps() -> None:
    src = synthetic_source(12, seed=1)
    sub = subset_source(src, [5, 2], "part")
    names = lambda s, p: sorted(s.data.sketches[i].name for i in s.sketches_by_photo[p])  # noqa: E731
    assert names(sub, 0) == names(src, 5) and names(sub, 1) == names(src, 2)
    assert len(sub.data.sketches) == len(src.sketches_by_photo[5]) + len(src.sketches_by_photo[2])
    assert sub.photo_ink[0] is src.photo_ink[5] and sub.photo_ink[1] is src.photo_ink[2] and sub.data.name == "part"


def test_selector_takes_fold_students_rankings_of_their_held_out_sketches(tmp_path) -> None:
    from sketchdown.sketch.render import RenderSpec
    from training.common import encode_photos
    from training.runs import load_student, teacher_for
    from training.selector_data import prepare
    from training.train_selector import SelectorConfig, main

    train_teacher.main(["--smoke", "--out", str(tmp_path / "T")])  # a checkpoint: the photo encoder is reloadable
    teacher = str(tmp_path / "T" / "best.pt")
    for f in (0, 1):
        distill.main(["--smoke", "--teacher", teacher, "--holdout", f"{f}/2", "--out", str(tmp_path / f"f{f}")])
    folds = ",".join(str(tmp_path / f"f{f}" / "best.pt") for f in (0, 1))
    cfg = SelectorConfig(out=str(tmp_path / "sel"), fold_students=folds, smoke=True, variants=1, prefix_steps=2)
    (tmp_path / "sel").mkdir()
    smp = prepare(cfg, np.random.default_rng(0))
    assert smp.sources == ("chairv2", "chairv2-train")
    train = smp.source == 1
    assert train.sum() == 2 * len(synthetic_source(12, seed=1).data.sketches)  # 2 prefixes of every training sketch
    assert (smp.group[train] >= FOLD_GROUP).all() and (smp.group[~train] < FOLD_GROUP).all()
    assert (smp.domain == 0).all()  # weighed per sample like validation's

    # fold 0's rows are fold 0's student ranking fold 0's photos' sketches (a direct reference)
    src = synthetic_source(12, seed=1)
    keep = np.flatnonzero(photo_fold_of(12, 2) == 0).tolist()
    sub = subset_source(src, keep, "x")
    student, canvases, _ = load_student(tmp_path / "f0" / "best.pt")
    _, photo_enc, _, pspec, _ = teacher_for(teacher, False)
    render = RenderSpec()
    sketches = [sub.sketch(i).prefix_ink(float(p)) for i in range(len(sub.data.sketches)) for p in (0.5, 1.0)]
    with torch.inference_mode():
        pe = encode_photos(photo_enc.eval(), sub.photo_ink, pspec, render)
        r_acc, rank = reward_table(student, canvases, sketches, np.repeat(sub.data.true(), 2), pe, render,
                                   cfg.margin, cfg.triplet_weight)
    rows = np.flatnonzero(train)[: len(sketches)]
    assert np.array_equal(smp.rank[rows], rank) and np.allclose(smp.r_acc[rows], r_acc, atol=1e-6)

    report = main(["--smoke", "--fold-students", folds, "--out", str(tmp_path / "sel2")])
    assert "held_out_chairv2-train" in report["cv"] and "chairv2-train" in report
    ck = load_checkpoint(tmp_path / "f0" / "best.pt")
    save_checkpoint(tmp_path / "plain.pt", **{**ck, "config": json.dumps({**json.loads(ck["config"]), "holdout": ""})})
    with pytest.raises(SystemExit, match="not trained with --holdout"):
        main(["--smoke", "--fold-students", str(tmp_path / "plain.pt"), "--out", str(tmp_path / "sel3")])
