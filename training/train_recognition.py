"""Sketch recognition students (the seed paper's setting): a light classifier trained on sketch
categories directly, or with Hinton soft-target distillation from the teacher's category head.

    python -m training.train_recognition --arch mobilenet_v2_prune1 --out runs/recog/prune1_kd
    python -m training.train_recognition --arch mobilenet_v2_prune1 --no-kd --out runs/recog/prune1
    python -m training.train_recognition --smoke --out /tmp/r

Loss: (1 - alpha) * CE(labels) + alpha * T^2 * KL(softmax(z_t / T) || softmax(z_s / T)) with --kd,
CE alone with --no-kd. The teacher's logits are computed once per training sketch (unaugmented,
at the teacher's canvas) and cached next to the run: the teacher is ~20x the student's cost and
would otherwise dominate every step. Fixed schedule, no model selection: the last step is the model,
so the test evaluation in ``make_results`` is not tuned on.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from sketchdown.bundles.build import EncoderConfig, build_encoder
from sketchdown.bundles.photo import EdgeCache
from sketchdown.models.losses import hinton_kd
from sketchdown.sketch.render import RenderSpec

from .augment import augment_sketch
from .checkpoints import load_checkpoint, save_checkpoint, write_run_info
from .common import Source, load_sources, pick_source, sketch_tensor
from .configs import apply_smoke, parse_config
from .env import cosine_lr
from .runs import start_run, teacher_for


@dataclass
class RecognitionConfig:
    out: str = "runs/recog/mbv2_kd"
    teacher: str = "runs/teacher_default/best.pt"
    data_root: str | None = None
    arch: str = "mobilenet_v2"  # mobilenet_v2, mobilenet_v2_prune1, mobilenet_v2_prune2, lite0, ...
    canvas: int = 96
    kd: bool = True
    alpha: float = 0.7  # weight of the soft targets
    hinton_t: float = 4.0
    batch: int = 64  # sketches per step, all from one source
    steps: int = 400  # AdamW steps, cosine schedule to 0
    lr: float = 2e-3  # peak learning rate (a fresh MobileNetV2 learns from scratch)
    weight_decay: float = 1e-4
    warmup: int = 20  # linear warm-up steps
    mix: tuple[float, ...] = (0.2, 0.5, 0.3)  # chairv2, sketchy10, gallery
    max_per_source: int = 1600  # training sketches per source (bounds the one-off teacher pass)
    logits_cache: str = ""  # where the teacher's logits are kept (default: <out>/teacher_logits.pt); shareable
    seed: int = 0
    device: str = "auto"
    smoke: bool = False


@torch.inference_mode()
def teacher_logits(t_sk: torch.nn.Module, src: Source, idx: np.ndarray, canvas: int, render: RenderSpec, bs: int = 32) -> torch.Tensor:
    """(len(idx), C) teacher category logits for sketches ``idx`` of ``src`` (unaugmented)."""
    t_sk.eval()
    out = []
    for i in range(0, len(idx), bs):
        sks = [src.sketch(int(j)) for j in idx[i : i + bs]]
        out.append(t_sk.forward_with_logits(sketch_tensor(sks, canvas, render))[1])
    return torch.cat(out)


def soft_targets(cfg: RecognitionConfig, t_sk: torch.nn.Module, t_canvas: int, sources: list[Source],
                 keep: dict[str, np.ndarray], out: Path) -> dict[str, torch.Tensor]:
    """The teacher's category logits for the kept sketches of every source, cached (keyed by teacher, sample size and seed)."""
    cache = Path(cfg.logits_cache) if cfg.logits_cache else out / "teacher_logits.pt"
    ident = {"teacher": cfg.teacher, "max_per_source": cfg.max_per_source, "seed": cfg.seed}
    ck = load_checkpoint(cache) if cache.is_file() else None
    if ck is not None and all(ck.get(k) == v for k, v in ident.items()):
        return ck["logits"]
    t0 = time.time()
    soft = {s.name: teacher_logits(t_sk, s, keep[s.name], t_canvas, RenderSpec()) for s in sources}
    save_checkpoint(cache, logits=soft, **ident)
    print(f"teacher logits for {sum(len(v) for v in soft.values())} sketches in {time.time() - t0:.0f} s")
    return soft


def _batch(cfg: RecognitionConfig, src: Source, keep: np.ndarray, class_index: dict[str, int], rng: np.random.Generator,
           device: torch.device) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """(sketches (B, 3, canvas, canvas), labels (B,), their positions in ``keep``): augmented, half mirrored."""
    pos = rng.choice(len(keep), size=min(cfg.batch, len(keep)), replace=False)
    sks, labels = [], []
    for i in keep[pos]:
        sks.append(augment_sketch(src.sketch(int(i)), rng))
        labels.append(class_index[src.data.photo_labels[src.data.sketches[int(i)].photo]])
    flips = rng.random(len(sks)) < 0.5
    x = sketch_tensor(sks, cfg.canvas, RenderSpec(), flips).to(device, memory_format=torch.channels_last)
    return x, torch.tensor(labels, device=device), pos


def main(argv: list[str] | None = None) -> dict:
    cfg = parse_config(RecognitionConfig, argv, __doc__)
    if cfg.smoke:
        cfg = apply_smoke(cfg, canvas=48, batch=8, steps=4, warmup=1)
    _, device = start_run(cfg.seed, cfg.device)
    out = Path(cfg.out)
    t_sk, _, t_canvas, _, classes = teacher_for(cfg.teacher, cfg.smoke, pretrained=False)
    if cfg.smoke:
        from .synthetic import synthetic_source

        sources = [synthetic_source(12, seed=1)]
    else:
        sources, _ = load_sources(cfg.data_root, True, 40, EdgeCache(), use_gallery=True)
    write_run_info(out, cfg)
    class_index = {c: i for i, c in enumerate(classes)}
    sub_rng = np.random.default_rng(cfg.seed)
    keep = {s.name: np.sort(sub_rng.permutation(len(s.data.sketches))[: cfg.max_per_source]) for s in sources}
    soft = soft_targets(cfg, t_sk, t_canvas, sources, keep, out) if cfg.kd else {}
    del t_sk

    enc_cfg = EncoderConfig(cfg.arch, 0, 1, len(classes))
    w = "imagenet" if cfg.arch.startswith("lite") else None
    model = build_encoder(enc_cfg, weights=w).to(device, memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)
    t0 = time.time()
    bar = tqdm(range(cfg.steps), desc=f"recog {cfg.arch} kd={cfg.kd}", mininterval=5)
    for step in bar:
        src = pick_source(sources, cfg.mix, rng)
        x, y, pos = _batch(cfg, src, keep[src.name], class_index, rng, device)
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, cfg.steps, cfg.lr, cfg.warmup)
        _, logits = model.forward_with_logits(x)
        loss = F.cross_entropy(logits, y)
        if cfg.kd:
            loss = (1 - cfg.alpha) * loss + cfg.alpha * hinton_kd(logits, soft[src.name][torch.as_tensor(pos)].to(device), cfg.hinton_t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    result = {"steps": cfg.steps, "train_s": round(time.time() - t0, 1), "loss": float(loss.item())}
    save_checkpoint(
        out / "final.pt", model=model.state_dict(), config=json.dumps(dataclasses.asdict(cfg)),
        encoder=json.dumps(enc_cfg.to_dict()), classes=json.dumps(classes), result=json.dumps(result),
    )
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
