"""Train the teacher ("full network"): two EfficientNet-Lite branches (sketch; photo HED edges),
ImageNet-initialised (or ``--init`` from an earlier teacher), in-batch InfoNCE + triplet loss, plus a
sketch category head over the classes of the sources used (ChairV2, Sketchy10, gallery pseudo-sketches).

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

from sketchdown.build import EncoderConfig, build_encoder
from sketchdown.losses import info_nce, triplet_loss
from sketchdown.metrics import summary
from sketchdown.photo import EdgeCache, PhotoSpec
from sketchdown.render import RenderSpec

from .common import (
    allreduce_grads,
    apply_smoke,
    checkpoint_step,
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
    seed: int = 0
    device: str = "auto"
    smoke: bool = False


def parse(argv: list[str] | None) -> TeacherConfig:
    cfg = parse_config(TeacherConfig, argv, __doc__)
    if cfg.smoke:
        cfg = apply_smoke(cfg, arch="lite0", canvas=64, photo_size=64, batch=4, steps=4, val_every=2, warmup=1, n_val=4, freeze_blocks=2)
    return cfg


def build_teacher(cfg: TeacherConfig, pretrained: bool = True, *, num_classes: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    w = "imagenet" if pretrained else None
    sk = build_encoder(EncoderConfig(cfg.arch, cfg.embed_dim, 1, num_classes), weights=w)
    ph = build_encoder(EncoderConfig(cfg.arch, cfg.embed_dim, 1, 0), weights=w)
    return sk, ph


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
    sk, ph = build_teacher(cfg, pretrained=cfg.arch.startswith("lite") and not cfg.init, num_classes=len(classes))
    if cfg.init:
        init_from(sk, ph, cfg.init, classes)
    # channels_last: ~1.3x faster depthwise convolutions on CPU
    sk.to(device, memory_format=torch.channels_last).train()
    ph.to(device, memory_format=torch.channels_last).train()
    frozen = freeze_early(sk, cfg.freeze_blocks) + freeze_early(ph, cfg.freeze_blocks)
    params = [p for p in list(sk.parameters()) + list(ph.parameters()) if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
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
    rng = np.random.default_rng(cfg.seed * 1000 + d.rank + step)
    bar = tqdm(total=cfg.steps, initial=step, disable=not d.main, desc="teacher", mininterval=5)
    t0 = time.time()
    while step < cfg.steps:
        src = pick_source(sources, cfg.mix, rng)
        b = sample_batch(src, cfg.batch, rng, class_index)
        xs = sketch_tensor(b.sketches, cfg.canvas, render, b.flips).to(device, memory_format=torch.channels_last)
        xp = photo_tensor(b.photo_ink, pspec, render, b.flips).to(device, memory_format=torch.channels_last)
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, cfg.steps, cfg.lr, cfg.warmup)
        es, logits = sk.forward_with_logits(xs)
        ep = ph(xp)
        loss = info_nce(es, ep, cfg.temperature) + triplet_loss(es, ep, cfg.margin)
        lab = b.labels.to(device)
        if logits is not None and (lab >= 0).any():
            loss = loss + cfg.cls_weight * F.cross_entropy(logits[lab >= 0], lab[lab >= 0], label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if d.world > 1:
            allreduce_grads(params, d.world)
        opt.step()
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}", src=src.name[:6])
        if d.main and (step % cfg.val_every == 0 or step == cfg.steps):
            pe = encode_photos(ph, val.photo_ink, pspec, render)
            m = summary(evaluate_ranks(sk, pe, val, cfg.canvas, render))
            score = m["acc@1"] + m["acc@10"]
            m.update(step=step, loss=float(loss.item()), elapsed_s=round(time.time() - t0, 1))
            history.append(m)
            print(json.dumps(m), file=sys.stderr, flush=True)
            state = dict(
                sketch=sk.state_dict(), photo=ph.state_dict(), opt=opt.state_dict(), step=step,
                best=max(best, score), history=json.dumps(history), config=json.dumps(dataclasses.asdict(cfg)),
                classes=json.dumps(classes),
            )
            best = checkpoint_step(out, state, score, best)
            for m_ in frozen:  # evaluation put everything in train mode again
                m_.eval()
    bar.close()
    return finish_run(out, best, step, history, d.main)


if __name__ == "__main__":
    main()
