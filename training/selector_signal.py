"""Is there a signal a canvas selector could learn? Measured on the selector's own training data.

For a student and the ChairV2 validation samples the selector trains on (every validation sketch at 10
ink-prefix lengths, ranked among the 40 validation photos), this reports:

* Acc@1 per canvas, and the per-sample oracle (the cheapest canvas that reaches the best rank any canvas
  reaches): the gap between them is what a perfect selector could win;
* how well cheap stroke statistics (points, strokes, ink length, ink per extent, points per stroke: what a
  sketch's "abstraction" could mean before any network runs) predict that the next smaller canvas ranks the
  true photo as well as the larger one (Pearson r and ROC AUC per statistic);
* how well the network's own confidence at a small canvas (top-1 minus top-2 cosine) predicts that its
  top-1 is the one the largest canvas returns (ROC AUC): the signal of a cascade that escalates when unsure.

An AUC near 0.5 says the statistic carries no information about which canvas suffices.

    python -m training.selector_signal --student runs/recipe/students/lite0-kd-s0/best.pt \
        --teacher runs/recipe/teacher.pt --out runs/recipe/selector_signal.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from sketchdown.bundles.build import EncoderConfig, build_encoder
from sketchdown.bundles.photo import EdgeCache, PhotoSpec
from sketchdown.sketch.render import RenderSpec
from sketchdown.sketch.strokes import Sketch, stroke_sequence

from .checkpoints import load_checkpoint, load_teacher
from .common import encode_photos, load_sources, sketch_tensor
from .env import set_threads

STATS = ("log_points", "log_strokes", "ink_length", "ink_per_extent", "log_points_per_stroke")


def stroke_stats(sketch: Sketch) -> list[float]:
    """The statistics in ``STATS`` of the selector's own input (the RDP-simplified stroke-5 sequence)."""
    s = stroke_sequence(sketch)
    strokes = float(s[:, 3].sum()) + 1.0
    pos = np.cumsum(s[:, :2], 0)
    extent = float(np.ptp(pos[:, 0]) + np.ptp(pos[:, 1])) + 1e-3
    drawn = np.r_[0.0, s[:-1, 2]]  # a row's offset is drawn when the previous point left the pen down
    ink = float((np.hypot(s[:, 0], s[:, 1]) * drawn).sum())
    return [np.log1p(len(s)), np.log1p(strokes), ink, ink / extent, np.log1p(len(s) / strokes)]


def roc_auc(score: np.ndarray, label: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counting half; 0.5 when a class is empty."""
    pos, neg = score[label], score[~label]
    if not len(pos) or not len(neg):
        return 0.5
    return float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())


@torch.inference_mode()
def similarities(student: torch.nn.Module, canvases: tuple[int, ...], sketches: list[Sketch], photo_emb: torch.Tensor,
                 render: RenderSpec) -> dict[int, np.ndarray]:
    """Cosine similarity (N, P) of every sample to every photo, per canvas."""
    out = {}
    for ci, c in enumerate(canvases):
        e = torch.cat([student(sketch_tensor(sketches[j : j + 64], c, render), ci) for j in range(0, len(sketches), 64)])
        out[c] = (e @ photo_emb.T).numpy()
    return out


def report(sims: dict[int, np.ndarray], true: np.ndarray, full: np.ndarray, stats: np.ndarray, flops: dict[int, float]) -> dict:
    canvases = sorted(sims)
    ranks = np.stack([(s > s[np.arange(len(s)), true][:, None]).sum(1) + 1 for s in (sims[c] for c in canvases)], 1)
    best = ranks.min(1)
    oracle = np.array([int(np.flatnonzero(r == b)[0]) for r, b in zip(ranks, best, strict=True)])
    out: dict = {"samples": len(true), "complete_sketches": int(full.sum()),
                 "acc1_full": {c: round(100 * float((ranks[full, k] == 1).mean()), 2) for k, c in enumerate(canvases)},
                 "oracle": {"acc1_full": round(100 * float((best[full] == 1).mean()), 2),
                            "gflops_full": round(float(np.mean([flops[canvases[k]] for k in oracle[full]])), 4)},
                 "stats": {}, "confidence_auc": {}}
    for k in range(len(canvases) - 1):
        small, large = canvases[k], canvases[k + 1]
        enough = ranks[:, k] <= ranks[:, k + 1]  # the smaller canvas ranks the true photo as well
        out["stats"][f"{small}_as_good_as_{large}"] = {
            "rate": round(float(enough.mean()), 3),
            **{name: {"r": round(float(np.corrcoef(stats[:, j], enough)[0, 1]), 3), "auc": round(roc_auc(stats[:, j], enough), 3)}
               for j, name in enumerate(STATS)}}
        top = np.sort(sims[small], 1)
        same = sims[small].argmax(1) == sims[canvases[-1]].argmax(1)
        out["confidence_auc"][f"{small}_agrees_with_{canvases[-1]}"] = round(roc_auc(top[:, -1] - top[:, -2], same), 3)
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--student", required=True, help="a distill checkpoint")
    p.add_argument("--teacher", required=True, help="its teacher checkpoint (the photo encoder)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--prefix-steps", type=int, default=10)
    p.add_argument("--out", default=None, help="write the report here as JSON")
    a = p.parse_args(argv)
    set_threads()
    from sketchdown.bundles.flops import encoder_flops

    ck = load_checkpoint(Path(a.student))
    cfg = json.loads(ck["config"])
    student = build_encoder(EncoderConfig(**json.loads(ck["encoder"])), weights=ck["student"]).eval()
    _, photo_enc, tcfg, _ = load_teacher(a.teacher)
    _, val = load_sources(a.data_root, False, cfg["n_val"], EdgeCache())
    render = RenderSpec()
    sketches, true, full = [], [], []
    for i in range(len(val.data.sketches)):
        for f in np.linspace(1.0 / a.prefix_steps, 1.0, a.prefix_steps):
            sketches.append(val.sketch(i).prefix_ink(float(f)))
            true.append(val.data.sketches[i].photo)
            full.append(f == 1.0)
    canvases = tuple(cfg["canvases"])
    sims = similarities(student, canvases, sketches, encode_photos(photo_enc, val.photo_ink, PhotoSpec("hed", tcfg["photo_size"]), render), render)
    flops = {c: encoder_flops(student, c, ci) / 1e9 for ci, c in enumerate(canvases)}
    rep = {"student": a.student, **report(sims, np.array(true), np.array(full), np.array([stroke_stats(s) for s in sketches]), flops)}
    text = json.dumps(rep, indent=1)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")
    print(f"{len(sketches)} samples", file=sys.stderr)
    return rep


if __name__ == "__main__":
    main()
