"""Train the teacher ("full network"): a sketch branch and a photo branch (the photo's HED edge map,
drawn like a sketch), in-batch InfoNCE + triplet loss, plus a sketch category head over the classes of
the sources used (ChairV2, Sketchy10, gallery pseudo-sketches) when ``--cls-weight`` > 0.

Two families: EfficientNet-Lite (ImageNet init, the sets shipped before the VGG-16 full network) and
the paper's VGG-16 Triplet-SN (``--arch vgg16 --canvas 256 --photo-size 256 --share-trunk``): one VGG-16
trunk initialised from HED (ImageNet VGG-16 fine-tuned for edges), shared by both branches as in
Triplet-SN, each branch with its own linear projection. ``--init`` starts from an earlier teacher.
On a GPU (``--device auto``) batches are rendered in ``--workers`` processes and the networks run in bf16.
On a CPU, ``--cache-blocks 3`` runs VGG-16's frozen first three blocks once per sketch variant and photo
instead of once per step (:mod:`training.teacher_cache`), and the rest runs in bf16 where the CPU has it
natively (AMX / AVX512-BF16: ~5x faster than fp32).

    python -m training.train_teacher --out runs/teacher            # real run (see training/README.md)
    python -m training.train_teacher --smoke --out /tmp/t          # seconds, synthetic data
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sketchdown.bundles.build import EncoderConfig, build_encoder
from sketchdown.bundles.photo import EdgeCache, PhotoSpec
from sketchdown.eval.metrics import summary
from sketchdown.models.losses import info_nce, triplet_loss
from sketchdown.models.modules import EmbeddingEncoder
from sketchdown.sketch.render import RenderSpec

from .checkpoints import checkpoint_step, finish_run, load_checkpoint, write_run_info
from .common import (
    Source,
    encode_photos,
    evaluate_ranks,
    load_sources,
    photo_tensor,
    pick_source,
    sample_batch,
    sketch_tensor,
    source_classes,
)
from .configs import apply_smoke, parse_config
from .env import allreduce_grads, autocast, cosine_lr, freeze_early
from .loader import batches, default_workers
from .runs import resume, run_loop, start_run
from .teacher_cache import build_cache, embed_cached, sample_cached, vgg_trunk

PRETRAINED = ("lite0", "lite1", "lite2", "vgg16")  # archs with offline pretrained weights (sketchdown.bundles.build)


@dataclass
class TeacherConfig:
    out: str = "runs/teacher"
    data_root: str | None = None
    arch: str = "lite2"
    canvas: int = 224
    photo_size: int = 224
    embed_dim: int = 256
    batch: int = 24
    steps: int = 600
    lr: float = 2e-4
    weight_decay: float = 1e-4
    warmup: int = 50
    use_sketchy: bool = True
    use_gallery: bool = False  # pseudo-sketches of the default gallery's training photos
    mix: tuple[float, ...] = (0.7, 0.3, 0.0)  # batch share per source: chairv2, sketchy10, gallery
    init: str = ""  # start from this teacher checkpoint (weights only; category rows matched by name)
    n_val: int = 40  # ChairV2 train photos held out for model selection
    val_every: int = 50
    temperature: float = 0.07
    margin: float = 0.2
    cls_weight: float = 0.3
    freeze_blocks: int = 5  # stem + first blocks frozen (see common.freeze_early)
    share_trunk: bool = False  # one backbone for sketches and photo edge maps (Triplet-SN), own projections
    head_lr_mult: float = 1.0  # learning rate of the projections and category head, relative to --lr
    workers: int = -1  # batch-rendering processes (-1: 0 on CPU, up to 6 on a GPU)
    cache_blocks: int = 0  # > 0: train from cached features of the first N (frozen) VGG-16 blocks (teacher_cache)
    cache_variants: int = 4  # with cache_blocks: fixed variants per sketch (as drawn, mirrored, augmented)
    cache_photo_variants: int = 2  # with cache_blocks: per photo and mirror side (as it is, augmented)
    time_budget_s: float = 0.0  # > 0: the schedule ends at this wall-clock time if the steps have not (common.Budget)
    seed: int = 0
    device: str = "auto"
    smoke: bool = False


def parse(argv: list[str] | None) -> TeacherConfig:
    cfg = parse_config(TeacherConfig, argv, __doc__)
    if cfg.smoke:
        cfg = apply_smoke(cfg, arch="lite0", canvas=64, photo_size=64, batch=4, steps=4, val_every=2, warmup=1, n_val=4, freeze_blocks=2)
    return cfg


def build_teacher(cfg: TeacherConfig, pretrained: bool = True, *, num_classes: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(sketch branch, photo branch); with ``cfg.share_trunk`` both hold the same backbone module."""
    w = "imagenet" if pretrained else None
    sk = build_encoder(EncoderConfig(cfg.arch, cfg.embed_dim, 1, num_classes), weights=w)
    if cfg.share_trunk:
        return sk, EmbeddingEncoder(sk.backbone, int(sk.proj.in_features), cfg.embed_dim, 0).eval()
    return sk, build_encoder(EncoderConfig(cfg.arch, cfg.embed_dim, 1, 0), weights=w)


def teacher_params(sk: torch.nn.Module, ph: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Trainable parameters of both branches, each once (a shared trunk is listed once)."""
    seen: dict[int, torch.nn.Parameter] = {}
    for p in [*sk.parameters(), *ph.parameters()]:
        if p.requires_grad:
            seen.setdefault(id(p), p)
    return list(seen.values())


def param_groups(sk: torch.nn.Module, ph: torch.nn.Module, lr: float, head_mult: float) -> list[dict]:
    """Backbone at ``lr``; projections and category head at ``lr * head_mult`` (fresh layers learn faster)."""
    params = teacher_params(sk, ph)
    heads = {id(p) for m in (sk, ph) for n, p in m.named_parameters() if not n.startswith("backbone.")}
    groups = [{"params": [p for p in params if id(p) not in heads], "lr_mult": 1.0},
              {"params": [p for p in params if id(p) in heads], "lr_mult": head_mult}]
    return [g for g in groups if g["params"]]


def init_from(sk: torch.nn.Module, ph: torch.nn.Module, path: str, classes: list[str]) -> None:
    """Load an earlier teacher's weights; its category rows go to the classes of the same name
    (new classes keep their fresh initialisation)."""
    ck = load_checkpoint(Path(path))
    old = json.loads(ck["classes"])
    sd = dict(ck["sketch"])
    # a teacher trained with --cls-weight 0 has no category head; one trained with it may start one that has
    w, b = sd.pop("classifier.weight", None), sd.pop("classifier.bias", None)
    head = {k for k in sk.state_dict() if k.startswith("classifier.")}
    missing, unexpected = sk.load_state_dict(sd, strict=False)
    if unexpected or set(missing) != head:
        raise ValueError(f"{path}: not a matching teacher (missing {missing}, unexpected {unexpected})")
    ph.load_state_dict(ck["photo"])
    if w is None or not head:
        return
    with torch.no_grad():
        for i, c in enumerate(classes):
            if c in old:
                sk.classifier.weight[i] = w[old.index(c)]
                sk.classifier.bias[i] = b[old.index(c)]


def _sources(cfg: TeacherConfig) -> tuple[list[Source], Source]:
    """(training sources, ChairV2 validation split); synthetic ones in smoke mode."""
    if cfg.smoke:
        from .synthetic import synthetic_source

        return [synthetic_source(12, seed=1)], synthetic_source(6, seed=2, name="val")
    return load_sources(cfg.data_root, cfg.use_sketchy, cfg.n_val, EdgeCache(), cfg.use_gallery)


def _loss(cfg: TeacherConfig, sk: torch.nn.Module, ph: torch.nn.Module, b: dict, device: torch.device) -> torch.Tensor:
    """InfoNCE + triplet between a batch's sketch and photo embeddings, + the category head's cross-entropy."""
    cl = torch.channels_last
    xs = b["xs"].to(device, memory_format=cl, non_blocking=True)
    xp = b["xp"].to(device, memory_format=cl, non_blocking=True)
    with autocast(device):
        es, logits = sk.forward_with_logits(xs)
        ep = ph(xp)
    return _pair_loss(cfg, es, ep, logits, b["labels"].to(device))


def _pair_loss(cfg: TeacherConfig, es: torch.Tensor, ep: torch.Tensor, logits: torch.Tensor | None,
               lab: torch.Tensor) -> torch.Tensor:
    """InfoNCE + triplet between sketch and photo embeddings (B, D), + cross-entropy of the labelled rows' logits."""
    es, ep = es.float(), ep.float()
    loss = info_nce(es, ep, cfg.temperature) + triplet_loss(es, ep, cfg.margin)
    if logits is not None and (lab >= 0).any():
        loss = loss + cfg.cls_weight * F.cross_entropy(logits.float()[lab >= 0], lab[lab >= 0], label_smoothing=0.1)
    return loss


def _loss_cached(cfg: TeacherConfig, sk: torch.nn.Module, ph: torch.nn.Module, b: dict, device: torch.device) -> torch.Tensor:
    """``_loss`` on a batch of cached early-block features (:func:`training.teacher_cache.sample_cached`)."""
    with autocast(device):
        es, logits = embed_cached(sk, b["fs"].to(device), cfg.cache_blocks)
        ep, _ = embed_cached(ph, b["fp"].to(device), cfg.cache_blocks)
    return _pair_loss(cfg, es, ep, logits, b["labels"].to(device))


def _cached_batches(cfg: TeacherConfig, run: _Run, sources: list[Source], class_index: dict[str, int]):
    """The batch maker over cached features (CPU, one process: the cache stays in this one's memory)."""
    if not cfg.share_trunk or cfg.freeze_blocks < cfg.cache_blocks or len(sources) != 1:
        raise SystemExit("--cache-blocks N needs --share-trunk, --freeze-blocks >= N and ChairV2 alone "
                         "(--no-use-sketchy, no --use-gallery)")
    cache = build_cache(vgg_trunk(run.sk), sources[0], cfg.cache_blocks, cfg.canvas, cfg.photo_size, cfg.cache_variants,
                        cfg.cache_photo_variants, cfg.seed)
    return lambda rng: sample_cached(cache, sources[0], cfg.batch, rng, class_index)


@dataclass
class _Run:
    """A teacher run's state between steps."""

    cfg: TeacherConfig
    sk: torch.nn.Module
    ph: torch.nn.Module
    opt: torch.optim.Optimizer
    frozen: list[torch.nn.Module]
    classes: list[str]
    step: int = 0
    best: float = -1.0
    history: list[dict] = field(default_factory=list)

    def validate(self, val: Source, loss: float, elapsed: float, timing: dict) -> None:
        """Acc@1 + Acc@10 on the validation split; log it, save ``last.pt`` (and ``best.pt`` when it improved)."""
        cfg, render = self.cfg, RenderSpec()
        pe = encode_photos(self.ph, val.photo_ink, PhotoSpec("hed", cfg.photo_size), render)
        m = summary(evaluate_ranks(self.sk, pe, val, cfg.canvas, render))
        score = m["acc@1"] + m["acc@10"]
        m.update(step=self.step, loss=loss, elapsed_s=round(elapsed, 1), **timing)
        self.history.append(m)
        print(json.dumps(m), file=sys.stderr, flush=True)
        state = dict(
            sketch=self.sk.state_dict(), photo=self.ph.state_dict(), opt=self.opt.state_dict(), step=self.step,
            best=max(self.best, score), history=json.dumps(self.history), config=json.dumps(dataclasses.asdict(cfg)),
            classes=json.dumps(self.classes if cfg.cls_weight > 0 else []),
        )
        self.best = checkpoint_step(Path(cfg.out), state, score, self.best)
        for m_ in self.frozen:  # evaluation put everything in train mode again
            m_.eval()


def _build(cfg: TeacherConfig, classes: list[str], device: torch.device, main: bool) -> _Run:
    """Both branches (pretrained, ``--init`` or resumed), early blocks frozen, and their optimizer."""
    n_cls = len(classes) if cfg.cls_weight > 0 else 0
    sk, ph = build_teacher(cfg, pretrained=cfg.arch in PRETRAINED and not cfg.init, num_classes=n_cls)
    if cfg.init:
        init_from(sk, ph, cfg.init, classes)
    # channels_last: ~1.3x faster depthwise convolutions on CPU, and the layout bf16 convolutions want on a GPU
    sk.to(device, memory_format=torch.channels_last).train()
    ph.to(device, memory_format=torch.channels_last).train()
    frozen = freeze_early(sk, cfg.freeze_blocks) + freeze_early(ph, cfg.freeze_blocks)
    opt = torch.optim.AdamW(param_groups(sk, ph, cfg.lr, cfg.head_lr_mult), lr=cfg.lr, weight_decay=cfg.weight_decay)
    run = _Run(cfg, sk, ph, opt, frozen, classes)
    run.step, run.best, run.history = resume(Path(cfg.out), {"sketch": sk, "photo": ph}, opt, main)
    return run


def main(argv: list[str] | None = None) -> dict:
    cfg = parse(argv)
    d, device = start_run(cfg.seed, cfg.device)
    render, pspec = RenderSpec(), PhotoSpec("hed", cfg.photo_size)
    sources, val = _sources(cfg)
    if d.main:
        write_run_info(Path(cfg.out), cfg)
    classes = source_classes(sources)
    class_index = {c: i for i, c in enumerate(classes)}
    run = _build(cfg, classes, device, d.main)
    params = teacher_params(run.sk, run.ph)

    def make_fresh(rng: np.random.Generator) -> dict:
        src = pick_source(sources, cfg.mix, rng)
        b = sample_batch(src, cfg.batch, rng, class_index)
        return {"xs": sketch_tensor(b.sketches, cfg.canvas, render, b.flips),
                "xp": photo_tensor(b.photo_ink, pspec, render, b.flips), "labels": b.labels, "src": src.name}

    make = _cached_batches(cfg, run, sources, class_index) if cfg.cache_blocks > 0 else make_fresh
    last_loss = [0.0]

    def train(b: dict, step: int, time_fraction: float) -> dict[str, str]:
        lr = cosine_lr(step, cfg.steps, cfg.lr, cfg.warmup, time_fraction)
        for g in run.opt.param_groups:
            g["lr"] = lr * g.get("lr_mult", 1.0)
        loss = _loss_cached(cfg, run.sk, run.ph, b, device) if cfg.cache_blocks > 0 else _loss(cfg, run.sk, run.ph, b, device)
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        if d.world > 1:
            allreduce_grads(params, d.world)
        run.opt.step()
        last_loss[0] = float(loss.item())
        return {"loss": f"{last_loss[0]:.3f}", "src": b["src"][:6]}

    def validate(step: int, elapsed: float, timing: dict) -> None:
        run.step = step
        run.validate(val, last_loss[0], elapsed, timing)

    workers = 0 if cfg.cache_blocks > 0 else default_workers(device, cfg.workers)
    stream = batches(make, cfg.seed * 1000 + d.rank + run.step, workers)
    run.step = run_loop(stream, run.step, cfg.steps, cfg.time_budget_s, cfg.val_every, "teacher", d.main, train, validate)
    return finish_run(Path(cfg.out), run.best, run.step, run.history, d.main)


if __name__ == "__main__":
    main()
