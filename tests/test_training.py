"""End-to-end smoke runs of every training script (synthetic data, seconds each), resume, device
choice, and data-parallel training under torchrun with 2 gloo processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from training import distill, export, train_selector, train_teacher
from training.checkpoints import load_checkpoint
from training.env import pick_device

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    d = tmp_path_factory.mktemp("pipeline")
    t = train_teacher.main(["--smoke", "--out", str(d / "t")])
    s = distill.main(["--smoke", "--teacher", str(d / "t" / "best.pt"), "--out", str(d / "s")])
    sel = train_selector.main(["--smoke", "--student", str(d / "s" / "best.pt"), "--out", str(d / "sel")])
    w = export.main(["--name", "smoke", "--teacher", str(d / "t" / "best.pt"), "--student", f"student={d / 's' / 'best.pt'}",
                     "--selector", str(d / "sel" / "selector.pt"), "--out", str(d / "w")])
    return d, t, s, sel, w


def test_pipeline_produces_loadable_weights(pipeline):
    from sketchdown.bundles.bundle import load_bundle

    d, t, s, sel, w = pipeline
    assert t["steps"] == 4 and len(t["history"]) == 2
    assert s["steps"] == 3 and "acc@1@32" in s["history"][-1]
    assert set(sel) >= {str(lam) for lam in train_selector.SelectorConfig.lams} | {"fixed@32", "fixed@48"}
    b = load_bundle(w)
    assert set(b.sketch) == {"teacher", "student"} and b.full.name == "teacher"
    assert b.selector is not None and b.selector.model == "student"
    assert b.sketch["student"].canvas_sizes == (32, 48)
    m = json.loads((w / "manifest.json").read_text())
    assert len(m["provenance"]["git_sha"]) >= 7  # config + git SHA travel with the weights
    run = json.loads((d / "t" / "run.json").read_text())
    assert run["config"]["smoke"] is True and "git_sha" in run


def test_resume_continues_from_checkpoint(tmp_path):
    out = tmp_path / "t"
    train_teacher.main(["--smoke", "--out", str(out)])
    ck = load_checkpoint(out / "last.pt")
    assert ck["step"] == 4
    # asking for more steps resumes at 4, not 0
    r = train_teacher.main(["--smoke", "--out", str(out), "--steps", "6"])
    assert r["steps"] == 6
    assert [h["step"] for h in r["history"]] == [2, 4, 6]  # the history before the resume was kept


def test_device_auto_logic(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto").type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto").type == "cuda"
    assert pick_device("cpu").type == "cpu"


@pytest.mark.timeout(300)
def test_torchrun_two_process_ddp(tmp_path):
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "training.train_teacher", "--smoke", "--out", str(out)]
    p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=280)
    assert p.returncode == 0, p.stderr[-2000:]
    ck = load_checkpoint(out / "last.pt")
    assert ck["step"] == 4


def test_exported_student_has_the_teachers_category_head(pipeline):
    from sketchdown.bundles.bundle import load_bundle

    *_, w = pipeline
    b = load_bundle(w)
    assert b.classes == ["class0", "class1", "class2"]
    assert b.sketch["student"].encoder.classifier.out_features == 3


def test_recognition_students_kd_and_direct(tmp_path):
    from sketchdown.bundles.build import EncoderConfig, build_encoder
    from sketchdown.eval.evaluate import evaluate_recognition
    from training import train_recognition
    from training.synthetic import synthetic_source

    cache = tmp_path / "logits.pt"
    for arch, kd in (("mobilenet_v2_prune1", True), ("mobilenet_v2_prune2", False)):
        out = tmp_path / f"{arch}-{kd}"
        args = ["--smoke", "--arch", arch, "--out", str(out), "--logits-cache", str(cache)] + ([] if kd else ["--no-kd"])
        r = train_recognition.main(args)
        assert r["steps"] == 4 and (out / "final.pt").is_file()
        ck = load_checkpoint(out / "final.pt")
        enc = build_encoder(EncoderConfig(**json.loads(ck["encoder"])), weights=ck["model"]).eval()
        rep = evaluate_recognition(enc, json.loads(ck["classes"]), synthetic_source(6, seed=3).data, 48)
        assert 0 <= rep["accuracy"] <= 100 and rep["sketches"] == 18 and rep["classes"] == 3
    assert load_checkpoint(cache)["max_per_source"] == 1600  # the KD run wrote the shared teacher cache


def test_teacher_init_copies_category_rows_by_name(tmp_path):
    t = tmp_path / "t"
    train_teacher.main(["--smoke", "--out", str(t)])
    cfg = train_teacher.TeacherConfig(arch="lite0")
    sk, ph = train_teacher.build_teacher(cfg, pretrained=False, num_classes=4)
    train_teacher.init_from(sk, ph, str(t / "best.pt"), ["class2", "new", "class0", "class1"])
    old = load_checkpoint(t / "best.pt")["sketch"]
    assert torch.equal(sk.classifier.weight[0], old["classifier.weight"][2].float())
    assert torch.equal(sk.classifier.weight[2], old["classifier.weight"][0].float())


def test_teacher_init_from_a_teacher_without_category_head(tmp_path):
    """--init from a --cls-weight 0 teacher (no classifier rows) loads both branches as they were saved."""
    t = tmp_path / "t"
    train_teacher.main(["--smoke", "--cls-weight", "0", "--out", str(t)])
    sk, ph = train_teacher.build_teacher(train_teacher.TeacherConfig(arch="lite0"), pretrained=False, num_classes=0)
    train_teacher.init_from(sk, ph, str(t / "best.pt"), ["class0"])
    old = load_checkpoint(t / "best.pt")
    assert torch.equal(sk.proj.weight, old["sketch"]["proj.weight"].float())
    assert torch.equal(ph.proj.weight, old["photo"]["proj.weight"].float())


def test_fit_fusion_grid_picks_the_alpha_that_ranks_best() -> None:
    """fit_fusion.fit on hand-made similarities: the network ranks photo 1 first for every sketch, the HOG
    ranks the true photo 0 first; any alpha that lets the HOG win is best, and the first such is kept."""
    import numpy as np

    from training.fit_fusion import fit, parse_specs

    true = np.zeros(4, int)
    cnn = np.tile(np.array([0.5, 0.9, 0.1]), (4, 1))  # photo 1 wins by 0.4 on the network alone
    hog_good = np.tile(np.array([0.9, 0.5, 0.5]), (4, 1))  # HOG favours the true photo by 0.4
    hog_flat = np.full((4, 3), 0.5)
    key, alphas, table = fit({"student": [cnn]}, {"flat": hog_flat, "good": hog_good}, true, (0.0, 0.5, 2.0, 4.0))
    # alpha 0.5: 0.95 vs 1.15, photo 1 still first; alpha 2: 2.3 vs 1.9, the true photo first
    assert key == "good" and alphas == {"student": 2.0}
    assert {r["alpha"]: r["acc@1"] for r in table if r["spec"] == "good"} == {0.0: 0.0, 0.5: 0.0, 2.0: 100.0, 4.0: 100.0}
    specs = parse_specs(64, "16/2 16,32/3,4")
    assert specs["16,32/3,4"].cells == (16, 32) and specs["16,32/3,4"].blurs == (3.0, 4.0) and specs["16/2"].size == 64


def test_distill_on_the_fused_score_trains_and_records_its_fusion(tmp_path):
    from training import fit_fusion

    fit_fusion.main(["--smoke", "--out", str(tmp_path / "F")])
    fz = tmp_path / "F" / "fusion.json"
    r = distill.main(["--smoke", "--fusion", str(fz), "--fusion-branch", "teacher", "--out", str(tmp_path / "S")])
    assert r["steps"] == 3 and "acc@1@32" in r["history"][-1]
    run = json.loads((tmp_path / "S" / "run.json").read_text())
    assert run["config"]["fusion"] == str(fz) and run["config"]["fusion_branch"] == "teacher"
    # a fusion file whose branch has no alpha trains on the network's score alone, without error
    r0 = distill.main(["--smoke", "--fusion", str(fz), "--fusion-branch", "nobody", "--out", str(tmp_path / "S0")])
    assert r0["steps"] == 3
    # fused on some sources only, and selected on a category-level validation split too
    rd = distill.main(["--smoke", "--fusion", str(fz), "--fusion-branch", "teacher", "--fusion-sources", "synthetic",
                       "--doodle-val", "--out", str(tmp_path / "SD")])
    h = rd["history"][-1]
    per_canvas = [(h[f"acc@1@{c}"] + h[f"acc@10@{c}"] + h[f"doodles-val@5@{c}"] + h[f"doodles-val@10@{c}"]) / 2 for c in (32, 48)]
    assert h["score"] == pytest.approx(sum(per_canvas), abs=0.02)
    with pytest.raises(ValueError, match="names none"):
        distill.main(["--smoke", "--fusion", str(fz), "--fusion-sources", "nowhere", "--out", str(tmp_path / "SX")])


def test_distill_fine_tunes_a_shipped_weight_set(smoke_weights, tmp_path):
    """--teacher, --init and --fusion all accept a weight-set folder: the student starts from the set's
    sketch branch (a zero learning rate leaves its convolutions exactly as shipped) and trains against
    the set's own HOG spec and alpha."""
    from sketchdown.bundles.bundle import load_bundle
    from training.checkpoints import load_fusion, load_student_state

    b = load_bundle(smoke_weights)
    ref = b.sketch["student"].encoder.state_dict()
    got = load_student_state(smoke_weights)
    assert got.keys() == ref.keys() and all(torch.equal(v, ref[k]) for k, v in got.items())
    spec, alpha, _ = load_fusion(smoke_weights, "student")
    assert b.hog is not None and spec == b.hog and alpha == b.sketch["student"].hog_alpha > 0
    with pytest.raises(SystemExit, match="no sketch branch"):
        load_student_state(smoke_weights, "nobody")

    out = tmp_path / "S"
    r = distill.main(["--smoke", "--teacher", str(smoke_weights), "--init", str(smoke_weights), "--fusion", str(smoke_weights),
                      "--lr", "0", "--out", str(out)])
    assert r["steps"] == 3
    trained = load_checkpoint(out / "last.pt")["student"]
    convs = [k for k, v in ref.items() if k.endswith("weight") and v.ndim == 4]
    assert convs and all(torch.equal(trained[k], ref[k]) for k in convs)
    assert json.loads((out / "run.json").read_text())["config"]["init"] == str(smoke_weights)

    # ... and exports beside the set's own teacher and photo encoder, read from the folder
    w = export.main(["--name", "ft", "--teacher", str(smoke_weights), "--student", f"student={out / 'last.pt'}",
                     "--out", str(tmp_path / "w")])
    nb = load_bundle(w)
    for got, want in ((nb.photo_encoder, b.photo_encoder), (nb.full.encoder, b.full.encoder)):
        ref_sd = want.state_dict()
        assert all(torch.equal(v, ref_sd[k]) for k, v in got.state_dict().items())
    assert nb.classes == b.classes and nb.photo_spec == b.photo_spec
    for f in ("photo.safetensors", "teacher.safetensors"):  # copied, not re-encoded
        assert (w / f).read_bytes() == (smoke_weights / f).read_bytes()
    assert json.loads((w / "manifest.json").read_text())["provenance"]["teacher"]["config"] == \
        json.loads((smoke_weights / "manifest.json").read_text())["provenance"]["teacher"]["config"]


def test_fit_heads_against_a_shipped_teacher(smoke_weights, tmp_path):
    """With a weight-set folder as teacher, fit_heads keeps that teacher's head (no teacher.pt) and uses
    its logits as soft targets: the reported teacher accuracy equals the shipped teacher's own predictions."""
    from sketchdown.bundles.bundle import load_bundle
    from training import fit_heads
    from training.common import sketch_tensor
    from training.synthetic import synthetic_source

    s = distill.main(["--smoke", "--teacher", str(smoke_weights), "--init", str(smoke_weights), "--out", str(tmp_path / "S")])
    assert s["steps"] == 3
    ck = tmp_path / "S" / "last.pt"
    r = fit_heads.main(["--smoke", "--teacher", str(smoke_weights), "--distilled", str(ck), "--out", str(tmp_path / "H")])
    assert not (tmp_path / "H" / "teacher.pt").exists()
    b = load_bundle(smoke_weights)
    src = synthetic_source(12, seed=1)
    sk = [src.sketch(i) for i in range(len(src.data.sketches))]
    y = torch.tensor([b.classes.index(src.data.photo_labels[it.photo]) for it in src.data.sketches])
    with torch.no_grad():
        _, logits = b.full.encoder.eval().forward_with_logits(sketch_tensor(sk, b.full.canvas_sizes[0], b.render))
    assert r["teacher_train_acc"] == pytest.approx(float((logits.argmax(-1) == y).float().mean()), abs=1e-6)
    head = load_checkpoint(tmp_path / "H" / "S.pt")
    assert json.loads(head["classes"]) == b.classes and json.loads(head["heads"]) == {"refit": "fit_heads", "kd": True}
    assert head["student"]["classifier.weight"].shape[0] == len(b.classes)


def test_fit_fusion_fits_a_category_alpha_on_doodle_validation(tmp_path):
    from training import fit_fusion

    r = fit_fusion.main(["--smoke", "--doodle-val", "--out", str(tmp_path / "F")])
    assert r["alpha_category"] == {"teacher": 0.5} and r["alpha"] == {"teacher": 1.0}
    assert r["val_category"]["chosen"] and all("acc@5" in row for row in r["grid_category"])


def test_git_sha_marks_uncommitted_changes(tmp_path, monkeypatch):
    """Every run records the code it ran: HEAD's SHA, and "-dirty" when tracked files differ from HEAD."""
    from training import env

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    git("init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git("add", "a.py")
    git("commit", "-q", "-m", "one")
    monkeypatch.setattr(env, "REPO", tmp_path)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert env.git_sha() == head
    (tmp_path / "new.txt").write_text("untracked files do not count\n")
    assert env.git_sha() == head
    (tmp_path / "a.py").write_text("x = 2\n")
    assert env.git_sha() == head + "-dirty"


def test_default_lam_rule_against_a_hand_made_cv_table():
    held = {"0.0": 64.1, "0.05": 63.4, "0.1": 61.8, "0.2": 62.3}
    cv = {"held_out": {k: {"acc1_full": v} for k, v in held.items()}}
    # within 2 of 64.1: 0, 0.05 and 0.2 (62.3 >= 62.1), not 0.1 (61.8); the rule takes the largest
    assert export.lam_within(cv, (0.0, 0.05, 0.1, 0.2), 2.0) == 0.2
    assert export.lam_within(cv, (0.0, 0.05, 0.1, 0.2), 1.0) == 0.05
    assert export.lam_within(cv, (0.0, 0.05, 0.1), 0.0) == 0.0
    # a CV that also held out doodles: their Acc@5 must stay within the tolerance as well
    doodles = {"0.0": 48.5, "0.05": 49.2, "0.1": 48.5, "0.2": 45.9}
    cv["held_out_doodles"] = {k: {"acc5_full": v} for k, v in doodles.items()}
    assert export.lam_within(cv, (0.0, 0.05, 0.1, 0.2), 2.0) == 0.05  # 0.2 now fails on doodles (45.9 < 46.5)
    assert export.lam_within(cv, (0.0, 0.05, 0.1, 0.2), 3.0) == 0.2


def test_reproduce_script_runs_every_stage_and_resumes(tmp_path):
    from sketchdown.bundles.bundle import load_bundle

    r = tmp_path / "repro"
    env = dict(os.environ, SMOKE="1")
    run = lambda: subprocess.run(["bash", "training/reproduce.sh", str(r)], cwd=REPO, env=env,  # noqa: E731
                                 capture_output=True, text=True, timeout=600)
    p = run()
    assert p.returncode == 0, p.stderr[-3000:]
    stages = ["teacher", "fusion_teacher", "student", "student_nokd", "fusion", "selector", "heads", "export"]
    assert all((r / f"{s}.done").is_file() for s in stages)
    b = load_bundle(r / "weights")
    assert set(b.sketch) == {"teacher", "student", "student-nokd"} and b.selector is not None
    m = json.loads((r / "weights" / "manifest.json").read_text())
    cv = json.loads((r / "selector" / "cv.json").read_text())
    lams = m["components"]["selector"]["lams"]
    assert m["components"]["selector"]["default_lam"] == export.lam_within(cv, tuple(lams), 2.0)
    # the students trained on the teacher's fused score: the run config names that fusion file
    assert json.loads((r / "student" / "run.json").read_text())["config"]["fusion"].endswith("fusion_teacher/fusion.json")
    # the shipped heads are the refit ones (fit_heads' report names every model it refit)
    assert {"teacher_train_acc", "student_train_acc", "student_nokd_train_acc"} <= set(json.loads((r / "heads" / "report.json").read_text()))
    refit = load_checkpoint(r / "heads" / "student.pt")["student"]["classifier.weight"]
    torch.testing.assert_close(b.sketch["student"].encoder.classifier.weight.float(), refit.float(), atol=2e-3, rtol=1e-2)
    before = (r / "weights" / "manifest.json").read_bytes()
    p2 = run()  # a second run skips every finished stage and changes nothing
    assert p2.returncode == 0, p2.stderr[-3000:]
    assert p2.stderr.count("skipped") == len(stages)
    assert (r / "weights" / "manifest.json").read_bytes() == before


def test_teacher_rows_survive_a_student_swap_only_when_the_teacher_is_unchanged():
    from sketchdown.bundles.manifest import Manifest

    def manifest(teacher_sha: str = "t1", alpha: float = 2.0, hog_cells: int = 16, name: str = "default",
                 metrics: bool = True) -> Manifest:
        rows = [{"model": "default/teacher@224", "acc@1": 30.0}, {"model": "default/teacher@224+HOG", "acc@1": 50.0},
                {"model": "default/student@128", "acc@1": 17.0}]
        enc = {"arch": "lite2", "embed_dim": 256, "num_canvases": 1, "num_classes": 0}
        return Manifest.from_dict({
            "format": "sketchdown/1", "name": name, "render": {"line_width": 3.0, "margin": 0.06, "ink_threshold": 0.12},
            "hog": {"size": 128, "cells": [hog_cells], "blurs": [3.0], "bins": 9},
            "files": {"teacher.safetensors": teacher_sha, "photo.safetensors": "p1", "student.safetensors": "s1"},
            "components": {"teacher": {"file": "teacher.safetensors", "role": "sketch", "hog_alpha": alpha,
                                       "hog_alpha_category": alpha, "encoder": enc, "canvas_sizes": [224]},
                           "photo": {"file": "photo.safetensors", "encoder": enc,
                                     "photo": {"input": "hed", "size": 224, "edge_threshold": None}}},
            "metrics": {"chairv2-test": {"rows": rows}, "doodles-heldout": {"rows": rows[2:]}} if metrics else {}}, "test")

    kept = export.teacher_rows(manifest(), manifest(metrics=False))
    assert kept == {"chairv2-test": {"rows": manifest().metrics["chairv2-test"]["rows"][:2]}}
    # any change to what the teacher's rows measured drops them all
    for changed in (manifest(teacher_sha="t2"), manifest(alpha=1.5), manifest(hog_cells=32), manifest(name="other")):
        assert export.teacher_rows(manifest(), changed) == {}
