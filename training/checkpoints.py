"""Checkpoints and what runs read back: ``last.pt``/``best.pt`` written atomically, ``result.json`` and
``run.json``, a teacher or a student's weights from a checkpoint or a shipped weight-set folder, and a
HOG fusion (fit_fusion's ``fusion.json`` or a weight set's)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sketchdown.sketch.hog import HogSpec

from .env import git_sha


def load_fusion(path: str | Path, branch: str) -> tuple[HogSpec, float, float]:
    """fit_fusion's ``fusion.json``, or a shipped weight-set folder (its HOG spec and the branch's
    ``hog_alpha`` / ``hog_alpha_category``) -> (HOG spec, ``branch``'s instance-level alpha, its
    category-level alpha). An alpha is 0 when the branch has none; the category-level one falls back to
    the instance-level one where none was fitted."""
    if Path(path).is_dir():
        from sketchdown.bundles.manifest import load_manifest

        m = load_manifest(path)
        if m.hog is None:
            raise SystemExit(f"{path}: the weight set has no HOG fusion to train against")
        c = m.sketch.get(branch)
        alpha = c.hog_alpha if c is not None and c.hog_alpha is not None else 0.0
        return m.hog, alpha, c.hog_alpha_category if c is not None and c.hog_alpha_category is not None else alpha
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
        from sketchdown.bundles.manifest import load_manifest

        b = load_bundle(path)
        tcfg = load_manifest(path).recorded("teacher").get("config")
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
