"""Train a light student sketch encoder into the teacher's photo-embedding space, at every canvas
size the selector can pick, with cross-modal knowledge distillation.

Per batch (B distinct photos, one augmented sketch each) and per canvas c in K:
    L_c = InfoNCE(s_c, P) + triplet(s_c, P) + kd_weight * Huber(D(s_c, P), D(t, P))
where P are the frozen teacher photo embeddings, t the teacher's sketch embeddings at its full
canvas, and D the triplet distance structure (sketch-positive, sketch-negative, positive-negative);
the loss is averaged over K. ``--kd-weight 0`` trains the same student without distillation.
``--kd-loss`` picks the distillation term: "structure" (the paper's, above), "embed" (the cosine distance
from s_c to t: the student mimics the teacher's sketch embedding, i.e. its similarity to every photo) or
"gallery" (KL of the teacher's softmax over *every* training photo of the source to the student's, at the
InfoNCE temperature: the teacher's ranking, not only the batch's distances).
With ``--fusion`` (fit_fusion's ``fusion.json``) InfoNCE and the triplet rank by the fused score the app
searches with, ``cos + alpha * cos(HOG)`` (HOG fixed, no gradient), so the network spends its capacity
on what HOG gets wrong instead of re-learning what HOG already ranks right; validation ranks by it too.
``--fusion-sources`` limits that to some sources: the HOG sharpens instance-level chairs but drowns
*kind* similarity, so a general student fuses on ChairV2/Sketchy10 and learns doodles on its own.
``--doodle-val`` trains on doodles 0..63 and adds doodles 64..79 (network alone, any photo of the kind
counts, Acc@5 + Acc@10) to the selection score, beside the ChairV2 validation split.
The student has per-canvas BatchNorm, so a 32 px canvas runs a 32 px forward pass.
``--holdout f/k`` keeps fold f of k of the ChairV2 training photos (``common.photo_fold_of``) and their sketches
out of every batch (validation is unchanged): k such students rank every training sketch held out, the canvas
selector's extra samples (``train_selector --fold-students``).

Sketch recognition rides on the same backbone: a category head over the teacher's classes, trained
with cross-entropy, plus Hinton soft-target KD from the teacher's category head when distilling
(so the no-KD run is also the "student trained directly" of the recognition table).

``--arms lite0:1:5e-4,lite0:0:5e-4,...`` ([name=]arch:kd_weight[:lr[:kd_loss]]) trains several students in one run on
the very same batches, one teacher pass per step serving all of them, each in ``--out`` with ``{arm}``
replaced by its name (default ``<arch>-kd`` / ``<arch>-nokd``): the distilled and the directly trained student then see the same
data for the same number of steps by construction, even when a time budget ends the run early.

    python -m training.distill --teacher runs/teacher/best.pt --out runs/student
    python -m training.distill --teacher runs/teacher/best.pt --arms lite0:1,lite0:0 --out 'runs/{arm}-s0'
    python -m training.distill --smoke --out /tmp/s
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sketchdown.bundles.build import EncoderConfig, build_encoder
from sketchdown.bundles.photo import EdgeCache, PhotoSpec
from sketchdown.eval.data import load_doodles
from sketchdown.eval.metrics import summary
from sketchdown.models.losses import cross_modal_kd, embedding_kd, gallery_kd, hinton_kd, info_nce, triplet_loss
from sketchdown.sketch.hog import HogSpec, hog_descriptor, ink_hogs, sketch_hogs
from sketchdown.sketch.render import RenderSpec

from .bank import SketchBank, build_bank, teacher_key
from .checkpoints import checkpoint_step, finish_run, load_fusion, load_student_state, write_run_info
from .common import (
    Source,
    encode_photos,
    evaluate_ranks,
    load_sources,
    make_source,
    parse_holdout,
    photo_fold_of,
    pick_source,
    sample_batch,
    sketch_canvases,
    sketch_tensors,
)
from .configs import apply_smoke, parse_config
from .env import allreduce_grads, autocast, cosine_lr
from .loader import batches, default_workers
from .runs import resume, run_loop, start_run, teacher_for
from .synthetic import category_level, synthetic_source


@dataclass
class DistillConfig:
    out: str = "runs/student"
    teacher: str = "runs/teacher/best.pt"
    data_root: str | None = None
    arch: str = "lite0"
    pretrained: bool = True  # ImageNet init where the arch has offline weights
    canvases: tuple[int, ...] = (32, 64, 96, 128)
    batch: int = 24
    steps: int = 900
    lr: float = 5e-4
    weight_decay: float = 1e-4
    warmup: int = 20
    kd_weight: float = 1.0
    kd_loss: str = "structure"  # "structure" (the paper's distance-structure Huber), "embed" (cosine mimicry), "gallery" (KL over every training photo)
    kd_delta: float = 0.1
    temperature: float = 0.07
    margin: float = 0.2
    n_val: int = 40
    val_every: int = 100
    use_sketchy: bool = True
    use_gallery: bool = False
    use_doodles: bool = False  # Quick, Draw! doodles of the gallery's kinds (training/fetch_quickdraw.py)
    mix: tuple[float, ...] = (0.7, 0.3, 0.0, 0.0)  # batch share per source: chairv2, sketchy10, gallery, doodles
    cls_weight: float = 0.3  # category head (0: none)
    hinton_t: float = 4.0  # soft-target temperature (used when kd_weight > 0)
    fusion: str = ""  # fit_fusion's fusion.json or a weight-set folder: train and select on cos + alpha * cos(HOG)
    fusion_branch: str = "student"  # whose alpha in fusion.json
    fusion_sources: str = ""  # comma-separated source names that get the HOG bias (empty: all)
    doodle_val: bool = False  # hold doodles 64..79 out of training and select on them too
    doodle_val_per_class: int = 8  # doodles per kind in that validation split (speed)
    init: str = ""  # start from this student checkpoint or weight-set folder (same arch and canvases; head fresh)
    init_branch: str = "student"  # the sketch branch to start from when --init is a weight-set folder
    workers: int = -1  # batch-rendering processes (-1: 0 on CPU, up to 6 on a GPU)
    time_budget_s: float = 0.0  # > 0: the schedule ends at this wall-clock time if the steps have not (common.Budget)
    arms: str = ""  # "[name=]arch:kd_weight[:lr[:kd_loss]],...": several students on the same batches; --out holds "{arm}"
    bank: int = 0  # > 0: draw sketches from this many fixed variants each, teacher embeddings cached (training.bank)
    bank_dir: str = ""  # where the bank caches live (default: a "banks" folder beside the teacher checkpoint)
    holdout: str = ""  # "f/k": ChairV2 training photos of fold f (common.photo_fold_of) never drawn (selector rewards)
    seed: int = 0
    device: str = "auto"
    smoke: bool = False


@dataclass
class Arm:
    """One student of a run: its own config (arch, kd_weight, lr, out), network, optimizer and progress."""

    cfg: DistillConfig
    enc_cfg: EncoderConfig
    student: torch.nn.Module
    opt: torch.optim.Optimizer
    params: list[torch.nn.Parameter]
    step: int = 0
    best: float = -1.0
    history: list[dict] = dataclasses.field(default_factory=list)

    @property
    def out(self) -> Path:
        return Path(self.cfg.out)


def arm_configs(cfg: DistillConfig) -> list[DistillConfig]:
    """One config per ``--arms`` entry (arch, kd_weight, lr and out filled in), or ``[cfg]`` without arms."""
    if not cfg.arms:
        return [cfg]
    if "{arm}" not in cfg.out:
        raise SystemExit("--arms needs an --out with {arm} in it (one folder per student)")
    out = []
    for item in cfg.arms.split(","):
        name, _, spec = item.strip().rpartition("=")
        arch, kd, *rest = spec.split(":")
        kdw = float(kd)
        name = name or f"{arch}-{'kd' if kdw > 0 else 'nokd'}"
        lr = float(rest[0]) if rest and rest[0] else cfg.lr
        out.append(dataclasses.replace(cfg, arch=arch, kd_weight=kdw, lr=lr, kd_loss=rest[1] if len(rest) > 1 else cfg.kd_loss,
                                       out=cfg.out.format(arm=name), arms=""))
    if len({c.out for c in out}) != len(out):
        raise SystemExit(f"--arms {cfg.arms!r}: two arms would share a folder")
    return out


KD_LOSSES = ("structure", "embed", "gallery")


def check_kd_loss(cfg: DistillConfig) -> None:
    if cfg.kd_loss not in KD_LOSSES:
        raise SystemExit(f"--kd-loss {cfg.kd_loss!r}: choose among {', '.join(KD_LOSSES)}")


def kd_term(cfg: DistillConfig, s: torch.Tensor, P: torch.Tensor, T: torch.Tensor, G: torch.Tensor | None) -> torch.Tensor:
    """The arm's distillation loss for one canvas: student sketch embeddings ``s`` (B, D) against the teacher's
    ``T`` (B, D), with the batch's photo embeddings ``P`` (B, D) and, for "gallery", every training photo ``G`` (B, P, D)."""
    if cfg.kd_loss == "embed":
        return embedding_kd(s, T)
    if cfg.kd_loss == "gallery":
        assert G is not None, "gallery KD needs every training photo's embedding"
        return gallery_kd(s, T, G, cfg.temperature)
    return cross_modal_kd(s, P, T, P, cfg.kd_delta)


def build_arm(cfg: DistillConfig, embed_dim: int, classes: list[str], device: torch.device, main: bool) -> Arm:
    """The student of ``cfg`` (ImageNet init for Lite, ``--init``, or resumed from its ``last.pt``) and its optimizer."""
    w = "imagenet" if cfg.pretrained and cfg.arch.startswith("lite") else None
    n_cls = len(classes) if cfg.cls_weight > 0 and classes else 0
    enc_cfg = EncoderConfig(cfg.arch, embed_dim, len(cfg.canvases), n_cls)
    student = build_encoder(enc_cfg, weights=None if cfg.init else w)
    if cfg.init:
        sd = {k: v for k, v in load_student_state(cfg.init, cfg.init_branch).items() if not k.startswith("classifier.")}
        missing, unexpected = student.load_state_dict(sd, strict=False)
        if unexpected or any(not k.startswith("classifier.") for k in missing):
            raise ValueError(f"{cfg.init}: not a matching student (missing {missing}, unexpected {unexpected})")
    student.to(device, memory_format=torch.channels_last).train()
    params = [p for p in student.parameters() if p.requires_grad]
    arm = Arm(cfg, enc_cfg, student, torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay), params)
    arm.step, arm.best, arm.history = resume(arm.out, {"student": student}, arm.opt, main)
    if main:
        write_run_info(arm.out, cfg)
    return arm


def arm_loss(arm: Arm, x: dict[int, torch.Tensor], P: torch.Tensor, T: torch.Tensor | None, T_logits: torch.Tensor | None,
             bias: torch.Tensor | None, lab: torch.Tensor, G: torch.Tensor | None = None) -> torch.Tensor:
    """The arm's loss on one batch, averaged over its canvases (see the module docstring). The student runs in
    fp32: at <= 128 px its step is bound by kernel launches, which bf16 casts would only add to."""
    cfg = arm.cfg
    loss = torch.zeros((), device=P.device)
    for ci, c in enumerate(cfg.canvases):
        s, logits = arm.student.forward_with_logits(x[c], ci)
        lc = info_nce(s, P, cfg.temperature, bias) + triplet_loss(s, P, cfg.margin, bias)
        if cfg.kd_weight > 0 and T is not None:
            lc = lc + cfg.kd_weight * kd_term(cfg, s, P, T, G)
        if logits is not None and (lab >= 0).any():
            lc = lc + cfg.cls_weight * F.cross_entropy(logits[lab >= 0], lab[lab >= 0], label_smoothing=0.1)
            if cfg.kd_weight > 0 and T_logits is not None:
                lc = lc + cfg.cls_weight * hinton_kd(logits, T_logits.float(), cfg.hinton_t)
        loss = loss + lc / len(cfg.canvases)
    return loss


def validate_arm(arm: Arm, loss: float, elapsed: float, photo_emb: dict, val: Source, vals: list[Source],
             val_bias: np.ndarray | None, render: RenderSpec, classes: list[str], timing: dict | None = None) -> None:
    """Score the arm on the validation splits (mean over canvases of Acc@1 + Acc@10; category-level
    splits add Acc@5 + Acc@10), log it, and checkpoint (``best.pt`` when it improved)."""
    cfg = arm.cfg
    m = {"step": arm.step, "loss": round(loss, 4), "elapsed_s": round(elapsed, 1), **(timing or {})}
    score = 0.0
    for ci, c in enumerate(cfg.canvases):
        r = summary(evaluate_ranks(arm.student, photo_emb[val.name][0], val, c, render, ci, bias=val_bias))
        m[f"acc@1@{c}"], m[f"acc@10@{c}"] = round(r["acc@1"], 2), round(r["acc@10"], 2)
        score += (r["acc@1"] + r["acc@10"]) / len(cfg.canvases)
    for v in vals[1:]:  # category-level: network alone, any photo of the kind counts
        for ci, c in enumerate(cfg.canvases):
            r = summary(evaluate_ranks(arm.student, photo_emb[v.name][0], v, c, render, ci))
            m[f"{v.name}@5@{c}"], m[f"{v.name}@10@{c}"] = round(r["acc@5"], 2), round(r["acc@10"], 2)
            score += (r["acc@5"] + r["acc@10"]) / len(cfg.canvases)
    m["score"] = round(score, 2)
    arm.history.append(m)
    print(json.dumps({"arm": arm.out.name, **m}), file=sys.stderr, flush=True)
    n_cls = arm.enc_cfg.num_classes
    state = dict(
        student=arm.student.state_dict(), opt=arm.opt.state_dict(), step=arm.step, best=max(arm.best, score),
        history=json.dumps(arm.history), config=json.dumps(dataclasses.asdict(cfg)),
        encoder=json.dumps(arm.enc_cfg.to_dict()), teacher=str(cfg.teacher), classes=json.dumps(classes if n_cls else []),
    )
    arm.best = checkpoint_step(arm.out, state, score, arm.best)


def make_banks(cfg: DistillConfig, sources: list[Source], teacher: torch.nn.Module, canvas: int,
               render: RenderSpec) -> dict[str, SketchBank]:
    """A sketch bank per source (``cfg.bank`` variants, bank seed 0 so every run and seed shares one cache)."""
    folder = Path(cfg.bank_dir) if cfg.bank_dir else Path(cfg.teacher).parent / "banks"
    key = "smoke" if cfg.smoke and cfg.teacher == DistillConfig.teacher else teacher_key(cfg.teacher)
    return {s.name: build_bank(s, teacher, canvas, cfg.bank, 0, folder / f"{s.name}-{cfg.bank}.pt", key, render)
            for s in sources}


def training_data(cfg: DistillConfig) -> tuple[list[Source], list[Source]]:
    """(training sources, validation splits: ChairV2 first, then doodles with ``--doodle-val``); synthetic in smoke mode."""
    if cfg.smoke:
        sources, val = [synthetic_source(12, seed=1)], synthetic_source(6, seed=2, name="val")
    else:
        sources, val = load_sources(cfg.data_root, cfg.use_sketchy, cfg.n_val, EdgeCache(), cfg.use_gallery,
                                    cfg.use_doodles, "fit" if cfg.doodle_val else "train")
    if cfg.holdout:
        hold(sources[0], *parse_holdout(cfg.holdout))
    vals = [val]
    if cfg.doodle_val and not cfg.smoke:
        vals.append(make_source("doodles-val", load_doodles("val", max_per_class=cfg.doodle_val_per_class), EdgeCache()))
    elif cfg.doodle_val:  # smoke: a synthetic category-level split stands in
        vals.append(category_level(synthetic_source(6, seed=3, name="doodles-val")))
    return sources, vals


def hold(src: Source, fold: int, folds: int) -> None:
    """Keep fold ``fold`` of ``folds`` of ``src``'s photos (and so their sketches) out of its batches."""
    if src.data.positives is not None:
        raise SystemExit(f"--holdout: {src.name} is category-level; folds split instance-level photos")
    of = photo_fold_of(len(src.data.photos), folds)
    src.train_photos = np.flatnonzero(of != fold).tolist()


@dataclass
class PhotoSide:
    """The gallery side, computed once: every photo's teacher embedding and, with fusion, its HOG (each also
    mirrored), plus the validation split's HOG bias ``alpha * cos(HOG)`` (N, P)."""

    emb: dict[str, tuple[torch.Tensor, torch.Tensor]]  # source -> (P, D) float32 (plain, mirrored)
    hog: dict[str, tuple[np.ndarray, np.ndarray]]  # source -> (P, H) float32 (plain, mirrored); {} without fusion
    val_bias: np.ndarray | None


def photo_side(t_ph: torch.nn.Module, sources: list[Source], vals: list[Source], pspec: PhotoSpec, render: RenderSpec,
               hog_spec: HogSpec | None, alpha: float) -> PhotoSide:
    emb, hog = {}, {}
    for s in [*sources, *vals]:
        flipped = [np.ascontiguousarray(i[:, ::-1]) for i in s.photo_ink]
        emb[s.name] = (encode_photos(t_ph, s.photo_ink, pspec, render), encode_photos(t_ph, flipped, pspec, render))
        if hog_spec is not None:
            hog[s.name] = (ink_hogs(s.photo_ink, hog_spec, render), ink_hogs(flipped, hog_spec, render))
    val_bias = None
    if hog_spec is not None:
        val = vals[0]
        val_sketches = [val.sketch(i) for i in range(len(val.data.sketches))]
        val_bias = alpha * sketch_hogs(val_sketches, hog_spec, render) @ hog[val.name][0].T
    return PhotoSide(emb, hog, val_bias)


@dataclass
class Batcher:
    """Draws one training batch (called from the loader's worker threads): sketches drawn at every size the
    arms (and the teacher, when it runs in the loop) need, the photos' ids and mirroring, with fusion the
    batch's HOG bias, with a bank the cached teacher embeddings."""

    cfg: DistillConfig
    sources: list[Source]
    class_index: dict[str, int]
    sizes: tuple[int, ...]
    render: RenderSpec
    banks: dict[str, SketchBank]
    side: PhotoSide
    hog_spec: HogSpec | None
    alpha: float
    fused: set[str]  # sources that get the HOG bias

    def __call__(self, rng: np.random.Generator) -> dict:
        cfg, render = self.cfg, self.render
        src = pick_source(self.sources, cfg.mix, rng)
        bank = self.banks.get(src.name)
        b = sample_batch(src, cfg.batch, rng, self.class_index, bank=bank)
        batch = {"x": sketch_tensors(b.sketches, self.sizes, render, b.flips), "src": src.name, "labels": b.labels,
                 "photo_ids": torch.as_tensor(b.photo_ids), "flips": torch.as_tensor(b.flips)}
        if bank is not None:
            batch["T"] = bank.teacher[b.bank_rows]
        if self.hog_spec is not None and src.name in self.fused:
            ph, ph_flip = self.side.hog[src.name]
            hp = np.where(b.flips[:, None], ph_flip[b.photo_ids], ph[b.photo_ids])
            hs = hog_descriptor(sketch_canvases(b.sketches, self.hog_spec.size, render, b.flips), self.hog_spec)
            batch["bias"] = torch.from_numpy(self.alpha * hs @ hp.T).float()
        return batch


def train_step(arms: list[Arm], b: dict, side: PhotoSide, t_sk: torch.nn.Module, t_canvas: int, kd: bool,
               device: torch.device, lr_at: Callable[[float], float], world: int) -> list[float]:
    """One optimizer step of every arm on the batch ``b``; one teacher pass serves every distilled arm.
    ``lr_at(base)``: the scheduled learning rate of an arm whose base rate is ``base``. Returns the arms' losses."""
    pe, pe_flip = side.emb[b["src"]]
    idx, flips = b["photo_ids"], b["flips"][:, None]
    P = torch.where(flips, pe_flip[idx], pe[idx]).to(device)
    bias = b["bias"].to(device) if "bias" in b else None
    x = {c: t.to(device, memory_format=torch.channels_last, non_blocking=True) for c, t in b["x"].items()}
    T = T_logits = None
    if kd and "T" in b:  # the bank's cached teacher embeddings
        T = b["T"].to(device)
    elif kd:
        with torch.no_grad(), autocast(device):
            T, T_logits = t_sk.forward_with_logits(x[t_canvas])
        T = T.float()
    lab = b["labels"].to(device)
    G = None
    if T is not None and any(a.cfg.kd_weight > 0 and a.cfg.kd_loss == "gallery" for a in arms):
        G = torch.where(flips[:, :, None], pe_flip[None], pe[None]).to(device)  # (B, P, D): each row's mirror side
    losses = []
    for arm in arms:
        for g in arm.opt.param_groups:
            g["lr"] = lr_at(arm.cfg.lr)
        loss = arm_loss(arm, x, P, T, T_logits, bias, lab, G)
        arm.opt.zero_grad(set_to_none=True)
        loss.backward()
        if world > 1:
            allreduce_grads(arm.params, world)
        arm.opt.step()
        losses.append(loss.item())
    return losses


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_config(DistillConfig, argv, __doc__)
    if cfg.smoke:
        cfg = apply_smoke(cfg, canvases=(32, 48), batch=4, steps=3, val_every=3, warmup=1, n_val=4)
    d, device = start_run(cfg.seed, cfg.device)
    render = RenderSpec()
    t_sk, t_ph, t_canvas, pspec, classes = teacher_for(cfg.teacher, cfg.smoke and cfg.teacher == DistillConfig.teacher)
    sources, vals = training_data(cfg)
    t_sk.to(device, memory_format=torch.channels_last).eval()
    t_ph.to(device, memory_format=torch.channels_last).eval()
    # fused training: the HOG spec and this branch's alpha; a batch's sketch HOGs per step (~2 ms each)
    hog_spec, alpha, _ = load_fusion(cfg.fusion, cfg.fusion_branch) if cfg.fusion else (None, 0.0, 0.0)
    fused = {s.name for s in sources} if not cfg.fusion_sources else set(cfg.fusion_sources.split(","))
    if hog_spec is not None and not fused & {s.name for s in sources}:
        raise ValueError(f"--fusion-sources {cfg.fusion_sources!r} names none of {[s.name for s in sources]}")
    side = photo_side(t_ph, sources, vals, pspec, render, hog_spec, alpha)
    for c in arm_configs(cfg):
        check_kd_loss(c)
    arms = [build_arm(c, int(t_ph.proj.out_features), classes, device, d.main) for c in arm_configs(cfg)]
    if len({a.step for a in arms}) > 1:
        raise SystemExit(f"the arms stopped at different steps {[a.step for a in arms]}: resume them one by one")
    step = arms[0].step
    kd = any(a.cfg.kd_weight > 0 for a in arms)
    banks = make_banks(cfg, sources, t_sk, t_canvas, render) if cfg.bank > 0 else {}
    if banks and kd and t_sk.classifier is not None and any(a.cfg.cls_weight > 0 for a in arms):
        raise SystemExit("--bank caches the teacher's embeddings, not its category logits: use --cls-weight 0 with it")
    # the teacher's canvas is drawn only when the teacher runs in the loop (no bank)
    sizes = tuple(dict.fromkeys([c for a in arms for c in a.cfg.canvases] + ([t_canvas] if kd and not banks else [])))
    make = Batcher(cfg, sources, {c: i for i, c in enumerate(classes)}, sizes, render, banks, side, hog_spec, alpha, fused)
    losses: list[float] = []

    def train(b: dict, step: int, time_fraction: float) -> dict[str, str]:
        losses[:] = train_step(arms, b, side, t_sk, t_canvas, kd, device,
                               lambda base: cosine_lr(step, cfg.steps, base, cfg.warmup, time_fraction), d.world)
        return {"loss": "/".join(f"{v:.3f}" for v in losses)}

    def validate(step: int, elapsed: float, timing: dict) -> None:
        tv = time.time()
        for arm, loss_v in zip(arms, losses, strict=True):  # each arm's record counts the arms validated before it
            arm.step = step
            validate_arm(arm, loss_v, elapsed + time.time() - tv, side.emb, vals[0], vals, side.val_bias, render, classes, timing)

    stream = batches(make, cfg.seed * 1000 + d.rank + step, default_workers(device, cfg.workers))
    desc = "students" if len(arms) > 1 else f"student kd={cfg.kd_weight:g}"
    step = run_loop(stream, step, cfg.steps, cfg.time_budget_s, cfg.val_every, desc, d.main, train, validate)
    results = {str(a.out): finish_run(a.out, a.best, step, a.history, d.main) for a in arms}
    return next(iter(results.values())) if len(arms) == 1 else results


if __name__ == "__main__":
    main()
