"""Refit the sketch-recognition heads of a teacher and its students on frozen features.

Why this exists: the default teacher was initialised from the ChairV2 teacher, whose category head had
only ever seen "chair"; its 300-step fine-tune at lr 1e-4 never overturned that prior, so the head (and
the students trained against it) predicted "chair" for every sketch. The embeddings are untouched by
the heads, so refitting only the linear heads fixes recognition without changing retrieval.

Per model: pooled features of up to ``max_per_source`` training sketches per source (unaugmented; for
students at every canvas, through that canvas' BN set), then a linear head trained by full-batch Adam:
the teacher and ``--direct`` students with cross-entropy, ``--distilled`` students with
(1 - alpha) * CE + alpha * Hinton KD from the refit teacher's logits on the same sketches.

    python -m training.fit_heads --teacher runs/teacher_default/last.pt \
        --distilled runs/student_default/best.pt --direct runs/student_nokd_default/best.pt --out runs/heads

``--teacher weights/default`` (a shipped set) keeps that teacher's head as it is and refits only the
students' heads against it (no ``teacher.pt`` is written: export reads the teacher from the folder).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sketchdown.bundles.build import EncoderConfig, build_encoder
from sketchdown.bundles.photo import EdgeCache
from sketchdown.models.losses import hinton_kd
from sketchdown.sketch.render import RenderSpec

from .checkpoints import load_checkpoint, load_teacher, save_checkpoint
from .common import load_sources, sketch_tensor
from .env import autocast, git_sha, set_threads
from .synthetic import synthetic_source


@torch.no_grad()  # not inference_mode: the heads are trained on these tensors afterwards
def features(encoder: torch.nn.Module, sketches: list, canvas: int, canvas_index: int = 0, bs: int = 64) -> torch.Tensor:
    encoder.eval()
    with autocast(torch.device("cpu")):  # bf16 where native: a VGG-16 teacher's pass at 256 px is ~5x faster
        out = [encoder.forward_features(sketch_tensor(sketches[i : i + bs], canvas, RenderSpec()), canvas_index).float()
               for i in range(0, len(sketches), bs)]
    return torch.cat(out)


def fit_linear(x: torch.Tensor, y: torch.Tensor, n_cls: int, soft: torch.Tensor | None = None, alpha: float = 0.7,
               t: float = 4.0, steps: int = 300, lr: float = 0.01, wd: float = 1e-3) -> torch.nn.Linear:
    """A linear head on fixed features ``x`` (N, F), labels ``y`` (N,); with ``soft`` teacher logits, CE + Hinton KD."""
    head = torch.nn.Linear(x.shape[1], n_cls)
    opt = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=wd)
    for _ in range(steps):
        logits = head(x)
        loss = F.cross_entropy(logits, y, label_smoothing=0.1)
        if soft is not None:
            loss = (1 - alpha) * loss + alpha * hinton_kd(logits, soft, t)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return head


def labelled_sketches(sources: list, classes: list[str], max_per_source: int, rng: np.random.Generator
                      ) -> tuple[list, torch.Tensor, dict[str, int]]:
    """(sketches, class index (N,) int64, skipped sketches per source): up to ``max_per_source`` per source of the
    kinds the head has (the gallery's are not among ChairV2's 11)."""
    index = {c: i for i, c in enumerate(classes)}
    sketches, labels, unknown = [], [], Counter()
    for s in sources:
        known = np.array([i for i, it in enumerate(s.data.sketches) if s.data.photo_labels[it.photo] in index], np.int64)
        unknown[s.name] = len(s.data.sketches) - len(known)
        for i in np.sort(known[rng.permutation(len(known))[:max_per_source]]):
            sketches.append(s.sketch(int(i)))
            labels.append(index[s.data.photo_labels[s.data.sketches[int(i)].photo]])
    return sketches, torch.tensor(labels), {k: v for k, v in unknown.items() if v}


def teacher_logits(teacher: str, t_sk: torch.nn.Module, ft: torch.Tensor, y: torch.Tensor, n_cls: int, out: Path) -> torch.Tensor:
    """The teacher's category logits on its features ``ft``: a shipped set's own head, or a head refit on
    ``y`` (written into ``out/teacher.pt``)."""
    if Path(teacher).is_dir():
        # a shipped set's teacher keeps its (already refit) head: its logits are the students' soft targets,
        # and export takes the teacher from the same folder, byte for byte
        if t_sk.classifier is None:
            raise SystemExit(f"{teacher}: the full network has no category head")
        with torch.no_grad():
            return t_sk.classifier(ft)
    head = fit_linear(ft, y, n_cls)
    tck = load_checkpoint(Path(teacher))
    tck["sketch"] = {**tck["sketch"], "classifier.weight": head.weight.detach().clone(), "classifier.bias": head.bias.detach().clone()}
    save_checkpoint(out / "teacher.pt", **tck)
    with torch.no_grad():
        return head(ft)


def refit_student(path: str, kd: bool, sketches: list, y: torch.Tensor, classes: list[str], t_logits: torch.Tensor,
                  out: Path) -> float:
    """Refit a student's head over every canvas' features (CE, + Hinton KD from ``t_logits`` when ``kd``), write
    ``out/<run>.pt``; returns its training accuracy."""
    ck = load_checkpoint(Path(path))
    canvases = json.loads(ck["config"])["canvases"]
    enc_cfg = EncoderConfig(**{**json.loads(ck["encoder"]), "num_classes": len(classes)})
    sd = {k: v for k, v in ck["student"].items() if not k.startswith("classifier.")}
    st = build_encoder(enc_cfg, weights=None)
    st.load_state_dict(sd, strict=False)
    # one head over every canvas' features: the app asks it at whatever canvas the selector picked
    fs = torch.cat([features(st, sketches, c, ci) for ci, c in enumerate(canvases)])
    ys = y.repeat(len(canvases))
    head = fit_linear(fs, ys, len(classes), t_logits.repeat(len(canvases), 1) if kd else None)
    with torch.no_grad():
        acc = float((head(fs).argmax(-1) == ys).float().mean())
    ck["student"] = {**sd, "classifier.weight": head.weight.detach().clone(), "classifier.bias": head.bias.detach().clone()}
    ck["encoder"] = json.dumps(enc_cfg.to_dict())
    ck["classes"] = json.dumps(classes)
    ck["heads"] = json.dumps({"refit": "fit_heads", "kd": kd})
    save_checkpoint(out / f"{Path(path).parent.name}.pt", **ck)
    return acc


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", required=True)
    p.add_argument("--distilled", action="append", default=[], help="student checkpoint: head with CE + Hinton KD")
    p.add_argument("--direct", action="append", default=[], help="student checkpoint: head with CE only")
    p.add_argument("--out", required=True)
    p.add_argument("--data-root", default=None)
    p.add_argument("--max-per-source", type=int, default=1000)
    p.add_argument("--use-doodles", action="store_true", help="also fit on Quick, Draw! doodles of the gallery's kinds")
    p.add_argument("--smoke", action="store_true", help="synthetic sketches (classes class0..2), for the tests")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    set_threads()
    torch.manual_seed(a.seed)
    out = Path(a.out)
    t_sk, _, tcfg, classes = load_teacher(a.teacher)
    if a.smoke:
        sources = [synthetic_source(12, seed=1)]
    else:
        sources, _ = load_sources(a.data_root, True, 40, EdgeCache(), use_gallery=True, use_doodles=a.use_doodles)
    sketches, y, unknown = labelled_sketches(sources, classes, a.max_per_source, np.random.default_rng(a.seed))
    if not len(y):
        raise SystemExit(f"{a.teacher}: none of the training sketches has one of its classes {classes}")
    report: dict = {"sketches": len(y), "sources": [s.name for s in sources], "skipped_unknown_class": unknown,
                    "git_sha": git_sha()}
    cache = out / "teacher_features.pt"  # the teacher pass is the slow part (minutes at 224 px)
    cached = load_checkpoint(cache) if cache.is_file() else {}
    if cached.get("n") == len(y):
        ft = cached["features"]
    else:
        ft = features(t_sk, sketches, tcfg["canvas"])
        save_checkpoint(cache, features=ft, n=len(y), teacher=a.teacher)
    t_logits = teacher_logits(a.teacher, t_sk, ft, y, len(classes), out)
    report["teacher_train_acc"] = float((t_logits.argmax(-1) == y).float().mean())
    for path, kd in [(q, True) for q in a.distilled] + [(q, False) for q in a.direct]:
        report[f"{Path(path).parent.name}_train_acc"] = refit_student(path, kd, sketches, y, classes, t_logits, out)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
