"""The run's environment: code version (git), device and torchrun process group, threads and seeds, the
learning-rate schedule and wall-clock budget, and where a loop's time goes."""

from __future__ import annotations

import os
import random
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from sketchdown import config
from sketchdown.bundles.photo import native_bf16

REPO = Path(__file__).resolve().parent.parent


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
    """bf16 autocast on CUDA (VGG-16's convolutions run ~2x faster than in TF32) and on CPUs with native bf16
    (AMX or AVX512-BF16: a VGG-16 training step of blocks 4-5 runs ~5x faster than in fp32 on a 2-core Xeon);
    a no-op on other CPUs, where bf16 is emulated and slower than fp32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled and bf16_native(device))


def bf16_native(device: torch.device) -> bool:
    """Whether ``device`` runs bf16 convolutions natively (any CUDA GPU this project targets; oneDNN's check on CPUs)."""
    if device.type == "cuda":
        return True
    return device.type == "cpu" and native_bf16()


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


def cosine_lr(step: int, total: int, base: float, warmup: int, progress: float | None = None) -> float:
    """Linear warm-up over ``warmup`` steps, then a cosine from ``base`` to 0 at step ``total``, or earlier when
    ``progress`` (a :class:`Budget`'s time fraction) runs ahead of the steps."""
    if step < warmup:
        return float(base * (step + 1) / warmup)
    t = (step - warmup) / max(1, total - warmup)
    if progress is not None:
        t = max(t, progress)
    return float(base * 0.5 * (1 + np.cos(np.pi * min(1.0, t))))
