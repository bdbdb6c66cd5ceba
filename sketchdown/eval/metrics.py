"""Retrieval metrics: Acc@k, mean/median rank, and on-the-fly FG-SBIR's early-retrieval m@A, m@B.

m@A and m@B (Bhunia et al., CVPR 2020): for each sketch, retrieve with its prefixes at fractions
f_1..f_T of the drawing; m@A is the mean over sketches of the area under the ranking-percentile
curve ``(G - rank) / (G - 1)`` against f, and m@B the area under ``1 / rank`` against f. Both are
reported in percent. Areas are the mean over the T prefix points (equal spacing).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def rank_of_true(sims: np.ndarray, true: np.ndarray) -> np.ndarray:
    """sims: (Q, G) similarity, higher is better; true: (Q,) index of the right photo, or a (Q, G) bool
    mask of the right photos (category-level: any photo of the right kind counts).

    Returns (Q,) int 1-based ranks of the best-scoring right photo (ties count against the query:
    pessimistic).
    """
    sims = np.asarray(sims, np.float64)
    true = np.asarray(true)
    if true.ndim == 2:
        if true.shape != sims.shape or not true.any(1).all():
            raise ValueError(f"positives mask {true.shape} must match sims {sims.shape} with one right photo per row")
        t = np.where(true, sims, -np.inf).max(1, keepdims=True)
        return ((sims >= t) & ~true).sum(1).astype(np.int64) + 1
    t = sims[np.arange(len(true)), true][:, None]
    return (sims >= t).sum(1).astype(np.int64)


def acc_at(ranks: np.ndarray, k: int) -> float:
    """Percent of queries with rank <= k."""
    return 100.0 * float(np.mean(np.asarray(ranks) <= k)) if len(ranks) else float("nan")


def summary(ranks: np.ndarray) -> dict[str, float]:
    r = np.asarray(ranks)
    return {
        "acc@1": acc_at(r, 1),
        "acc@5": acc_at(r, 5),
        "acc@10": acc_at(r, 10),
        "mean_rank": float(r.mean()),
        "median_rank": float(np.median(r)),
    }


def early_retrieval(rank_curves: np.ndarray, gallery_size: int) -> dict[str, float]:
    """rank_curves: (Q, T) rank of the true photo at each of T prefix fractions.

    Returns {"m@A", "m@B"} in percent.
    """
    r = np.asarray(rank_curves, np.float64)
    pct = (gallery_size - r) / max(1, gallery_size - 1)
    return {"m@A": 100.0 * float(pct.mean()), "m@B": 100.0 * float((1.0 / r).mean())}


def prefix_fractions(n: int = 20) -> Sequence[float]:
    """The T equally spaced fractions of the drawing used for m@A / m@B: 1/n, 2/n, ..., 1."""
    return [(i + 1) / n for i in range(n)]


def classification_report(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Accuracy and macro precision / recall / F1 in percent over the classes present in ``y_true``.

    y_true, y_pred: (N,) int class indices. A class never predicted has precision 0 (as sklearn's
    ``zero_division=0``); predictions of classes absent from ``y_true`` count as false positives.
    """
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if t.shape != p.shape or t.ndim != 1:
        raise ValueError(f"y_true and y_pred must be equal-length 1-D arrays, got {t.shape} and {p.shape}")
    prec, rec, f1 = [], [], []
    for c in np.unique(t):
        tp = float(((p == c) & (t == c)).sum())
        pr = tp / max(1, int((p == c).sum()))
        rc = tp / int((t == c).sum())
        prec.append(pr)
        rec.append(rc)
        f1.append(2 * pr * rc / (pr + rc) if pr + rc else 0.0)
    return {
        "accuracy": 100.0 * float((t == p).mean()) if len(t) else float("nan"),
        "precision": 100.0 * float(np.mean(prec)) if prec else float("nan"),
        "recall": 100.0 * float(np.mean(rec)) if rec else float("nan"),
        "f1": 100.0 * float(np.mean(f1)) if f1 else float("nan"),
    }
