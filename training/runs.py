"""What every training script does around its own step: start a run (threads, process group, seeds,
device), get its teacher (a checkpoint, a weight-set folder, or in smoke mode a tiny stand-in), read a
student checkpoint, resume from ``last.pt``, and the loop itself (budget, progress bar, validation)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from sketchdown.bundles.build import EncoderConfig, build_encoder
from sketchdown.bundles.photo import PhotoSpec

from .checkpoints import load_checkpoint, load_teacher
from .env import Budget, DistInfo, Pace, configure_device, init_distributed, pick_device, seed_all, set_threads

SMOKE_CLASSES = ["class0", "class1", "class2"]  # synthetic sources' classes (training.synthetic)


def start_run(seed: int, device: str = "auto") -> tuple[DistInfo, torch.device]:
    """Threads, the process group under torchrun, seeds (``seed`` + rank) and the device: (dist info, device)."""
    set_threads()
    d = init_distributed()
    seed_all(seed + d.rank)
    dev = pick_device(device)
    configure_device(dev)
    return d, dev


def teacher_for(path: str, smoke_default: bool, pretrained: bool = True
                ) -> tuple[torch.nn.Module, torch.nn.Module, int, PhotoSpec, list[str]]:
    """(sketch branch, photo branch, sketch canvas, photo spec, classes) of the teacher at ``path``; with
    ``smoke_default`` (smoke mode, no checkpoint given) a tiny Lite0 teacher at 64 px over the synthetic classes."""
    if smoke_default:
        from .train_teacher import TeacherConfig, build_teacher

        t_sk, t_ph = build_teacher(TeacherConfig(arch="lite0", canvas=64, photo_size=64), pretrained,
                                   num_classes=len(SMOKE_CLASSES))
        return t_sk, t_ph, 64, PhotoSpec("hed", 64), list(SMOKE_CLASSES)
    t_sk, t_ph, tcfg, classes = load_teacher(path)
    return t_sk, t_ph, tcfg["canvas"], PhotoSpec("hed", tcfg["photo_size"]), classes


def load_student(path: str | Path) -> tuple[torch.nn.Module, tuple[int, ...], dict[str, Any]]:
    """(encoder in eval mode, canvases, checkpoint) of a distill checkpoint."""
    ck = load_checkpoint(Path(path))
    enc = build_encoder(EncoderConfig(**json.loads(ck["encoder"])), weights=ck["student"]).eval()
    return enc, tuple(json.loads(ck["config"])["canvases"]), ck


def resume(out: Path, modules: dict[str, torch.nn.Module], opt: torch.optim.Optimizer, main: bool
           ) -> tuple[int, float, list[dict]]:
    """(step, best score, history) from ``out/last.pt`` into ``modules`` (checkpoint key -> module) and
    ``opt``; (0, -1, []) for a fresh run."""
    last = out / "last.pt"
    if not last.is_file():
        return 0, -1.0, []
    ck = load_checkpoint(last)
    for key, m in modules.items():
        m.load_state_dict(ck[key])
    opt.load_state_dict(ck["opt"])
    if main:
        print(f"{out}: resumed at step {ck['step']}", file=sys.stderr)
    return ck["step"], ck["best"], json.loads(ck["history"])


def run_loop(stream: Iterator[dict], step: int, steps: int, time_budget_s: float, val_every: int, desc: str, main: bool,
             train: Callable[[dict, int, float], dict[str, str]], validate: Callable[[int, float, dict], None]) -> int:
    """The training loop every script shares: ``train(batch, step, time fraction)`` one optimizer step (returns
    the progress bar's postfix), until ``steps`` or the wall-clock budget (:class:`common.Budget`) is reached;
    ``validate(step, elapsed s, timing)`` every ``val_every`` steps and at the end, on the main process.
    Returns the step reached."""
    budget = Budget(steps, time_budget_s)
    bar = tqdm(total=steps, initial=step, disable=not main, desc=desc, mininterval=5)
    t0 = time.time()
    pace = Pace()
    while not budget.done(step):
        b = pace.wait(stream)
        postfix = train(b, step, budget.time_fraction())
        step += 1
        bar.update(1)
        bar.set_postfix(**postfix)
        if main and (step % val_every == 0 or step == steps or budget.done(step)):
            validate(step, time.time() - t0, pace.report())
    bar.close()
    return step
