"""The canvas selector's training data: validation sketches x augmented variants x prefix lengths, and the
reward of every (sample, canvas) through the frozen student, computed once and cached in the run folder
(``rewards.npz``) under a key of everything it depends on."""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from sketchdown.bundles.build import EncoderConfig, build_encoder
from sketchdown.bundles.flops import encoder_flops
from sketchdown.bundles.manifest import load_manifest
from sketchdown.bundles.photo import EdgeCache, PhotoSpec
from sketchdown.eval.data import load_doodles
from sketchdown.sketch.hog import HogSpec, ink_hogs, sketch_hogs
from sketchdown.sketch.render import RenderSpec
from sketchdown.sketch.strokes import Sketch, stroke_sequence

from .augment import augment_vector
from .checkpoints import load_checkpoint, load_fusion, load_teacher
from .common import (
    Source,
    distractor_inks,
    encode_photos,
    load_sources,
    make_source,
    parse_holdout,
    photo_fold_of,
    sketch_tensor,
    subset_source,
)
from .configs import recorded_config
from .distill import DistillConfig, training_data
from .runs import teacher_for

if TYPE_CHECKING:
    from .train_selector import SelectorConfig


@torch.inference_mode()
def reward_table(student: torch.nn.Module, canvases: tuple[int, ...], sketches: list[Sketch], true: np.ndarray,
                 photo_emb: torch.Tensor, render: RenderSpec, margin: float, triplet_weight: float,
                 hog_sims: torch.Tensor | None = None, alpha: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(R_acc, rank) for every (sample, canvas): (N, K) float32 and (N, K) int32 (1 = true photo first).
    ``true``: (N,) photo index, or a (N, P) bool mask of right photos (category-level: the best-scoring
    right photo is the positive, ranks as ``metrics.rank_of_true``). ``hog_sims`` (N, P): the
    canvas-independent HOG similarity, fused as (cos + alpha * hog) / (1 + alpha) so the hinge margin
    keeps its scale."""
    out = np.zeros((len(sketches), len(canvases)), np.float32)
    ranks = np.zeros((len(sketches), len(canvases)), np.int32)
    n = len(sketches)
    mask = torch.as_tensor(true) if np.ndim(true) == 2 else torch.nn.functional.one_hot(
        torch.as_tensor(true), photo_emb.shape[0]).bool()
    for ci, c in enumerate(canvases):
        embs = torch.cat([student(sketch_tensor(sketches[i : i + 128], c, render), ci) for i in range(0, n, 128)])
        sims = embs @ photo_emb.T
        if hog_sims is not None and alpha > 0:
            sims = (sims + alpha * hog_sims) / (1 + alpha)
        pos = sims.masked_fill(~mask, float("-inf")).max(1).values
        rank = ((sims >= pos[:, None]) & ~mask).sum(1).float() + 1
        hinge = torch.relu(sims - pos[:, None] + margin).masked_fill(mask, 0.0)
        out[:, ci] = (1.0 / rank - triplet_weight * hinge.mean(1)).numpy()
        ranks[:, ci] = rank.int().numpy()
    return out, ranks


def _file_id(path: str | None) -> str:
    """Size and mtime of a file the reward table depends on ("" when unset or missing)."""
    if not path or not Path(path).is_file():
        return ""
    st = Path(path).stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def load_student(cfg: SelectorConfig) -> tuple[torch.nn.Module, tuple[int, ...], torch.nn.Module, PhotoSpec, int,
                                                str | None, tuple[HogSpec, float, float] | None]:
    """(student, canvases, photo encoder, photo spec, n_val, data root, fusion) from a distill checkpoint
    (fusion from ``--fusion``) or a weight-set folder (its own HOG spec and weights). fusion: None or
    (HOG spec, instance-level alpha, category-level alpha)."""
    fusion = load_fusion(cfg.fusion, cfg.fusion_branch) if cfg.fusion else None
    if Path(cfg.student).is_dir():
        from sketchdown.bundles.bundle import load_bundle

        b = load_bundle(cfg.student)
        if cfg.student_branch not in b.sketch:
            raise SystemExit(f"{cfg.student}: no sketch branch {cfg.student_branch!r} (has {sorted(b.sketch)})")
        br = b.sketch[cfg.student_branch]
        # the student's recorded training config: its validation split is what the selector trains on
        scfg = recorded_config(DistillConfig, load_manifest(cfg.student).recorded(cfg.student_branch).get("config", {}),
                               f"{cfg.student} provenance.{cfg.student_branch}")
        if fusion is None and b.hog is not None and br.hog_alpha > 0:
            fusion = (b.hog, br.alpha_for("instance"), br.alpha_for("category"))
        return br.encoder, br.canvas_sizes, b.photo_encoder, b.photo_spec, scfg.n_val, scfg.data_root, fusion
    ck = load_checkpoint(Path(cfg.student))
    scfg = recorded_config(DistillConfig, json.loads(ck["config"]), cfg.student)
    student = build_encoder(EncoderConfig(**json.loads(ck["encoder"])), weights=ck["student"])
    _, photo_enc, tcfg, _ = load_teacher(cfg.teacher or scfg.teacher)
    return student, tuple(scfg.canvases), photo_enc, PhotoSpec("hed", tcfg["photo_size"]), scfg.n_val, scfg.data_root, fusion


@dataclass
class Samples:
    """The selector's training data: N samples (validation sketches x variants x prefixes), K canvases."""

    seqs: list[np.ndarray]  # RDP-simplified stroke-5 sequence per sample, (L, 5) float32
    group: np.ndarray  # (N,) int64: what folds split by (a ChairV2 photo; a doodle's kind, offset by 10**6)
    full: np.ndarray  # (N,) bool: the complete sketch as drawn
    r_acc: np.ndarray  # (N, K) float32 accuracy reward
    rank: np.ndarray  # (N, K) int32 rank of the true photo
    flops: np.ndarray  # (K,) sketch-branch FLOPs per canvas
    r_comp: np.ndarray  # (K,) compute reward in [-1, 0]
    canvases: tuple[int, ...]
    source: np.ndarray  # (N,) int64 index into ``sources``
    sources: tuple[str, ...] = ("chairv2",)
    domain: np.ndarray | None = None  # (N,) int64: what the policy's loss weighs equally (None: ``source``)

    def __post_init__(self) -> None:
        if self.domain is None:
            self.domain = self.source


@dataclass
class _Part:
    source: str
    sketches: list[Sketch]
    true: np.ndarray  # (n,) photo index or (n, P) bool mask of right photos
    full: np.ndarray  # (n,) bool
    group: np.ndarray  # (n,) int64
    inks: list[np.ndarray]  # the P photos' edge maps
    # whose rankings the rewards are (None: the selector's own student and its photo encoder)
    student: torch.nn.Module | None = None
    photo: tuple[torch.nn.Module, PhotoSpec] | None = None


# sources weighed as one in the policy's loss: held-out training folds are more ChairV2 sketches like validation's
DOMAIN = {"chairv2-train": "chairv2"}
FOLD_GROUP = 2 * 10**6  # CV groups of held-out training photos: FOLD_GROUP + 1000 * fold + photo (no clash with val photos)


def _samples(source: str, src: Source, inks: list[np.ndarray], variants: int, prefix_steps: int,
             rng: np.random.Generator, group_offset: int = 0) -> _Part:
    """Every sketch of ``src`` x ``variants`` (the first as drawn, the others augmented) x prefix lengths,
    ranked among ``inks`` (the source's photos first, then any distractors)."""
    truth = src.data.true()  # (n,) photo index, or (n, photos) mask for category-level pairs
    cat = truth.ndim == 2
    if cat and len(inks) != truth.shape[1]:
        raise ValueError("category-level samples are ranked among their own photos only (no distractors)")
    kinds = {pos: k for k, pos in enumerate(sorted({tuple(sorted(p)) for p in src.data.positives}))} if cat else {}
    sketches, true, full, group = [], [], [], []
    for i in range(len(src.data.sketches)):
        base = src.sketch(i)
        g = 10**6 + kinds[tuple(sorted(src.data.positives[i]))] if cat else group_offset + int(truth[i])
        for v in range(variants):
            sk = base if v == 0 else augment_vector(base, rng, p_prefix=0.0)
            for f in np.linspace(1.0 / prefix_steps, 1.0, prefix_steps):
                sketches.append(sk.prefix_ink(float(f)))
                true.append(truth[i])
                full.append(v == 0 and f == 1.0)  # the sketch as drawn: what test Acc@1 is measured on
                group.append(g)
    return _Part(source, sketches, np.array(true), np.array(full), np.array(group, np.int64), inks)


@dataclass
class _Models:
    """The frozen networks the rewards come from, and where the student's validation split lives."""

    student: torch.nn.Module
    canvases: tuple[int, ...]
    photo_enc: torch.nn.Module
    pspec: PhotoSpec
    n_val: int  # ChairV2 training photos held out as the student's validation split
    root: str | None  # the data root the student was trained on
    fusion: tuple[HogSpec, float, float] | None  # (HOG spec, instance-level alpha, category-level alpha)


def _models(cfg: SelectorConfig) -> _Models:
    if cfg.smoke and cfg.student == type(cfg).student:  # smoke without a checkpoint: random tiny nets
        canvases = (32, 48)
        student = build_encoder(EncoderConfig("lite0", 32, len(canvases), 0), weights=None)
        photo_enc = build_encoder(EncoderConfig("lite0", 32, 1, 0), weights=None)
        return _Models(student, canvases, photo_enc, PhotoSpec("hed", 64), 0, None, None)
    return _Models(*load_student(cfg))


def _parts(cfg: SelectorConfig, m: _Models, rng: np.random.Generator) -> list[_Part]:
    """ChairV2 validation samples (ranked among its photos and any distractors), then the doodles' with ``doodle_variants``."""
    extra: list[np.ndarray] = []  # distractor photos (none in smoke mode)
    if cfg.smoke:
        from .synthetic import synthetic_source

        val = synthetic_source(6, seed=2, name="val")
    else:
        train, val = load_sources(cfg.data_root or m.root, False, m.n_val, EdgeCache())
        extra = distractor_inks(train[0], cfg.distractors, rng)
    m.student.eval()
    parts = [_samples("chairv2", val, list(val.photo_ink) + extra, cfg.variants, cfg.prefix_steps, rng)]
    parts += _fold_parts(cfg, m, rng)
    if cfg.doodle_variants > 0:
        if cfg.smoke:
            from .synthetic import category_level, synthetic_source

            dv = category_level(synthetic_source(6, seed=4, name="doodles-val"))
        else:
            dv = make_source("doodles-val", load_doodles("val"), EdgeCache())
        parts.append(_samples("doodles", dv, list(dv.photo_ink), cfg.doodle_variants, cfg.prefix_steps, rng))
    return parts


def _fold_parts(cfg: SelectorConfig, m: _Models, rng: np.random.Generator) -> list[_Part]:
    """Per ``--fold-students`` checkpoint (trained with ``distill --holdout f/k``): the sketches of its held-out
    training photos, ranked among those photos by that student and its teacher's photo encoder."""
    out = []
    for path in filter(None, (p.strip() for p in cfg.fold_students.split(","))):
        ck = load_checkpoint(Path(path))
        scfg = recorded_config(DistillConfig, json.loads(ck["config"]), path)
        if not scfg.holdout:
            raise SystemExit(f"{path}: not trained with --holdout, its training sketches are not held out")
        if tuple(scfg.canvases) != tuple(m.canvases):
            raise SystemExit(f"{path}: canvases {tuple(scfg.canvases)} differ from the selector's student's {m.canvases}")
        fold, folds = parse_holdout(scfg.holdout)
        student = build_encoder(EncoderConfig(**json.loads(ck["encoder"])), weights=ck["student"]).eval()
        _, photo_enc, _, pspec, _ = teacher_for(scfg.teacher, scfg.smoke and scfg.teacher == DistillConfig.teacher)
        # the ChairV2 training source as that student saw it (its first source; synthetic in smoke mode)
        train = training_data(dataclasses.replace(scfg, data_root=scfg.data_root or cfg.data_root or m.root, doodle_val=False))[0][0]
        keep = np.flatnonzero(photo_fold_of(len(train.data.photos), folds) == fold).tolist()
        held = subset_source(train, keep, "chairv2-train")
        pt = _samples("chairv2-train", held, list(held.photo_ink), cfg.variants, cfg.prefix_steps, rng,
                      FOLD_GROUP + 1000 * fold)
        out.append(dataclasses.replace(pt, student=student, photo=(photo_enc.eval(), pspec)))
    return out


def _rewards(cfg: SelectorConfig, m: _Models, parts: list[_Part]) -> tuple[np.ndarray, np.ndarray]:
    """(R_acc, rank), each (N, K), of every part's samples; cached in ``cfg.out``."""
    render = RenderSpec()
    # the reward table is the slow part (every sample x canvas through the student): cached in the run
    # folder under a key of everything it depends on, so re-running REINFORCE settings is quick
    student_id = _file_id(str(Path(cfg.student) / "manifest.json") if Path(cfg.student).is_dir() else cfg.student)
    key = json.dumps([3, cfg.student, student_id, cfg.student_branch, cfg.fusion, _file_id(cfg.fusion), cfg.fusion_branch,
                      cfg.distractors, cfg.variants, cfg.doodle_variants, cfg.prefix_steps, cfg.margin,
                      cfg.triplet_weight, cfg.seed, [len(pt.sketches) for pt in parts],
                      [[p, _file_id(p)] for p in cfg.fold_students.split(",") if p]])
    cache = Path(cfg.out) / "rewards.npz"
    cached = np.load(cache) if cache.is_file() else None
    if cached is not None and str(cached["key"]) == key:
        return cached["r_acc"], cached["rank"]
    tables = []
    for pt in parts:
        hog_sims, alpha = None, 0.0
        if m.fusion is not None:
            spec, instance_alpha, category_alpha = m.fusion
            alpha = category_alpha if pt.true.ndim == 2 else instance_alpha
            hog_sims = torch.from_numpy(sketch_hogs(pt.sketches, spec, render) @ ink_hogs(pt.inks, spec, render).T)
        photo_enc, pspec = pt.photo or (m.photo_enc, m.pspec)
        photo_emb = encode_photos(photo_enc, pt.inks, pspec, render)
        tables.append(reward_table(pt.student or m.student, m.canvases, pt.sketches, pt.true, photo_emb, render, cfg.margin,
                                   cfg.triplet_weight, hog_sims, alpha))
    r_acc, rank = np.concatenate([t[0] for t in tables]), np.concatenate([t[1] for t in tables])
    np.savez(cache, r_acc=r_acc, rank=rank, key=np.array(key))
    return r_acc, rank


def prepare(cfg: SelectorConfig, rng: np.random.Generator) -> Samples:
    """Samples and their reward table (cached in ``cfg.out``) for the student ``cfg.student``."""
    m = _models(cfg)
    parts = _parts(cfg, m, rng)
    r_acc, rank = _rewards(cfg, m, parts)
    flops = np.array([encoder_flops(m.student, c, ci) for ci, c in enumerate(m.canvases)], np.float64)
    r_comp = -(flops - flops.min()) / max(1.0, flops.max() - flops.min())
    seqs = [stroke_sequence(sk) for pt in parts for sk in pt.sketches]
    group = np.concatenate([pt.group for pt in parts])
    names = list(dict.fromkeys(pt.source for pt in parts))  # parts of one source (training folds) share its index
    source = np.concatenate([np.full(len(pt.sketches), names.index(pt.source), np.int64) for pt in parts])
    dom = np.array([names.index(DOMAIN[n]) if DOMAIN.get(n) in names else i for i, n in enumerate(names)], np.int64)
    print(json.dumps({"samples": len(seqs), "mean_r_acc_per_canvas": r_acc.mean(0).round(3).tolist(),
                      "gflops": (flops / 1e9).round(4).tolist()}), file=sys.stderr)
    return Samples(seqs, group, np.concatenate([pt.full for pt in parts]), r_acc, rank, flops, r_comp, tuple(m.canvases),
                   source, tuple(names), dom[source])
