"""The confidence cascade: a canvas selector that reads the ranking instead of the strokes.

A query is first encoded at the smallest canvas of ``stages`` and searched. When the ranking is
confident (its top-1 score leads the top-2 by at least the stage's threshold) the search stops there;
otherwise the sketch is encoded again at the next canvas, up to the last. Every pass is paid for: a
query that escalates from 32 to 64 to 128 px costs the three encoders' FLOPs (the HOG, when fused, is
computed once). The thresholds are fitted per lambda_F on validation rankings (``training.fit_cascade``),
one set for the fused score and one for the network alone, since their margins live on different scales.

Why it holds out of sample where the stroke-reading GRU did not: on ChairV2 validation the 32 px fused
ranking's margin predicts "a larger canvas would not do better" with ROC AUC 0.73, cheap stroke
statistics with 0.50-0.61 (``training.selector_signal``).

    spec.thresholds(lam, fused=True)   # -> (t_0, ..., t_{S-2}), one per escalation
    stop_stages(margins, thresholds)   # (N, S) margins -> (N,) index of the stage each query stops at
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CascadeSpec:
    """A fitted cascade of one sketch branch.

    stages: canvases in pixels, cheapest first (at least two). lams: the lambda_F values offered, each
    with its thresholds: ``fused[i]`` (search with HOG fused) and ``alone[i]`` (the network alone; None:
    not fitted, the cascade then always runs to the last stage) are ``len(stages) - 1`` margins in
    similarity units; ``inf`` never stops at that stage.
    """

    model: str
    stages: tuple[int, ...]
    lams: tuple[float, ...]
    fused: tuple[tuple[float, ...], ...]
    alone: tuple[tuple[float, ...], ...] | None = None
    default_lam: float = 0.0

    def __post_init__(self) -> None:
        if len(self.stages) < 2 or list(self.stages) != sorted(set(self.stages)):
            raise ValueError(f"cascade stages must be two or more increasing canvases, got {list(self.stages)}")
        for name, table in (("fused", self.fused), ("alone", self.alone)):
            if table is None:
                continue
            if len(table) != len(self.lams) or any(len(t) != len(self.stages) - 1 for t in table):
                raise ValueError(f"cascade {name} thresholds: one row of {len(self.stages) - 1} per lambda_F expected")

    def thresholds(self, lam: float | None = None, fused: bool = True) -> tuple[float, ...]:
        """The margins at which a query stops at each stage but the last, for the offered lambda_F
        nearest ``lam`` (default: ``default_lam``)."""
        lam = self.default_lam if lam is None else float(lam)
        i = int(np.argmin([abs(lam - x) for x in self.lams]))
        table = self.fused if fused else self.alone
        if table is None:
            return (float("inf"),) * (len(self.stages) - 1)
        return tuple(table[i])


def margins(scores: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 score per row of ``scores`` (N, P) float; ``inf`` when P < 2 (nothing to confuse)."""
    scores = np.asarray(scores)
    if scores.shape[1] < 2:
        return np.full(len(scores), np.inf)
    top = np.partition(scores, scores.shape[1] - 2, axis=1)[:, -2:]
    return top[:, 1] - top[:, 0]


def stop_stages(margin: np.ndarray, thresholds: tuple[float, ...]) -> np.ndarray:
    """(N,) int: the first stage whose margin reaches its threshold, else the last. ``margin`` (N, S);
    the last column is never read (the last stage always answers)."""
    margin = np.asarray(margin, float)
    n, s = margin.shape
    if len(thresholds) != s - 1:
        raise ValueError(f"{s} stages need {s - 1} thresholds, got {len(thresholds)}")
    stop = np.full(n, s - 1)
    for i in range(s - 2, -1, -1):
        stop = np.where(margin[:, i] >= thresholds[i], i, stop)
    return stop


def stage_costs(stage_flops: list[int] | tuple[int, ...]) -> np.ndarray:
    """(S,) FLOPs of a query that stops at each stage: every pass up to and including it."""
    return np.cumsum(np.asarray(stage_flops, np.int64))
