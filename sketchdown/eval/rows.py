"""Result rows as structured keys: which weight set, sketch branch, canvas or selector lambda_F, and
whether the HOG similarity was fused.

A row's label is its identity everywhere results are stored (manifests' ``metrics``, RESULTS.md, the
CLI's ``eval`` output), and scripts outside the library read it, so :meth:`RowKey.label` writes the
one fixed grammar and :meth:`RowKey.parse` is its exact inverse::

    [<weights>/]<model>[@<canvas> | +selector(lambda_F=<lam>) | +cascade(lambda_F=<lam>)][+HOG]

    default/student@96+HOG                      canvas 96, HOG fused
    default/student+selector(lambda_F=0.1)      the selector picks each sketch's canvas at lambda_F 0.1
    default/student+cascade(lambda_F=0)+HOG     the confidence cascade at lambda_F 0, HOG fused
    default/teacher                             a branch alone (no canvas recorded)
    mobilenet_v2 (mobilenet_v2)@96              no weight set (a stand-alone recognizer)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import NamedTuple

SELECTOR_TAG = "+selector("  # in a row label: the row's canvases were picked by the selector
CASCADE_TAG = "+cascade("  # ... by the confidence cascade
HOG_TAG = "+HOG"

_LABEL = re.compile(
    r"^(?:(?P<weights>.+)/)?(?P<model>[^/@]+?)"
    r"(?:@(?P<canvas>\d+)|\+(?P<policy>selector|cascade)\(lambda_F=(?P<lam>[^()]+)\))?(?P<hog>\+HOG)?$"
)


class Series(NamedTuple):
    """Where a row sits in the FLOPs-vs-accuracy plot: its line and the tag at its point."""

    line: str  # e.g. "default/student+HOG" (canvases along the line) or "default/student+selector"
    tag: str  # the canvas ("96") or the selector's lambda_F ("λ=0.1"); "" for a bare branch


@dataclass(frozen=True)
class RowKey:
    """One evaluated setting: a sketch branch at a fixed canvas, or with the selector at lambda_F.

    ``canvas`` and ``lam`` are exclusive: a fixed canvas (pixels), or ``canvas=None`` and the
    selector's (``cascade``: the confidence cascade's) lambda_F in [0, 1]; both None is a branch with no
    canvas recorded. ``weights`` is the
    weight set's name (None: the label carries none; :func:`~sketchdown.eval.evaluate.evaluate`
    fills in the evaluated bundle's).
    """

    model: str
    canvas: int | None = None  # None: the selector picks (when ``lam`` is set)
    lam: float | None = None
    hog: bool = False  # fuse the HOG similarity (the weight set's alpha for this branch)
    weights: str | None = None
    cascade: bool = False  # with ``lam``: the confidence cascade picks the canvas, not the RL selector

    def __post_init__(self) -> None:
        if self.canvas is not None and self.lam is not None:
            raise ValueError(f"a row has a fixed canvas or a selector lambda_F, not both: {self}")
        if self.cascade and self.lam is None:
            raise ValueError(f"a cascade row needs its lambda_F: {self}")
        if not self.model or any(c in self.model for c in "/@") or SELECTOR_TAG in self.model or self.model.endswith(HOG_TAG):
            raise ValueError(f"bad sketch branch name {self.model!r} in a row")

    @property
    def uses_selector(self) -> bool:
        """Whether the row's canvases were picked by the weight set's selector."""
        return self.canvas is None and self.lam is not None and not self.cascade

    @property
    def picks_canvas(self) -> bool:
        """Whether each sketch's canvas was picked per sketch (the selector or the cascade)."""
        return self.canvas is None and self.lam is not None

    def with_weights(self, weights: str) -> RowKey:
        """This row for weight set ``weights`` (unchanged when it already names one)."""
        return self if self.weights else replace(self, weights=weights)

    def label(self) -> str:
        """The row's label, e.g. ``default/student+selector(lambda_F=0.1)+HOG`` (lambda_F as ``:g``)."""
        head = f"{self.weights}/{self.model}" if self.weights else self.model
        if self.canvas is not None:
            head += f"@{self.canvas}"
        elif self.lam is not None:
            head += f"{CASCADE_TAG if self.cascade else SELECTOR_TAG}lambda_F={self.lam:g})"
        return head + (HOG_TAG if self.hog else "")

    @classmethod
    def parse(cls, label: str) -> RowKey:
        """The key whose :meth:`label` is ``label``; ValueError for anything else (a malformed label,
        or one :meth:`label` would spell otherwise, such as ``lambda_F=0.10`` or ``@096``)."""
        m = _LABEL.match(label) if isinstance(label, str) else None
        if m is None:
            raise ValueError(f"not a result row label: {label!r}")
        try:
            key = cls(m["model"], int(m["canvas"]) if m["canvas"] else None, float(m["lam"]) if m["lam"] else None,
                      bool(m["hog"]), m["weights"], m["policy"] == "cascade")
        except ValueError as e:
            raise ValueError(f"not a result row label: {label!r} ({e})") from None
        if key.label() != label:
            raise ValueError(f"not a result row label: {label!r} (written {key.label()!r})")
        return key

    def series(self, weights: bool = True) -> Series:
        """The plot's line for this row (the label without its canvas or lambda_F; ``+HOG`` rows form
        their own line) and the tag of its point. ``weights=False`` leaves the weight set's name out."""
        line = replace(self, canvas=None, lam=None, cascade=False, weights=self.weights if weights else None).label()
        if self.picks_canvas:
            line = line.removesuffix(HOG_TAG) + ("+cascade" if self.cascade else "+selector") + (HOG_TAG if self.hog else "")
        tag = str(self.canvas) if self.canvas is not None else (f"λ={self.lam:g}" if self.lam is not None else "")
        return Series(line, tag)


def uses_selector(label: str) -> bool:
    """Whether a result row (by its label) measured the weight set's selector (False for a label that
    is not a row's)."""
    try:
        return RowKey.parse(label).uses_selector
    except ValueError:
        return False
