"""Train the RL canvas selector with REINFORCE on the frozen student.

The policy (a 1-layer GRU over the RDP-simplified stroke-5 sequence, conditioned on lambda_F) picks
one of the student's K canvases per sketch or partial sketch. Reward for canvas c:
    R = lambda_F * R_comp + (1 - lambda_F) * R_acc
    R_acc = 1 / rank(true photo) - triplet hinge,   R_comp = -(F_c - F_min) / (F_max - F_min)
R_comp spans [-1, 0] while R_acc differs by ~0.1-0.3 between canvases, so the interesting lambda_F
are small: lambda_F is drawn as u ** 3 (u uniform), putting most samples where the trade-off bites.
Because the student is frozen, R for every (sample, canvas) is computed once up front, on held-out
validation sketches (the student never trained on them) at 10 prefix lengths x a few augmented
variants; REINFORCE then samples canvases from the policy, with the policy's expected reward as
baseline. lambda_F is drawn per sample, so one policy serves the app's whole knob.

The policy builds the reward's own trade-off into its logits, (1 - lambda_F) * head(GRU) + lambda_F * tau *
R_comp, so the head only learns what the sketch needs. Feeding lambda_F as one more input of the linear head
instead let the large-lambda_F samples, whose reward gaps are up to lambda_F against ~0.03 for accuracy,
own the gradient: the policy saturated onto the cheapest canvases for every lambda_F.

The ranks are taken in a gallery of the validation photos plus ``distractors`` training photos (100
in all, the test split's size): among the 40 validation photos alone small canvases ranked well
enough that the first selector sent too many test sketches to 32 px. Students trained longer on those
training photos rank them too high, which a test gallery (unseen photos only) never asks about: the
shipped selectors use ``--distractors 0``, the default (docs/experiments.md, weights/default v2). With ``--fusion`` (from
``fit_fusion``) the rewards use the fused score the app searches with, cos + alpha * cos(HOG).

Those samples are also the only data the policy is judged on, and with 131 sketches a GRU can learn
which canvas happened to win for each one (one such policy beat a fixed 128 px on its own samples at a
quarter of the FLOPs, then lost 3 Acc@1 to 128 px on test). ``--folds K`` first measures what the
recipe does on sketches it never saw: K folds over the validation *photos*, a policy trained on the
other folds picks canvases for each held-out fold, and ``cv.json`` reports the pooled held-out reward,
Acc@1 of the complete sketches and FLOPs per lambda_F next to every fixed canvas. Recipes (steps,
hidden size, weight decay, entropy) are compared on that report, never on test.

``--doodle-variants N`` adds the held-out doodle validation split (Quick, Draw! doodles 64..79 of each
kind: the student selected on them, never trained on them) as category-level samples, ranked among the
default gallery's training photos with the weight set's category-level HOG weight: any photo of the
doodle's kind counts. ChairV2 validation (131 sketches of one kind) teaches the policy nothing about
the abstract drawings the app's gallery mostly gets, and those need larger canvases
(weights/default with its category-level HOG weight: doodle validation Acc@5 30 at 32 px, 40 at 96 px).
The two sources weigh equally in the loss; folds split the doodles by kind, and ``cv.json`` reports
each source on its own.

``--fold-students a.pt,b.pt,...`` adds ChairV2 *training* sketches: each checkpoint was trained by ``distill
--holdout f/k`` without the photos of fold f, so its rankings of those photos' sketches (among those photos) are
held out like validation's, from a student of the same recipe. With k folds every training sketch is a sample,
~6x validation's 131; they weigh per sample like validation's, their photos are CV groups of their own, and
``cv.json`` reports them as ``held_out_chairv2-train`` beside ``held_out`` (validation, the selection criterion).

``--student`` takes a training checkpoint or a shipped weight-set folder (``weights/default``: its
``--student-branch``, photo encoder and HOG fusion), so a selector can be retrained for shipped weights.

    python -m training.train_selector --student runs/student/best.pt --fusion runs/fusion/fusion.json --out runs/selector
    python -m training.train_selector --student weights/default --folds 4 --out runs/selector_cv
    python -m training.train_selector --student weights/default --doodle-variants 1 --folds 4 --out runs/selector_dd
    python -m training.train_selector --student runs/student/best.pt --fold-students runs/f0/best.pt,runs/f1/best.pt,... \
        --out runs/selector_kf
    python -m training.train_selector --smoke --out /tmp/sel
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from sketchdown.models.modules import CanvasSelector

from .checkpoints import save_checkpoint, write_run_info
from .common import photo_folds
from .configs import apply_smoke, parse_config
from .env import seed_all, set_threads

# reward_table: the per-(sample, canvas) reward, part of this script's interface (tests compare it by hand)
from .selector_data import Samples, prepare, reward_table

__all__ = ["SelectorConfig", "main", "photo_folds", "pick_report", "prepare", "reward_table", "train_policy"]


@dataclass
class SelectorConfig:
    out: str = "runs/selector"
    student: str = "runs/student/best.pt"  # a distill checkpoint, or a weight-set folder (weights/default)
    student_branch: str = "student"  # which sketch branch of a weight-set folder
    teacher: str = ""  # the teacher checkpoint (photo encoder); empty: the one the student's checkpoint records
    fusion: str | None = None  # fit_fusion's fusion.json: reward on the fused score (HOG spec + alpha)
    fusion_branch: str = "student"  # whose alpha in fusion.json
    distractors: int = 0  # training photos added to the validation gallery (0: the 40 validation photos alone)
    doodle_variants: int = 0  # > 0: also the doodle validation split (category-level) x this many variants
    # distill checkpoints trained with --holdout f/k (comma-separated): each ranks its held-out training photos'
    # sketches, more samples for the policy ("chairv2-train"; weighed per sample like ChairV2 validation)
    fold_students: str = ""
    data_root: str | None = None
    hidden: int = 64
    variants: int = 3  # augmented copies of every validation sketch
    prefix_steps: int = 10
    steps: int = 2000
    batch: int = 256
    lr: float = 1e-3
    # "reinforce": sample a canvas, score it against the policy's expected reward (the paper's estimator);
    # "expected": the exact gradient of the same objective, sum_k pi_k R_k, which the cached table allows
    # because every canvas' reward is known (no sampling noise: the reward gaps are ~0.01-0.03)
    estimator: str = "reinforce"
    weight_decay: float = 0.0  # AdamW decoupled decay: pulls the policy toward sketch-independent picks
    folds: int = 4  # > 1: K-fold cross-validation over validation photos first (cv.json), then the final fit
    entropy: float = 0.05  # entropy bonus at the start, annealed linearly to entropy_final: a low
    entropy_final: float = 0.001  # bonus from the start collapses onto the cheapest canvas before lambda_F is learned
    lam_power: float = 5.0  # lambda_F = u ** lam_power, u ~ U(0, 1): most mass where the trade-off bites
    triplet_weight: float = 0.5
    margin: float = 0.2
    lams: tuple[float, ...] = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2)  # reported here, offered by the app
    seed: int = 0
    smoke: bool = False


def pad_batch(seqs: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lens = torch.tensor([len(s) for s in seqs])
    x = torch.zeros(len(seqs), int(lens.max()), 5)
    for i, s in enumerate(seqs):
        x[i, : len(s)] = torch.from_numpy(s)
    return x, lens


def train_policy(cfg: SelectorConfig, seqs: list[np.ndarray], r_acc: np.ndarray, r_comp: np.ndarray, idx: np.ndarray,
                 rng: np.random.Generator, desc: str = "selector", source: np.ndarray | None = None) -> CanvasSelector:
    """REINFORCE on the samples ``idx`` (rows of the (N, K) reward table); lambda_F drawn per sample.
    ``source`` (N,): each source's samples weigh 1 / (its count in ``idx``), so every source counts equally."""
    k = r_acc.shape[1]
    # logits = (1 - lambda_F) * head(GRU) + lambda_F * tau * R_comp: the head learns only what the sketch needs
    policy = CanvasSelector(k, cfg.hidden, costs=r_comp.tolist())
    opt = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ra, rc = torch.from_numpy(r_acc), torch.from_numpy(r_comp).float()
    weight = torch.ones(len(r_acc))
    if source is not None:
        counts = np.bincount(source[idx], minlength=int(source.max()) + 1)
        w = len(idx) / (np.count_nonzero(counts) * np.maximum(counts, 1))
        weight = torch.from_numpy(w[source]).float()
    for step in tqdm(range(cfg.steps), desc=desc, mininterval=5):
        ent_w = cfg.entropy + (cfg.entropy_final - cfg.entropy) * step / max(1, cfg.steps - 1)
        pick = idx[rng.choice(len(idx), size=min(cfg.batch, len(idx)), replace=False)]
        x, lens = pad_batch([seqs[i] for i in pick])
        lam = torch.rand(len(pick)) ** cfg.lam_power
        logits = policy(x, lens, lam)
        dist = torch.distributions.Categorical(logits=logits)
        R = lam[:, None] * rc[None] + (1 - lam[:, None]) * ra[pick]  # (B, K) reward of every canvas
        w = weight[pick]
        if cfg.estimator == "expected":
            gain = ((dist.probs * R).sum(1) * w).mean()
        else:
            a = dist.sample()
            r = R.gather(1, a[:, None])[:, 0]
            baseline = (dist.probs * R).sum(1).detach()  # expected reward under the policy
            gain = ((r - baseline) * dist.log_prob(a) * w).mean()
        loss = -gain - ent_w * (dist.entropy() * w).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return policy.eval()


@torch.inference_mode()
def greedy_picks(policy: CanvasSelector, seqs: list[np.ndarray], idx: np.ndarray, lam: float) -> np.ndarray:
    """The policy's argmax canvas index for the samples ``idx`` at one lambda_F: (len(idx),) int64."""
    x, lens = pad_batch([seqs[i] for i in idx])
    return policy(x, lens, torch.full((len(idx),), float(lam))).argmax(-1).numpy()


def pick_report(picks: dict[float, np.ndarray], r_acc: np.ndarray, rank: np.ndarray, full: np.ndarray, flops: np.ndarray,
                canvases: tuple[int, ...]) -> dict:
    """What each lambda_F's picks (one canvas index per sample, all N samples) buy, next to every fixed
    canvas: mean R_acc, Acc@1 of the complete sketches (``full`` mask) and of all samples, GFLOPs, histogram."""
    n = np.arange(len(r_acc))

    def row(pick: np.ndarray) -> dict:
        top1 = rank[n, pick] == 1
        return {"gflops": round(float(flops[pick].mean()) / 1e9, 4),
                "gflops_full": round(float(flops[pick[full]].mean()) / 1e9, 4),
                "hist": {int(canvases[k]): int((pick == k).sum()) for k in range(len(canvases))},
                "r_acc": round(float(r_acc[n, pick].mean()), 4),
                "acc1_full": round(100 * float(top1[full].mean()), 2),
                "acc5_full": round(100 * float((rank[n, pick] <= 5)[full].mean()), 2),
                "acc1_all": round(100 * float(top1.mean()), 2)}

    report = {str(lam): row(p) for lam, p in picks.items()}
    for k, c in enumerate(canvases):
        report[f"fixed@{c}"] = row(np.full(len(r_acc), k))
    return report


def cross_validate(cfg: SelectorConfig, smp: Samples) -> dict:
    """K folds over the validation photos (and doodle kinds): each fold's samples get the picks of a policy
    trained on the other folds. Pooled over folds, every sample is judged exactly once, by a policy that
    never saw it (nor any sketch of its photo or kind). ``held_out``: ChairV2; ``held_out_<source>``: others."""
    fold = photo_folds(smp.group, cfg.folds, cfg.seed + 1)
    picks = {float(lam): np.zeros(len(smp.seqs), np.int64) for lam in cfg.lams}
    for f in range(cfg.folds):
        held, train = np.flatnonzero(fold == f), np.flatnonzero(fold != f)
        policy = train_policy(cfg, smp.seqs, smp.r_acc, smp.r_comp, train, np.random.default_rng(cfg.seed + 10 + f),
                              f"cv fold {f}", smp.domain)
        for lam in picks:
            picks[lam][held] = greedy_picks(policy, smp.seqs, held, lam)
    first = smp.source == 0
    out = {"folds": cfg.folds, "photos": len(np.unique(smp.group[first])), "samples": int(first.sum()),
           "complete_sketches": int(smp.full[first].sum())}
    out.update(source_reports(smp, picks))
    return out


def source_reports(smp: Samples, picks: dict[float, np.ndarray], prefix: str = "held_out") -> dict:
    """pick_report per source: ``prefix`` for the first (ChairV2), ``<prefix>_<source>`` for the others."""
    out = {}
    for si, name in enumerate(smp.sources):
        m = smp.source == si
        out[prefix if si == 0 else f"{prefix}_{name}"] = pick_report(
            {lam: p[m] for lam, p in picks.items()}, smp.r_acc[m], smp.rank[m], smp.full[m], smp.flops, smp.canvases)
    return out


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_config(SelectorConfig, argv, __doc__)
    if cfg.estimator not in ("reinforce", "expected"):
        raise SystemExit(f"--estimator must be reinforce or expected, not {cfg.estimator!r}")
    if cfg.smoke:
        cfg = apply_smoke(cfg, steps=20, batch=16, variants=1, prefix_steps=3)
    set_threads()
    seed_all(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    out = Path(cfg.out)
    write_run_info(out, cfg)

    smp = prepare(cfg, rng)
    seqs, r_comp, canvases = smp.seqs, smp.r_comp, smp.canvases

    cv = None
    if cfg.folds > 1:
        cv = cross_validate(cfg, smp)
        (out / "cv.json").write_text(json.dumps(cv, indent=2) + "\n")
        print(json.dumps({k: v for k, v in cv.items() if k.startswith("held_out")}, indent=1), file=sys.stderr)

    everything = np.arange(len(seqs))
    policy = train_policy(cfg, seqs, smp.r_acc, r_comp, everything, rng, source=smp.domain)
    # what each lambda_F buys on its own training samples (optimistic: see --folds for held-out numbers);
    # ChairV2's report at the top level (as before doodles), other sources under their name
    rep = source_reports(smp, {float(lam): greedy_picks(policy, seqs, everything, lam) for lam in cfg.lams}, "own")
    report = rep.pop("own") | {k.removeprefix("own_"): v for k, v in rep.items()}
    if cv is not None:
        report["cv"] = cv
    print(json.dumps({k: v for k, v in report.items() if k != "cv"}, indent=1), file=sys.stderr)
    save_checkpoint(out / "selector.pt", policy=policy.state_dict(), config=json.dumps(dataclasses.asdict(cfg)),
                    canvases=json.dumps(list(canvases)), report=json.dumps(report), lam_power=cfg.lam_power,
                    costs=json.dumps(r_comp.tolist()))
    (out / "result.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
