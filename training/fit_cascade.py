"""Fit the confidence cascade (:mod:`sketchdown.bundles.cascade`) of a weight set on ChairV2 validation.

For the weight set's student, every validation sketch and its ink prefixes are searched among the
validation photos at each stage's canvas (:func:`sketchdown.eval.evaluate.stage_rankings`), with the HOG
fused and with the network alone. Per lambda_F the stop margins maximise

    mean(top-1 is the true photo) - lambda_F * mean(FLOPs of every pass run) / FLOPs(last stage)

over a grid of margin quantiles (ties go to the cheaper cascade). ``--folds`` cross-validation by photo
reports each lambda_F held out, beside every fixed canvas, and picks the default lambda_F: the largest whose
held-out Acc@1 (fused, all samples) stays within ``--tolerance`` points of the best fixed canvas.
Writes ``OUT/cascade.json`` (the manifest component and the report); ``--apply DIR`` adds the cascade
to the weight set in DIR (its manifest, with the report under ``provenance.cascade``).

    python -m training.fit_cascade --weights weights/default --out runs/cascade --apply weights/default
    python -m training.fit_cascade --smoke --weights W --out /tmp/cascade
"""

from __future__ import annotations

import itertools
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from sketchdown.bundles.bundle import ModelBundle, load_bundle
from sketchdown.bundles.cascade import margins, stage_costs, stop_stages
from sketchdown.bundles.manifest import CascadeComponent, load_manifest
from sketchdown.bundles.weights import write_manifest
from sketchdown.eval.data import PairedDataset, load_chairv2
from sketchdown.eval.evaluate import stage_rankings
from sketchdown.eval.rows import CASCADE_TAG

from .checkpoints import write_run_info
from .common import split_val
from .configs import apply_smoke, parse_config
from .env import set_threads
from .synthetic import synthetic_source


@dataclass
class CascadeConfig:
    weights: str = "weights/default"
    out: str = "runs/cascade"
    apply: str = ""  # a weight set folder to add the cascade to ("" : only write OUT/cascade.json)
    model: str = ""  # the sketch branch ("" : the selector's, else the first)
    data_root: str | None = None
    n_val: int = 40
    stages: tuple[int, ...] = (32, 64, 128)
    lams: tuple[float, ...] = (0.0, 0.01, 0.02, 0.05, 0.1)
    grid: int = 25  # margin quantiles tried per stage
    folds: int = 4
    tolerance: float = 0.5  # default lambda_F: held-out Acc@1 within this many points of the best fixed canvas
    prefix_steps: int = 10
    seed: int = 0
    smoke: bool = False


@dataclass
class Table:
    """Per sample (Q) and stage (S): whether top-1 is the true photo, the ranking's margin; the photo
    (fold groups) and whether the sample is a whole sketch."""

    ok: np.ndarray  # (Q, S) bool
    margin: np.ndarray  # (Q, S) float
    photo: np.ndarray  # (Q,) int
    complete: np.ndarray  # (Q,) bool

    def take(self, rows: np.ndarray) -> Table:
        return Table(self.ok[rows], self.margin[rows], self.photo[rows], self.complete[rows])


def make_table(sims: dict[int, np.ndarray], true: np.ndarray, complete: np.ndarray, stages: tuple[int, ...]) -> Table:
    ok = np.stack([sims[c].argmax(1) == true for c in stages], 1)
    return Table(ok, np.stack([margins(sims[c]) for c in stages], 1), true, complete)


def outcome(t: Table, thr: tuple[float, ...], cost: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(correct (Q,) bool, FLOPs (Q,), stop stage (Q,)) of the cascade with thresholds ``thr``."""
    stop = stop_stages(t.margin, thr)
    return t.ok[np.arange(len(stop)), stop], cost[stop], stop


def fit_thresholds(t: Table, cost: np.ndarray, lam: float, grid: int) -> tuple[float, ...]:
    """The stop margins maximising accuracy - lam * cost / cost of the last stage alone (exhaustive over
    ``grid`` quantiles per stage plus never-stop; ties go to the cheaper cascade)."""
    s = t.margin.shape[1]
    cands = [np.r_[np.quantile(t.margin[:, i], np.linspace(0, 1, grid)), np.inf] for i in range(s - 1)]
    last = cost[-1] - cost[-2]  # the last stage alone
    best: tuple[float, float, tuple[float, ...]] | None = None
    for thr in itertools.product(*cands):
        ok, fl, _ = outcome(t, thr, cost)
        key = (ok.mean() - lam * fl.mean() / last, -fl.mean())
        if best is None or key > best[:2]:
            best = (*key, tuple(float(x) for x in thr))
    assert best is not None
    return best[2]


def summarise(ok: np.ndarray, fl: np.ndarray, stop: np.ndarray, t: Table, stages: tuple[int, ...]) -> dict:
    return {
        "acc1_all": round(100 * float(ok.mean()), 2), "acc1_full": round(100 * float(ok[t.complete].mean()), 2),
        "gflops": round(float(fl.mean()) / 1e9, 4), "gflops_full": round(float(fl[t.complete].mean()) / 1e9, 4),
        "hist": {str(c): int((stop == i).sum()) for i, c in enumerate(stages)},
    }


def cross_validate(t: Table, cost: np.ndarray, cfg: CascadeConfig) -> dict:
    """Each lambda_F fitted on all folds but one and measured on that one (folds by photo), and every
    fixed canvas, on the same samples."""
    photos = np.unique(t.photo)
    folds = np.array_split(np.random.default_rng(cfg.seed).permutation(photos), cfg.folds)
    out: dict[str, dict] = {}
    for lam in cfg.lams:
        ok, fl, stop = np.zeros(len(t.ok), bool), np.zeros(len(t.ok)), np.zeros(len(t.ok), int)
        for f in folds:
            te = np.isin(t.photo, f)
            thr = fit_thresholds(t.take(~te), cost, lam, cfg.grid)
            ok[te], fl[te], stop[te] = outcome(t.take(te), thr, cost)
        out[f"{lam:g}"] = summarise(ok, fl, stop, t, cfg.stages)
    single = np.diff(np.r_[0, cost])
    for i, c in enumerate(cfg.stages):
        stop = np.full(len(t.ok), i)
        out[f"fixed@{c}"] = summarise(t.ok[:, i], np.full(len(t.ok), single[i], float), stop, t, cfg.stages)
    return out


def default_lam(cv: dict, cfg: CascadeConfig) -> float:
    """The largest lambda_F whose held-out Acc@1 is within ``tolerance`` of the best fixed canvas (else the smallest)."""
    best = max(v["acc1_all"] for k, v in cv.items() if k.startswith("fixed@"))
    ok = [lam for lam in cfg.lams if cv[f"{lam:g}"]["acc1_all"] >= best - cfg.tolerance]
    return max(ok) if ok else min(cfg.lams)


def validation_data(cfg: CascadeConfig) -> PairedDataset:
    if not cfg.smoke:
        return split_val(load_chairv2(cfg.data_root, "train"), cfg.n_val)[1]
    # synthetic shapes drawn as photo files (the photo branch reads files)
    src = synthetic_source(n_photos=8, sketches_per_photo=2)
    folder = Path(cfg.out) / "photos"
    folder.mkdir(parents=True, exist_ok=True)
    photos = []
    for i, ink in enumerate(src.photo_ink):
        p = folder / f"{i}.png"
        Image.fromarray((255 * (1 - np.clip(ink, 0, 1))).astype(np.uint8)).convert("RGB").save(p)
        photos.append(p)
    d = src.data
    return PairedDataset(d.name, d.sketches, photos, d.photo_labels)


def fit(bundle: ModelBundle, data: PairedDataset, cfg: CascadeConfig) -> tuple[CascadeComponent, dict]:
    """The cascade component for ``bundle`` and its report (per mode: thresholds fitted on all of
    ``data`` per lambda_F, cross-validated results, the default lambda_F's rule)."""
    model = cfg.model or bundle.default_model
    b = bundle.sketch[model]
    cost = stage_costs([b.flops(c) for c in cfg.stages])
    tables, report = {}, {}
    for mode, fused in (("fused", True), ("alone", False)):
        if fused and (bundle.hog is None or b.hog_alpha <= 0):
            continue
        sims, true, complete = stage_rankings(bundle, data, model, cfg.stages, fused, prefix_steps=cfg.prefix_steps)
        t = make_table(sims, true, complete, cfg.stages)
        tables[mode] = [fit_thresholds(t, cost, lam, cfg.grid) for lam in cfg.lams]
        report[mode] = {"cv": cross_validate(t, cost, cfg), "samples": len(t.ok), "complete": int(t.complete.sum())}
    main_mode = "fused" if "fused" in tables else "alone"
    lam = default_lam(report[main_mode]["cv"], cfg)
    report["default_lam"] = {"lam": lam, "mode": main_mode, "rule": f"largest lambda_F within {cfg.tolerance} Acc@1 "
                             "(held out, every sample) of the best fixed canvas"}
    comp = CascadeComponent(model, tuple(cfg.stages), tuple(cfg.lams),
                            fused=tuple(tables.get("fused", tables["alone"])), alone=tuple(tables["alone"]), default_lam=lam)
    return comp, report


def apply_to(folder: str, comp: CascadeComponent, report: dict, cfg: CascadeConfig) -> None:
    """Add (or replace) the cascade in the weight set at ``folder``; result rows of an earlier cascade go."""
    m = load_manifest(folder).to_dict()
    for v in (m.get("metrics") or {}).values():
        if isinstance(v, dict) and isinstance(v.get("rows"), list):
            v["rows"] = [r for r in v["rows"] if CASCADE_TAG not in str(r.get("model", ""))]
    m["components"] = {k: v for k, v in m["components"].items() if v.get("role") != "cascade"} | {"cascade": comp.to_dict()}
    m.setdefault("provenance", {})["cascade"] = {"config": asdict(cfg), "report": report}
    write_manifest(folder, m)


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_config(CascadeConfig, argv, __doc__)
    if cfg.smoke:
        cfg = apply_smoke(cfg, stages=(32, 48), lams=(0.0, 0.5), grid=5, folds=2, prefix_steps=2)
    set_threads()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    write_run_info(out, cfg)
    bundle = load_bundle(cfg.weights)
    comp, report = fit(bundle, validation_data(cfg), cfg)
    result = {"component": comp.to_dict(), "report": report}
    (out / "cascade.json").write_text(json.dumps(result, indent=2) + "\n")
    for mode in ("fused", "alone"):
        for k, v in report.get(mode, {}).get("cv", {}).items():
            print(f"{mode:5s} {k:9s} held-out Acc@1 {v['acc1_all']:6.2f} (whole sketches {v['acc1_full']:6.2f}) "
                  f"{v['gflops']:.4f} GFLOPs  {v['hist']}")
    print(f"default lambda_F {report['default_lam']['lam']:g}")
    if cfg.apply:
        apply_to(cfg.apply, comp, report, cfg)
        load_bundle(cfg.apply)  # the written set loads
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
