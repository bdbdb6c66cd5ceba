"""Shared training machinery: data mixing, batching, evaluation on a validation split,
checkpoints with config + git SHA, resume, device choice and torchrun (DDP, gloo) support."""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from sketchdown import config
from sketchdown.bundles.photo import EdgeCache, PhotoSpec, photo_canvas
from sketchdown.eval.data import PairedDataset, get_sketch, load_chairv2, load_doodles, load_gallery_pseudo, load_sketchy
from sketchdown.eval.metrics import rank_of_true
from sketchdown.sketch.hog import HogSpec
from sketchdown.sketch.render import RenderSpec, ink_to_tensor, render_sketch, render_sketch_sizes
from sketchdown.sketch.strokes import Sketch

from .augment import augment_ink, augment_sketch

REPO = Path(__file__).resolve().parent.parent


# ---- environment ---------------------------------------------------------------------------
def _git_version(rev: str, *status_args: str) -> str:
    """``git rev-parse rev`` + "-dirty" when ``git status --porcelain *status_args`` lists changes;
    "unknown" outside a git checkout."""
    try:
        def git(*args: str) -> str:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()

        return git("rev-parse", rev) + ("-dirty" if git("status", "--porcelain", *status_args) else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def git_sha() -> str:
    """HEAD's SHA, with "-dirty" when tracked files differ from it (the run's code is not that commit)."""
    return _git_version("HEAD", "--untracked-files=no")


def library_version() -> str:
    """Git tree hash of ``sketchdown/`` (the code every measurement runs through), "-dirty" when it has
    uncommitted changes. Unlike ``git_sha`` it stays the same across commits that only touch training
    scripts, docs or weights."""
    return _git_version("HEAD:sketchdown", "--", "sketchdown")


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA when present, else CPU; or an explicit torch device string."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed() -> DistInfo:
    """Under torchrun (WORLD_SIZE > 1) join a gloo (CPU) or nccl (GPU) process group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size())


def allreduce_grads(params: list[torch.nn.Parameter], world: int) -> None:
    """Data-parallel step: average gradients over the process group (what DDP does, minus its
    hooks, so methods other than forward, like forward_with_logits, stay usable)."""
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= world


def freeze_early(encoder: torch.nn.Module, n_blocks: int) -> list[torch.nn.Module]:
    """Freeze the early layers of a backbone (weights and BN stats): a Lite backbone's stem and first
    ``n_blocks`` blocks, or VGG-16's first ``n_blocks`` blocks (the backbone's ``early_modules``).

    The high-resolution early layers hold generic edge features and cost most of the backward
    pass; freezing them buys ~2x training speed on a CPU and guards 300 photos against overfitting.
    Returns the frozen modules (callers put them back in eval mode after ``.train()``).
    """
    bb = encoder.backbone
    if n_blocks <= 0 or not hasattr(bb, "early_modules"):
        return []
    mods = bb.early_modules(n_blocks)
    for m in mods:
        for p in m.parameters():
            p.requires_grad_(False)
        m.eval()
    return mods


class Pace:
    """Where a training loop's time goes: waiting for batches vs everything else, per step since the last report."""

    def __init__(self) -> None:
        self.steps, self.waited, self.t = 0, 0.0, time.time()

    def wait(self, stream: Any) -> Any:
        t = time.time()
        b = next(stream)
        self.waited += time.time() - t
        self.steps += 1
        return b

    def report(self) -> dict[str, float]:
        """{"step_s": mean seconds a step, "wait_s": of which waiting for data}; then starts counting anew."""
        n = max(1, self.steps)
        out = {"step_s": round((time.time() - self.t) / n, 4), "wait_s": round(self.waited / n, 4)}
        self.steps, self.waited, self.t = 0, 0.0, time.time()
        return out


def autocast(device: torch.device, enabled: bool = True) -> torch.autocast:
    """bf16 autocast on CUDA (VGG-16's convolutions run ~2x faster than in TF32); a no-op on the CPU."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")


def configure_device(device: torch.device) -> None:
    """Fixed input sizes: let cuDNN pick its fastest algorithms; TF32 where fp32 remains."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


class Budget:
    """Training progress in [0, 1] by steps or wall-clock, whichever is further: ``max(step / steps,
    elapsed / seconds)``. With ``seconds`` 0 it is the step count alone. A run given a time budget
    still finishes its learning-rate schedule (and validates at the end) when the machine is slower
    than planned, instead of being killed mid-schedule."""

    def __init__(self, steps: int, seconds: float = 0.0) -> None:
        self.steps, self.seconds, self.t0 = steps, seconds, time.time()

    def time_fraction(self) -> float:
        """Elapsed share of the wall-clock budget (0 without one): what :func:`cosine_lr` adds to its step count."""
        return 0.0 if self.seconds <= 0 else (time.time() - self.t0) / self.seconds

    def progress(self, step: int) -> float:
        return min(1.0, max(step / max(1, self.steps), self.time_fraction()))

    def done(self, step: int) -> bool:
        return self.progress(step) >= 1.0


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def set_threads() -> None:
    # 2 cores here; under torchrun split them between processes; SKETCHDOWN_THREADS overrides
    torch.set_num_threads(config.torch_threads(int(os.environ.get("WORLD_SIZE", "1"))))


# ---- data ----------------------------------------------------------------------------------
@dataclass
class Source:
    """One training source: a paired dataset with its photo ink maps in memory."""

    name: str
    data: PairedDataset
    photo_ink: list[np.ndarray]  # (h, w) float32 edge maps, one per photo
    sketches_by_photo: list[list[int]]
    raster_cache: dict[int, Sketch] = field(default_factory=dict)
    # category-level pairs (doodles): (photos of a kind, sketches of that kind); None: instance-level
    kinds: list[tuple[tuple[int, ...], list[int]]] | None = None

    def sketch(self, i: int) -> Sketch:
        if i not in self.raster_cache:
            self.raster_cache[i] = get_sketch(self.data.sketches[i])
        return self.raster_cache[i]


def make_source(name: str, data: PairedDataset, edges: EdgeCache) -> Source:
    by_photo: list[list[int]] = [[] for _ in data.photos]
    for i, it in enumerate(data.sketches):
        by_photo[it.photo].append(i)
    ink = [edges.get(p) for p in data.photos]
    kinds = None
    if data.positives is not None:
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, pos in enumerate(data.positives):
            groups.setdefault(tuple(sorted(pos)), []).append(i)
        kinds = list(groups.items())
    return Source(name, data, ink, by_photo, kinds=kinds)


def split_val(data: PairedDataset, n_val: int, seed: int = 0) -> tuple[PairedDataset, PairedDataset]:
    """Carve ``n_val`` photos (and their sketches) out of a training split for model selection."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data.photos)).tolist()
    return data.subset(sorted(order[n_val:])), data.subset(sorted(order[:n_val]))


def load_sources(
    root: str | None, use_sketchy: bool, n_val: int, edges: EdgeCache, use_gallery: bool = False,
    use_doodles: bool = False, doodle_split: str = "train",
) -> tuple[list[Source], Source]:
    """ChairV2 train minus a validation split (+ Sketchy10 train, + pseudo-sketches of the default
    gallery's training photos, + Quick, Draw! doodles of the gallery's kinds paired with its training
    photos of that kind: ``doodle_split`` "train", or "fit" to keep "val" for selection).
    Returns (train sources, chair val)."""
    chair_tr, chair_val = split_val(load_chairv2(root, "train"), n_val)
    sources = [make_source("chairv2", chair_tr, edges)]
    if use_sketchy:
        sources.append(make_source("sketchy10", load_sketchy(root, "train"), edges))
    if use_gallery:
        # three abstraction levels, plus a jittered copy of each (held-out photos never appear)
        sources.append(make_source("gallery", load_gallery_pseudo(None, "train", (0, 1, 2), 2, edges), edges))
    if use_doodles:
        sources.append(make_source("doodles", load_doodles(doodle_split), edges))
    return sources, make_source("chairv2-val", chair_val, edges)


def distractor_inks(src: Source, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``n`` photo edge maps drawn from a training source: added to the 40-photo validation gallery so it
    has the test split's size (100) and ranking is not too easy."""
    pick = rng.choice(len(src.photo_ink), min(n, len(src.photo_ink)), replace=False)
    return [src.photo_ink[i] for i in sorted(pick.tolist())]


def load_fusion(path: str | Path, branch: str) -> tuple[HogSpec, float, float]:
    """fit_fusion's ``fusion.json``, or a shipped weight-set folder (its HOG spec and the branch's
    ``hog_alpha`` / ``hog_alpha_category``) -> (HOG spec, ``branch``'s instance-level alpha, its
    category-level alpha). An alpha is 0 when the branch has none; the category-level one falls back to
    the instance-level one where none was fitted."""
    if Path(path).is_dir():
        from sketchdown.bundles.weights import read_manifest

        m = read_manifest(path)
        if m.get("hog") is None:
            raise SystemExit(f"{path}: the weight set has no HOG fusion to train against")
        c = m.get("components", {}).get(branch, {})
        alpha = float(c.get("hog_alpha", 0.0))
        return HogSpec(**m["hog"]), alpha, float(c.get("hog_alpha_category", alpha))
    fz = json.loads(Path(path).read_text())
    alpha = float(fz["alpha"].get(branch, 0.0))
    return HogSpec(**fz["hog"]), alpha, float(fz.get("alpha_category", {}).get(branch, alpha))


def load_student_state(path: str | Path, branch: str = "student") -> dict[str, torch.Tensor]:
    """A student's weights (state dict, float32) from a distill checkpoint, or from a shipped weight-set
    folder's sketch branch ``branch`` (sha256-checked), so fine-tuning can start from ``weights/default``."""
    if Path(path).is_dir():
        from sketchdown.bundles.bundle import load_bundle

        b = load_bundle(path)
        if branch not in b.sketch:
            raise SystemExit(f"{path}: no sketch branch {branch!r} (has {sorted(b.sketch)})")
        return b.sketch[branch].encoder.state_dict()
    return load_checkpoint(Path(path))["student"]


def source_classes(sources: list[Source]) -> list[str]:
    """Category names over all sources, in source order (the recognition head's classes)."""
    out: list[str] = []
    for s in sources:
        out += [c for c in s.data.classes if c not in out]
    return out


def pick_source(sources: list[Source], mix: tuple[float, ...], rng: np.random.Generator) -> Source:
    """Draw a source with probabilities ``mix`` (one weight per source; extra weights ignored)."""
    w = np.asarray((list(mix) + [1.0] * len(sources))[: len(sources)], float)
    return sources[int(rng.choice(len(sources), p=w / w.sum()))]


@dataclass
class Batch:
    sketches: list[Sketch]  # augmented
    photo_ink: list[np.ndarray]  # augmented edge maps
    labels: torch.Tensor  # (B,) class index, -1 when unknown
    flips: np.ndarray  # (B,) bool: mirror both canvases
    photo_ids: list[int]  # (B,) the photos, indices into the source's photos
    bank_rows: list[int] | None = None  # (B,) rows of the sketch bank the sketches came from (with ``bank``)


def sample_batch(src: Source, batch: int, rng: np.random.Generator, class_index: dict[str, int], augment: bool = True,
                 bank: Any = None) -> Batch:
    """``batch`` distinct photos, one random sketch each: every other photo is an in-batch negative.
    For category-level sources (``src.kinds``) one photo per kind, and kinds sharing a photo never
    meet in a batch (a photo of the right kind must not be a negative). With a ``bank``
    (:class:`training.bank.SketchBank` of ``src``) each sketch is one of its fixed variants, mirrored as
    the variant is; the photo's edge map is still augmented."""
    sketch_ids: list[int] | None = None
    if src.kinds is not None:
        photos, sketch_ids, used = [], [], set()
        for k in rng.permutation(len(src.kinds)):
            pos, sks_k = src.kinds[int(k)]
            if used.isdisjoint(pos):
                used |= set(pos)
                photos.append(int(rng.choice(pos)))
                sketch_ids.append(int(rng.choice(sks_k)))
                if len(photos) == batch:
                    break
    else:
        n = len(src.data.photos)
        photos = [int(p) for p in rng.choice(n, size=min(batch, n), replace=False)]
    sks, inks, labels, rows = [], [], [], []
    for j, p in enumerate(photos):
        # (instance-level: the sketch is drawn here, between augmentations, as the shipped runs did)
        i = sketch_ids[j] if sketch_ids is not None else int(rng.choice(src.sketches_by_photo[p]))
        ink = src.photo_ink[p]
        if bank is not None:
            rows.append(bank.row(i, rng))
            sk = bank.sketches[rows[-1]]
        else:
            sk = src.sketch(i)
            if augment:
                sk = augment_sketch(sk, rng)
        if augment:
            ink = augment_ink(ink, rng, rot_deg=3, scale=0.05, shear=0.03)
        sks.append(sk)
        inks.append(ink)
        labels.append(class_index.get(src.data.photo_labels[p], -1))
    if bank is not None:
        return Batch(sks, inks, torch.tensor(labels), bank.flips[rows], [int(p) for p in photos], rows)
    flips = rng.random(len(photos)) < 0.5 if augment else np.zeros(len(photos), bool)
    return Batch(sks, inks, torch.tensor(labels), flips, [int(p) for p in photos])


def sketch_canvases(sketches: list[Sketch], size: int, render: RenderSpec, flips: np.ndarray | None = None) -> np.ndarray:
    """Sketches drawn at ``size``, mirrored where ``flips``: float32 ink ``(B, size, size)`` in [0, 1]."""
    canv = [render_sketch(s, size, render) for s in sketches]
    if flips is not None:
        canv = [c[:, ::-1] if f else c for c, f in zip(canv, flips, strict=True)]
    return np.stack(canv)


def sketch_tensor(sketches: list[Sketch], size: int, render: RenderSpec, flips: np.ndarray | None = None) -> torch.Tensor:
    return ink_to_tensor(sketch_canvases(sketches, size, render, flips))


def sketch_tensors(sketches: list[Sketch], sizes: tuple[int, ...], render: RenderSpec,
                   flips: np.ndarray | None = None) -> dict[int, torch.Tensor]:
    """``sketch_tensor`` at every size in ``sizes`` (float32 (B, 3, S, S) each), each sketch drawn once."""
    per = [render_sketch_sizes(s, sizes, render) for s in sketches]
    out = {}
    for size in sizes:
        canv = [p[size] for p in per]
        if flips is not None:
            canv = [c[:, ::-1] if f else c for c, f in zip(canv, flips, strict=True)]
        out[size] = ink_to_tensor(np.stack(canv))
    return out


def photo_tensor(inks: list[np.ndarray], spec: PhotoSpec, render: RenderSpec, flips: np.ndarray | None = None) -> torch.Tensor:
    canv = [photo_canvas(i, spec, render) for i in inks]
    if flips is not None:
        canv = [c[:, ::-1] if f else c for c, f in zip(canv, flips, strict=True)]
    return ink_to_tensor(np.stack(canv))


@torch.inference_mode()
def encode_photos(encoder: torch.nn.Module, inks: list[np.ndarray], spec: PhotoSpec, render: RenderSpec, bs: int = 32) -> torch.Tensor:
    was = encoder.training
    encoder.eval()
    dev = next(encoder.parameters()).device
    out = [encoder(photo_tensor(inks[i : i + bs], spec, render).to(dev)).float().cpu() for i in range(0, len(inks), bs)]
    encoder.train(was)
    return torch.cat(out)


@torch.inference_mode()
def evaluate_ranks(
    sketch_encoder: torch.nn.Module, photo_emb: torch.Tensor, src: Source, size: int, render: RenderSpec,
    canvas_index: int = 0, bs: int = 64, bias: np.ndarray | None = None,
) -> np.ndarray:
    """1-based rank of the true photo for every sketch of ``src`` (full sketches). ``bias`` (N, P) is
    added to the similarities (``alpha * cos(HOG)``: rank by the fused score)."""
    was = sketch_encoder.training
    sketch_encoder.eval()
    sks = [src.sketch(i) for i in range(len(src.data.sketches))]
    dev = next(sketch_encoder.parameters()).device
    embs = [sketch_encoder(sketch_tensor(sks[i : i + bs], size, render).to(dev), canvas_index).float().cpu()
            for i in range(0, len(sks), bs)]
    sketch_encoder.train(was)
    sims = (torch.cat(embs) @ photo_emb.T).numpy()
    if bias is not None:
        sims = sims + bias
    # category-level sources (doodles): any photo of the right kind counts
    return rank_of_true(sims, src.data.true())


# ---- configs -------------------------------------------------------------------------------
def parse_config(cls: type, argv: list[str] | None, doc: str | None = None) -> Any:
    """argparse over a dataclass: one ``--flag`` per field (booleans get ``--no-flag`` too, lists repeat)."""
    import argparse
    import dataclasses

    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in dataclasses.fields(cls):
        name = f"--{f.name.replace('_', '-')}"
        t = str(f.type)
        if t == "bool":
            p.add_argument(name, action=argparse.BooleanOptionalAction, default=f.default)
        elif t.startswith("list"):
            p.add_argument(name, action="append", default=None)
        elif t.startswith("tuple"):
            conv = float if "float" in t else int
            p.add_argument(name, type=lambda v, conv=conv: tuple(conv(x) for x in v.split(",")), default=f.default)
        else:
            p.add_argument(name, type={"int": int, "float": float}.get(t, str), default=f.default)
    args = vars(p.parse_args(argv))
    for f in dataclasses.fields(cls):
        if str(f.type).startswith("list") and args[f.name] is None:
            args[f.name] = f.default_factory()  # type: ignore[misc]
    return cls(**args)


def apply_smoke(cfg: Any, **overrides: Any) -> Any:
    """Smoke-mode settings, except where a flag was given explicitly (fields not at their default)."""
    import dataclasses

    defaults = {f.name: f.default for f in dataclasses.fields(cfg)}
    keep = {k: v for k, v in overrides.items() if getattr(cfg, k) == defaults[k]}
    return dataclasses.replace(cfg, **keep)


# ---- checkpoints ---------------------------------------------------------------------------
def save_checkpoint(path: Path, **state: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # per process: parallel runs may write one shared cache
    torch.save(state, tmp)
    tmp.replace(path)  # a crash mid-write never corrupts the last good checkpoint


def checkpoint_step(out: Path, state: dict[str, Any], score: float, best: float) -> float:
    """Save ``last.pt`` and, when ``score`` beats ``best``, ``best.pt``; returns the new best."""
    if score > best:
        save_checkpoint(out / "best.pt", **state)
        best = score
    save_checkpoint(out / "last.pt", **state)
    return best


def finish_run(out: Path, best: float, step: int, history: list[dict], main: bool = True) -> dict:
    """Write ``result.json`` (best validation score, steps, history) and return it."""
    result = {"best_val": best, "steps": step, "history": history}
    if main:
        (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def load_checkpoint(path: Path) -> dict[str, Any]:
    # our own checkpoints hold only tensors, numbers, strings and dicts: weights_only is enough
    # (numpy scalars allowed: checkpoints written before cosine_lr returned a python float hold some)
    allowed = [np._core.multiarray.scalar, np.dtype, type(np.dtype(np.float64))]
    with torch.serialization.safe_globals(allowed):
        return torch.load(path, map_location="cpu", weights_only=True)


def load_teacher(path: str | Path) -> tuple[torch.nn.Module, torch.nn.Module, dict, list[str]]:
    """(sketch encoder, photo encoder, teacher config dict, classes) from a teacher checkpoint, or from a
    shipped weight-set folder (its full network, photo encoder, recorded teacher config and classes), so
    later stages can start from ``weights/default`` when the training runs are not at hand."""
    from sketchdown.bundles.build import EncoderConfig, build_encoder

    if Path(path).is_dir():
        from sketchdown.bundles.bundle import load_bundle
        from sketchdown.bundles.weights import read_manifest

        b = load_bundle(path)
        tcfg = read_manifest(path).get("provenance", {}).get("teacher", {}).get("config")
        if not tcfg:
            raise SystemExit(f"{path}: the manifest records no teacher config (provenance.teacher.config)")
        return b.full.encoder, b.photo_encoder, tcfg, list(b.classes)
    ck = load_checkpoint(Path(path))
    cfg = json.loads(ck["config"])
    classes = json.loads(ck["classes"])
    sk = build_encoder(EncoderConfig(cfg["arch"], cfg["embed_dim"], 1, len(classes)), weights=ck["sketch"])
    ph = build_encoder(EncoderConfig(cfg["arch"], cfg["embed_dim"], 1, 0), weights=ck["photo"])
    return sk, ph, cfg, classes


def write_run_info(out: Path, config: Any) -> None:
    out.mkdir(parents=True, exist_ok=True)
    info = {"config": asdict(config), "git_sha": git_sha(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    (out / "run.json").write_text(json.dumps(info, indent=2) + "\n")


def cosine_lr(step: int, total: int, base: float, warmup: int, progress: float | None = None) -> float:
    """Linear warm-up over ``warmup`` steps, then a cosine from ``base`` to 0 at step ``total``, or earlier when
    ``progress`` (a :class:`Budget`'s time fraction) runs ahead of the steps."""
    if step < warmup:
        return float(base * (step + 1) / warmup)
    t = (step - warmup) / max(1, total - warmup)
    if progress is not None:
        t = max(t, progress)
    return float(base * 0.5 * (1 + np.cos(np.pi * min(1.0, t))))
