"""Early retrieval, shown: while a traced example (a sketch traced from a known gallery photo) is
replayed, the rank of that photo after each completed stroke — the on-the-fly FG-SBIR view of m@A /
m@B. ``examples/targets.json`` names each traced example's photo."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sketchdown.retrieval.retriever import Retriever
from sketchdown.sketch.strokes import Sketch, from_strokes

log = logging.getLogger("sketchdown.app")


@dataclass(frozen=True)
class Traced:
    """A traced example: its app name (``traced: lion``), strokes on the app canvas, target photo file name."""

    name: str
    strokes: tuple[np.ndarray, ...]
    target: str


def load_traced(examples_dir: Path) -> list[Traced]:
    """The traced examples that ``examples_dir/targets.json`` gives a target photo (none if it is absent)."""
    f = Path(examples_dir) / "targets.json"
    try:
        targets = json.loads(f.read_text("utf-8"))["targets"] if f.is_file() else {}
        out = []
        for stem, photo in sorted(targets.items()):
            strokes = json.loads((Path(examples_dir) / f"{stem}.json").read_text("utf-8"))
            out.append(Traced(f"traced: {stem.removeprefix('traced_')}", from_strokes(strokes).strokes, str(photo)))
        return out
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning("no rank-per-stroke view: %s unreadable (%s)", f, e)
        return []


def replayed(examples: list[Traced], sketch: Sketch) -> tuple[Traced, int] | None:
    """(example, completed strokes) when ``sketch`` is a replay of one of ``examples`` so far: its strokes
    equal the example's first ones, the last possibly still being drawn (a prefix of the next)."""
    drawn = sketch.strokes
    for ex in examples:
        if not drawn or len(drawn) > len(ex.strokes):
            continue
        *done, last = drawn
        if all(_same(a, b) for a, b in zip(done, ex.strokes, strict=False)):
            nxt = ex.strokes[len(done)]
            if _same(last, nxt):
                return ex, len(drawn)
            if len(last) < len(nxt) and _same(last, nxt[: len(last)]) and done:
                return ex, len(done)
    return None


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.allclose(a, b, atol=0.051))  # the page rounds points to 0.1 px


def target_ranks(retr: Retriever, ex: Traced, n: int, cache: dict, **kw) -> list[int]:
    """The target photo's 1-based rank after each of the first ``n`` strokes, with ``retr.retrieve(**kw)``
    (model, canvas, lam, fusion); ranks are memoised in ``cache`` (the session's) per prefix and setting."""
    g = retr.gallery
    assert g is not None
    if (ex.name, "target") not in cache:  # the photo's row, found once per session (the default gallery's)
        cache[(ex.name, "target")] = next((i for i, p in enumerate(g.paths) if Path(p).name == ex.target), None)
    target = cache[(ex.name, "target")]
    if target is None:
        return []
    out = []
    for i in range(1, n + 1):
        key = (ex.name, i, tuple(sorted(kw.items())))
        if key not in cache:
            res = retr.retrieve(Sketch(ex.strokes[:i]), k=len(g), **kw)
            cache[key] = next((h.rank for h in res.hits if h.index == target), len(g))
        out.append(cache[key])
    return out
