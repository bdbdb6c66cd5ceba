"""Train the teacher ("full network"): a sketch branch and a photo branch (the photo's HED edge map,
drawn like a sketch), in-batch InfoNCE + triplet loss, plus a sketch category head over the classes of
the sources used (ChairV2, Sketchy10, gallery pseudo-sketches) when ``--cls-weight`` > 0.

Two families: EfficientNet-Lite (ImageNet init, the sets shipped before the VGG-16 full network) and
the paper's VGG-16 Triplet-SN (``--arch vgg16 --canvas 256 --photo-size 256 --share-trunk``): one VGG-16
trunk initialised from HED (ImageNet VGG-16 fine-tuned for edges), shared by both branches as in
Triplet-SN, each branch with its own linear projection. ``--init`` starts from an earlier teacher.
On a GPU (``--device auto``) batches are rendered in ``--workers`` processes and the networks run in bf16.

    python -m training.train_teacher --out runs/teacher            # real run (see training/README.md)
    python -m training.train_teacher --smoke --out /tmp/t          # seconds, synthetic data
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from sketchdown.bundles.build import EncoderConfig, build_encoder
from sketchdown.bundles.photo import EdgeCache, PhotoSpec
from sketchdown.eval.metrics import summary
from sketchdown.models.losses import info_nce, triplet_loss
from sketchdown.models.modules import EmbeddingEncoder
from sketchdown.sketch.render import RenderSpec

from .common import (
    Budget,
    Pace,
    allreduce_grads,
    apply_smoke,
    autocast,
    checkpoint_step,
    configure_device,
    cosine_lr,
    encode_photos,
    evaluate_ranks,
    finish_run,
    freeze_early,
    init_distributed,
    load_checkpoint,
    load_sources,
    parse_config,
    photo_tensor,
    pick_device,
    pick_source,
    sample_batch,
    seed_all,
    set_threads,
    sketch_tensor,
    source_classes,
    write_run_info,
)
from .loader import batches, default_workers

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
    steps: int = 700
    lr: float = 2e-4
    weight_decay: float = 1e-4
    warmup: int = 50
    use_sketchy: bool = True
    use_gallery: bool = False  # pseudo-sketches of the default gallery's training photos
    mix: tuple[float, ...] = (0.6, 0.4, 0.0)  # batch share per source: chairv2, sketchy10, gallery
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
    w, b = sd.pop("classifier.weight"), sd.pop("classifier.bias")
    missing, unexpected = sk.load_state_dict(sd, strict=False)
    if unexpected or set(missing) != {"classifier.weight", "classifier.bias"}:
        raise ValueError(f"{path}: not a matching teacher (missing {missing}, unexpected {unexpected})")
    ph.load_state_dict(ck["photo"])
    with torch.no_grad():
        for i, c in enumerate(classes):
            if c in old:
                sk.classifier.weight[i] = w[old.index(c)]
                sk.classifier.bias[i] = b[old.index(c)]


def main(argv: list[str] | None = None) -> dict:
    cfg = parse(argv)
    set_threads()
    d = init_distributed()
    seed_all(cfg.seed + d.rank)
    device = pick_device(cfg.device)
    configure_device(device)
    out = Path(cfg.out)
    render, pspec = RenderSpec(), PhotoSpec("hed", cfg.photo_size)

    if cfg.smoke:
        from .synthetic import synthetic_source

        sources, val = [synthetic_source(12, seed=1)], synthetic_source(6, seed=2, name="val")
    else:
        sources, val = load_sources(cfg.data_root, cfg.use_sketchy, cfg.n_val, EdgeCache(), cfg.use_gallery)
    if d.main:
        write_run_info(out, cfg)

    classes = source_classes(sources)
    class_index = {c: i for i, c in enumerate(classes)}
    n_cls = len(classes) if cfg.cls_weight > 0 else 0
    sk, ph = build_teacher(cfg, pretrained=cfg.arch in PRETRAINED and not cfg.init, num_classes=n_cls)
    if cfg.init:
        init_from(sk, ph, cfg.init, classes)
    # channels_last: ~1.3x faster depthwise convolutions on CPU, and the layout bf16 convolutions want on a GPU
    sk.to(device, memory_format=torch.channels_last).train()
    ph.to(device, memory_format=torch.channels_last).train()
    frozen = freeze_early(sk, cfg.freeze_blocks) + freeze_early(ph, cfg.freeze_blocks)
    params = teacher_params(sk, ph)
    opt = torch.optim.AdamW(param_groups(sk, ph, cfg.lr, cfg.head_lr_mult), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, best, history = 0, -1.0, []
    last = out / "last.pt"
    if last.is_file():  # resume
        ck = load_checkpoint(last)
        sk.load_state_dict(ck["sketch"])
        ph.load_state_dict(ck["photo"])
        opt.load_state_dict(ck["opt"])
        step, best, history = ck["step"], ck["best"], json.loads(ck["history"])
        if d.main:
            print(f"resumed at step {step}", file=sys.stderr)

    def make(rng: np.random.Generator) -> dict:
        src = pick_source(sources, cfg.mix, rng)
        b = sample_batch(src, cfg.batch, rng, class_index)
        return {"xs": sketch_tensor(b.sketches, cfg.canvas, render, b.flips),
                "xp": photo_tensor(b.photo_ink, pspec, render, b.flips), "labels": b.labels, "src": src.name}

    stream = batches(make, cfg.seed * 1000 + d.rank + step, default_workers(device, cfg.workers))
    budget = Budget(cfg.steps, cfg.time_budget_s)
    bar = tqdm(total=cfg.steps, initial=step, disable=not d.main, desc="teacher", mininterval=5)
    t0 = time.time()
    cl = torch.channels_last
    pace = Pace()
    while not budget.done(step):
        b = pace.wait(stream)
        xs = b["xs"].to(device, memory_format=cl, non_blocking=True)
        xp = b["xp"].to(device, memory_format=cl, non_blocking=True)
        lr = cosine_lr(step, cfg.steps, cfg.lr, cfg.warmup, budget.time_fraction())
        for g in opt.param_groups:
            g["lr"] = lr * g.get("lr_mult", 1.0)
        with autocast(device):
            es, logits = sk.forward_with_logits(xs)
            ep = ph(xp)
        es, ep = es.float(), ep.float()
        loss = info_nce(es, ep, cfg.temperature) + triplet_loss(es, ep, cfg.margin)
        lab = b["labels"].to(device)
        if logits is not None and (lab >= 0).any():
            loss = loss + cfg.cls_weight * F.cross_entropy(logits.float()[lab >= 0], lab[lab >= 0], label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if d.world > 1:
            allreduce_grads(params, d.world)
        opt.step()
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}", src=b["src"][:6])
        if d.main and (step % cfg.val_every == 0 or step == cfg.steps or budget.done(step)):
            pe = encode_photos(ph, val.photo_ink, pspec, render)
            m = summary(evaluate_ranks(sk, pe, val, cfg.canvas, render))
            score = m["acc@1"] + m["acc@10"]
            m.update(step=step, loss=float(loss.item()), elapsed_s=round(time.time() - t0, 1), **pace.report())
            history.append(m)
            print(json.dumps(m), file=sys.stderr, flush=True)
            state = dict(
                sketch=sk.state_dict(), photo=ph.state_dict(), opt=opt.state_dict(), step=step,
                best=max(best, score), history=json.dumps(history), config=json.dumps(dataclasses.asdict(cfg)),
                classes=json.dumps(classes if n_cls else []),
            )
            best = checkpoint_step(out, state, score, best)
            for m_ in frozen:  # evaluation put everything in train mode again
                m_.eval()
    bar.close()
    return finish_run(out, best, step, history, d.main)


if __name__ == "__main__":
    main()
