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
baseline. lambda_F is drawn uniformly per sample, so one policy serves the app's whole knob.

The ranks are taken in a gallery of the validation photos plus ``distractors`` training photos (100
in all, the test split's size): among the 40 validation photos alone small canvases ranked well
enough that the first selector sent too many test sketches to 32 px. Students trained longer on those
training photos rank them too high, which a test gallery (unseen photos only) never asks about: the
shipped session-4 selector uses ``--distractors 0`` (training/README.md). With ``--fusion`` (from
``fit_fusion``) the rewards use the fused score the app searches with, cos + alpha * cos(HOG).

    python -m training.train_selector --student runs/student/best.pt --fusion runs/fusion/fusion.json --out runs/selector
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

from sketchdown.build import EncoderConfig, build_encoder
from sketchdown.flops import encoder_flops
from sketchdown.hog import ink_hogs, sketch_hogs
from sketchdown.models import CanvasSelector
from sketchdown.photo import EdgeCache, PhotoSpec
from sketchdown.render import RenderSpec
from sketchdown.sketch import Sketch, stroke_sequence

from .augment import augment_vector
from .common import (
    apply_smoke,
    distractor_inks,
    encode_photos,
    load_checkpoint,
    load_fusion,
    load_sources,
    load_teacher,
    parse_config,
    save_checkpoint,
    seed_all,
    set_threads,
    sketch_tensor,
    write_run_info,
)


@dataclass
class SelectorConfig:
    out: str = "runs/selector"
    student: str = "runs/student/best.pt"
    fusion: str | None = None  # fit_fusion's fusion.json: reward on the fused score (HOG spec + alpha)
    fusion_branch: str = "student"  # whose alpha in fusion.json
    distractors: int = 60  # training photos added to the validation gallery
    data_root: str | None = None
    hidden: int = 64
    variants: int = 3  # augmented copies of every validation sketch
    prefix_steps: int = 10
    steps: int = 2000
    batch: int = 256
    lr: float = 1e-3
    entropy: float = 0.05  # entropy bonus at the start, annealed linearly to entropy_final: a low
    entropy_final: float = 0.05  # bonus from the start collapses onto the cheapest canvas before lambda_F is learned
    lam_power: float = 3.0  # lambda_F = u ** lam_power, u ~ U(0, 1): most mass where the trade-off bites
    lam_feature: bool = True  # the policy reads u = lambda_F ** (1 / lam_power), not lambda_F itself
    triplet_weight: float = 0.5
    margin: float = 0.2
    lams: tuple[float, ...] = (0.0, 0.05, 0.15, 0.3)  # reported here, offered by the app
    seed: int = 0
    smoke: bool = False


@torch.inference_mode()
def reward_table(student: torch.nn.Module, canvases: tuple[int, ...], sketches: list[Sketch], true: np.ndarray,
                 photo_emb: torch.Tensor, render: RenderSpec, margin: float, triplet_weight: float,
                 hog_sims: torch.Tensor | None = None, alpha: float = 0.0) -> np.ndarray:
    """R_acc for every (sample, canvas): (N, K) float32. ``hog_sims`` (N, P): the canvas-independent
    HOG similarity, fused as (cos + alpha * hog) / (1 + alpha) so the hinge margin keeps its scale."""
    out = np.zeros((len(sketches), len(canvases)), np.float32)
    for ci, c in enumerate(canvases):
        embs = torch.cat([student(sketch_tensor(sketches[i : i + 128], c, render), ci) for i in range(0, len(sketches), 128)])
        sims = embs @ photo_emb.T
        if hog_sims is not None and alpha > 0:
            sims = (sims + alpha * hog_sims) / (1 + alpha)
        pos = sims[torch.arange(len(true)), torch.as_tensor(true)]
        rank = (sims >= pos[:, None]).sum(1).float()
        hinge = torch.relu(sims - pos[:, None] + margin)
        hinge[torch.arange(len(true)), torch.as_tensor(true)] = 0
        out[:, ci] = (1.0 / rank - triplet_weight * hinge.mean(1)).numpy()
    return out


def _file_id(path: str | None) -> str:
    """Size and mtime of a file the reward table depends on ("" when unset or missing)."""
    if not path or not Path(path).is_file():
        return ""
    st = Path(path).stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def pad_batch(seqs: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lens = torch.tensor([len(s) for s in seqs])
    x = torch.zeros(len(seqs), int(lens.max()), 5)
    for i, s in enumerate(seqs):
        x[i, : len(s)] = torch.from_numpy(s)
    return x, lens


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_config(SelectorConfig, argv, __doc__)
    if cfg.smoke:
        cfg = apply_smoke(cfg, steps=20, batch=16, variants=1, prefix_steps=3)
    set_threads()
    seed_all(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    render = RenderSpec()
    out = Path(cfg.out)
    write_run_info(out, cfg)

    if cfg.smoke and cfg.student == SelectorConfig.student:  # smoke without a checkpoint: random tiny nets
        canvases = (32, 48)
        student = build_encoder(EncoderConfig("lite0", 32, len(canvases), 0), weights=None)
        photo_enc = build_encoder(EncoderConfig("lite0", 32, 1, 0), weights=None)
        pspec, n_val, root = PhotoSpec("hed", 64), 0, None
    else:
        ck = load_checkpoint(Path(cfg.student))
        scfg = json.loads(ck["config"])
        canvases = tuple(scfg["canvases"])
        student = build_encoder(EncoderConfig(**json.loads(ck["encoder"])), weights=ck["student"])
        _, photo_enc, tcfg, _ = load_teacher(scfg["teacher"])
        pspec, n_val, root = PhotoSpec("hed", tcfg["photo_size"]), scfg["n_val"], scfg.get("data_root")
    extra: list[np.ndarray] = []  # distractor photos (none in smoke mode)
    if cfg.smoke:
        from .synthetic import synthetic_source

        val = synthetic_source(6, seed=2, name="val")
    else:
        train, val = load_sources(cfg.data_root or root, False, n_val, EdgeCache())
        extra = distractor_inks(train[0], cfg.distractors, rng)
    student.eval()
    inks = list(val.photo_ink) + extra
    photo_emb = encode_photos(photo_enc, inks, pspec, render)

    # samples: every validation sketch x prefix lengths x augmented variants
    sketches, true = [], []
    for i, it in enumerate(val.data.sketches):
        base = val.sketch(i)
        for v in range(cfg.variants):
            sk = base if v == 0 else augment_vector(base, rng, p_prefix=0.0)
            for f in np.linspace(1.0 / cfg.prefix_steps, 1.0, cfg.prefix_steps):
                sketches.append(sk.prefix_ink(float(f)))
                true.append(it.photo)
    true = np.array(true)
    # the reward table is the slow part (every sample x canvas through the student): cached in the run
    # folder under a key of everything it depends on, so re-running REINFORCE settings is quick
    key = json.dumps([cfg.student, _file_id(cfg.student), cfg.fusion, _file_id(cfg.fusion), cfg.fusion_branch,
                      cfg.distractors, cfg.variants, cfg.prefix_steps, cfg.margin, cfg.triplet_weight, cfg.seed, len(sketches)])
    cache = out / "rewards.npz"
    cached = np.load(cache) if cache.is_file() else None
    if cached is not None and str(cached["key"]) == key:
        r_acc = cached["r_acc"]
    else:
        hog_sims, alpha = None, 0.0
        if cfg.fusion:
            spec, alpha = load_fusion(cfg.fusion, cfg.fusion_branch)
            hog_sims = torch.from_numpy(sketch_hogs(sketches, spec, render) @ ink_hogs(inks, spec, render).T)
        r_acc = reward_table(student, canvases, sketches, true, photo_emb, render, cfg.margin, cfg.triplet_weight,
                             hog_sims, alpha)
        np.savez(cache, r_acc=r_acc, key=np.array(key))
    flops = np.array([encoder_flops(student, c, ci) for ci, c in enumerate(canvases)], np.float64)
    r_comp = -(flops - flops.min()) / max(1.0, flops.max() - flops.min())
    seqs = [stroke_sequence(s) for s in sketches]
    print(json.dumps({"samples": len(seqs), "mean_r_acc_per_canvas": r_acc.mean(0).round(3).tolist(),
                      "gflops": (flops / 1e9).round(4).tolist()}), file=sys.stderr)

    policy = CanvasSelector(len(canvases), cfg.hidden, conditioned=True, lam_power=cfg.lam_power if cfg.lam_feature else 1.0)
    opt = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
    ra, rc = torch.from_numpy(r_acc), torch.from_numpy(r_comp).float()
    for step in tqdm(range(cfg.steps), desc="selector", mininterval=5):
        ent_w = cfg.entropy + (cfg.entropy_final - cfg.entropy) * step / max(1, cfg.steps - 1)
        idx = rng.choice(len(seqs), size=min(cfg.batch, len(seqs)), replace=False)
        x, lens = pad_batch([seqs[i] for i in idx])
        lam = torch.rand(len(idx)) ** cfg.lam_power
        logits = policy(x, lens, lam)
        dist = torch.distributions.Categorical(logits=logits)
        a = dist.sample()
        R = lam[:, None] * rc[None] + (1 - lam[:, None]) * ra[idx]  # (B, K) reward of every canvas
        r = R.gather(1, a[:, None])[:, 0]
        baseline = (dist.probs * R).sum(1).detach()  # expected reward under the policy
        loss = -((r - baseline) * dist.log_prob(a)).mean() - ent_w * dist.entropy().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    # what each lambda_F buys on these samples (greedy canvas)
    report = {}
    with torch.inference_mode():
        x, lens = pad_batch(seqs)
        for lam in cfg.lams:
            pick = policy(x, lens, torch.full((len(seqs),), float(lam))).argmax(-1).numpy()
            chosen_top1 = (r_acc[np.arange(len(seqs)), pick] > 0.99).mean()  # 1/rank == 1 (minus hinge ~ 0)
            report[str(lam)] = {
                "gflops": round(float(flops[pick].mean()) / 1e9, 4),
                "hist": {int(canvases[k]): int((pick == k).sum()) for k in range(len(canvases))},
                "r_acc": round(float(r_acc[np.arange(len(seqs)), pick].mean()), 4),
                "top1_proxy": round(float(chosen_top1), 4),
            }
        for k, c in enumerate(canvases):
            report[f"fixed@{c}"] = {"gflops": round(flops[k] / 1e9, 4), "r_acc": round(float(r_acc[:, k].mean()), 4)}
    print(json.dumps(report, indent=1), file=sys.stderr)
    save_checkpoint(out / "selector.pt", policy=policy.state_dict(), config=json.dumps(dataclasses.asdict(cfg)),
                    canvases=json.dumps(list(canvases)), report=json.dumps(report), lam_power=policy.lam_power)
    (out / "result.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
