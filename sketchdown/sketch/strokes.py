"""The sketch type and its parsers.

A :class:`Sketch` is either a list of vector strokes (each an ``(N, 2)`` float32 array of x, y in
canvas pixels, in drawing order) or, for raster-only inputs, an ink image. Every parser validates its
input and raises :class:`SketchError` with a one-line, user-facing message; nothing here unpickles
untrusted data (the ChairV2 pickle is opened only by :mod:`sketchdown.eval.data`, on a path the user names).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MAX_POINTS = 50_000  # a browser sketch has ~10^3 points; beyond this is a bug or an attack
MAX_STROKES = 5_000
MAX_COORD = 1e6  # canvas pixels; larger values are almost surely garbage
MAX_JSON_CHARS = 20_000_000  # stroke JSON, checked before parsing; 50,000 points pretty-printed take ~5 MB
MAX_CONTAINERS = MAX_POINTS + 4 * MAX_STROKES + 64  # JSON lists + objects: one per point, a few per stroke
MAX_VALUES = 8 * MAX_POINTS + 4 * MAX_STROKES  # commas: x, y and a few extras (time, pressure) per point
MAX_NUMBER_CHARS = 100  # characters of one JSON number
RASTER_EXTS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"}


class SketchError(ValueError):
    """Invalid sketch input. ``str(err)`` is a one-line message fit to show a user."""


@dataclass(frozen=True)
class Sketch:
    """A sketch: vector strokes, or an ink raster.

    strokes: tuple of float32 arrays, each ``(N_i, 2)`` of (x, y) in canvas pixels, N_i >= 1.
    raster: for raster-only sketches, uint8 ``(H, W)`` ink image (255 = full ink, 0 = paper).
    """

    strokes: tuple[np.ndarray, ...] = ()
    raster: np.ndarray | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.raster is None and not self.strokes:
            raise SketchError("the sketch is empty: draw at least one stroke")

    # ---- basic facts -------------------------------------------------------------------------
    @property
    def is_raster(self) -> bool:
        return self.raster is not None

    @property
    def num_strokes(self) -> int:
        return len(self.strokes)

    @property
    def num_points(self) -> int:
        return int(sum(len(s) for s in self.strokes))

    def points(self) -> np.ndarray:
        """All points, ``(P, 2)`` float32."""
        return np.concatenate(self.strokes, 0) if self.strokes else np.zeros((0, 2), np.float32)

    def bbox(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the strokes."""
        p = self.points()
        return float(p[:, 0].min()), float(p[:, 1].min()), float(p[:, 0].max()), float(p[:, 1].max())

    def ink_length(self) -> float:
        """Total stroke length in pixels."""
        return float(sum(_stroke_lengths(s).sum() for s in self.strokes))

    # ---- transforms --------------------------------------------------------------------------
    def normalized(self, size: float = 256.0, margin: float = 0.0) -> Sketch:
        """Fit the strokes into a ``size`` square keeping aspect, centred, ``margin`` (fraction) each side."""
        self._need_vector("normalize")
        x0, y0, x1, y1 = self.bbox()
        span = max(x1 - x0, y1 - y0, 1e-6)
        scale = size * (1 - 2 * margin) / span
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        out = [((s - (cx, cy)) * scale + size / 2).astype(np.float32) for s in self.strokes]
        return Sketch(tuple(out))

    def simplified(self, epsilon: float = 2.0) -> Sketch:
        """Ramer-Douglas-Peucker per stroke; ``epsilon`` in the sketch's pixels."""
        self._need_vector("simplify")
        return Sketch(tuple(rdp(s, epsilon) for s in self.strokes))

    def prefix(self, n_strokes: int) -> Sketch:
        """The first ``n_strokes`` strokes (at least one)."""
        self._need_vector("take a prefix of")
        return Sketch(self.strokes[: max(1, int(n_strokes))])

    def prefix_ink(self, fraction: float) -> Sketch:
        """The first ``fraction`` (0-1] of the ink, cutting the last stroke mid-way."""
        self._need_vector("take a prefix of")
        fraction = float(np.clip(fraction, 0.0, 1.0))
        total = self.ink_length()
        if fraction >= 1.0 or total <= 0:
            return self
        budget = max(fraction * total, 1e-6)
        out: list[np.ndarray] = []
        for s in self.strokes:
            seg = _stroke_lengths(s)
            length = float(seg.sum())
            if length <= budget or len(s) == 1:
                out.append(s)
                budget -= length
                if budget <= 0:
                    break
                continue
            cum = np.concatenate([[0.0], np.cumsum(seg)])
            j = int(np.searchsorted(cum, budget))  # cum[j-1] < budget <= cum[j]
            t = (budget - cum[j - 1]) / max(seg[j - 1], 1e-9)
            end = s[j - 1] + t * (s[j] - s[j - 1])
            out.append(np.vstack([s[:j], end[None]]).astype(np.float32))
            break
        return Sketch(tuple(out))

    def to_stroke5(self, max_len: int | None = None) -> np.ndarray:
        """Stroke-5 ``(L, 5)`` float32: dx, dy, pen_down, pen_up (end of stroke), end of sketch."""
        self._need_vector("encode")
        pts, pen = [], []
        for s in self.strokes:
            pts.append(s)
            p = np.zeros(len(s), np.float32)
            p[-1] = 1
            pen.append(p)
        xy = np.concatenate(pts, 0)
        p2 = np.concatenate(pen, 0)
        d = np.diff(np.vstack([xy[:1], xy]), axis=0)
        out = np.zeros((len(xy) + 1, 5), np.float32)
        out[:-1, :2] = d
        out[:-1, 3] = p2
        out[:-1, 2] = 1 - p2
        out[-1, 4] = 1
        return out if max_len is None else out[:max_len]

    def to_json(self) -> str:
        """The app's JSON: ``[[[x, y], ...], ...]``."""
        self._need_vector("serialise")
        return json.dumps([np.round(s, 2).tolist() for s in self.strokes])

    def _need_vector(self, what: str) -> None:
        if self.is_raster:
            raise SketchError(f"cannot {what} a raster sketch: this needs vector strokes")


# ---- helpers -----------------------------------------------------------------------------------
def _stroke_lengths(s: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.diff(s, axis=0), axis=1) if len(s) > 1 else np.zeros(0, np.float32)


def rdp(points: np.ndarray, epsilon: float) -> np.ndarray:
    """Ramer-Douglas-Peucker on an ``(N, 2)`` polyline (iterative, so 10^5 points cannot overflow)."""
    n = len(points)
    if n < 3 or epsilon <= 0:
        return points
    keep = np.zeros(n, bool)
    keep[0] = keep[-1] = True
    stack = [(0, n - 1)]
    while stack:
        i, j = stack.pop()
        if j <= i + 1:
            continue
        a, b = points[i], points[j]
        seg = points[i + 1 : j]
        ab = b - a
        norm = float(np.hypot(*ab))
        if norm < 1e-9:
            d = np.linalg.norm(seg - a, axis=1)
        else:
            d = np.abs(ab[0] * (seg[:, 1] - a[1]) - ab[1] * (seg[:, 0] - a[0])) / norm
        k = int(np.argmax(d))
        if d[k] > epsilon:
            m = i + 1 + k
            keep[m] = True
            stack += [(i, m), (m, j)]
    return points[keep]


def _check_array(xy: np.ndarray, what: str) -> np.ndarray:
    if not np.all(np.isfinite(xy)):
        raise SketchError(f"{what}: coordinates must be finite numbers (found NaN or inf)")
    if xy.size and np.abs(xy).max() > MAX_COORD:
        raise SketchError(f"{what}: coordinates must lie within +-{MAX_COORD:.0e} pixels")
    return xy.astype(np.float32)


def from_strokes(strokes: Sequence[Any], what: str = "sketch") -> Sketch:
    """From a sequence of strokes, each a sequence of (x, y) pairs or an ``(N, >=2)`` array."""
    if not isinstance(strokes, (list, tuple)):
        raise SketchError(f"{what}: expected a list of strokes, got {type(strokes).__name__}")
    if len(strokes) > MAX_STROKES:
        raise SketchError(f"{what}: too many strokes ({len(strokes)} > {MAX_STROKES})")
    out: list[np.ndarray] = []
    total = 0
    for i, s in enumerate(strokes):
        if isinstance(s, np.ndarray):
            arr = s
        else:
            if not isinstance(s, (list, tuple)):
                raise SketchError(f"{what}: stroke {i} must be a list of [x, y] points")
            if not all(isinstance(p, (list, tuple)) and len(p) >= 2 for p in s):
                raise SketchError(f"{what}: stroke {i} must be a list of [x, y] points")
            if not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for p in s for v in p[:2]
            ):
                raise SketchError(f"{what}: stroke {i} has a coordinate that is not a number")
            try:
                arr = np.asarray([p[:2] for p in s], dtype=np.float64).reshape(-1, 2)
            except OverflowError:  # an integer too large for a float (JSON allows any size)
                raise SketchError(f"{what}: coordinates must lie within +-{MAX_COORD:.0e} pixels") from None
        if arr.ndim != 2 or arr.shape[1] < 2:
            raise SketchError(f"{what}: stroke {i} must have shape (N, 2)")
        if len(arr) == 0:
            continue  # an empty stroke carries no ink; skipping it loses nothing
        total += len(arr)
        if total > MAX_POINTS:
            raise SketchError(f"{what}: too many points (> {MAX_POINTS})")
        out.append(_check_array(np.asarray(arr[:, :2], dtype=np.float64), what))
    if not out:
        raise SketchError(f"{what}: the sketch is empty: draw at least one stroke")
    return Sketch(tuple(out))


def parse_json(text: Any) -> Any:
    """The JSON value of a stroke payload, parsed only after its limits are checked: at most
    ``MAX_JSON_CHARS`` characters (bytes for ``bytes``), a bounded count of lists, objects and values (so the
    parsed value stays ~10 MB however it is nested), numbers of at most ``MAX_NUMBER_CHARS`` characters,
    no NaN/Infinity. Raises :class:`SketchError` with a message of its own for every failure."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        _check_length(len(text))  # before decoding, let alone parsing
        try:
            text = bytes(text).decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise SketchError(f"stroke JSON is not UTF-8 text (bad byte at position {e.start})") from None
    if not isinstance(text, str):
        raise SketchError(f"stroke JSON must be text like '[[[x, y], ...], ...]', not {type(text).__name__}")
    _check_length(len(text))
    # counting is ~1 ms per MB; it bounds what json.loads may build (bracket counts over-count, never under)
    if text.count("[") + text.count("{") > MAX_CONTAINERS or text.count(",") > MAX_VALUES:
        raise SketchError(f"stroke JSON: too many points (> {MAX_POINTS}) or values")
    try:
        return json.loads(text.lstrip("\ufeff"), parse_int=_number(int), parse_float=_number(float),
                          parse_constant=_no_constant)
    except RecursionError:
        raise SketchError("stroke JSON is nested too deeply (strokes are [[[x, y], ...], ...])") from None
    except SketchError:  # ours, from the number hooks
        raise
    except json.JSONDecodeError as e:
        raise SketchError(f"stroke JSON could not be parsed: {e.msg} (line {e.lineno}, column {e.colno})") from None
    except (ValueError, MemoryError) as e:
        raise SketchError(f"stroke JSON could not be parsed ({type(e).__name__})") from None


def _check_length(n: int) -> None:
    if n > MAX_JSON_CHARS:
        raise SketchError(f"stroke JSON is too large ({n / 1e6:.1f} MB > {MAX_JSON_CHARS / 1e6:.0f} MB)")


def _number(kind: type) -> Any:
    """A json.loads hook that turns a number token into ``kind`` after checking its length: Python refuses
    integers over 4300 digits with a ValueError of its own, and a 10^5-digit float is absurd for a pixel."""

    def parse(token: str) -> int | float:
        if len(token) > MAX_NUMBER_CHARS:
            raise SketchError(f"stroke JSON: a number has {len(token)} characters; coordinates must lie within "
                              f"+-{MAX_COORD:.0e} pixels")
        return kind(token)

    return parse


def _no_constant(token: str) -> float:
    raise SketchError(f"stroke JSON: coordinates must be finite numbers (found {token})")


def is_blank(obj: Any) -> bool:
    """True for a parsed payload without ink: ``[]``, only empty strokes, or ``{"strokes": that}``."""
    if isinstance(obj, dict) and "strokes" in obj:
        obj = obj["strokes"]
    return isinstance(obj, list) and all(isinstance(s, list) and len(s) == 0 for s in obj)


def from_parsed(obj: Any) -> Sketch:
    """From a parsed stroke payload: the app's strokes, ``{"strokes": ...}`` or one QuickDraw record."""
    if isinstance(obj, dict) and "drawing" in obj:  # one QuickDraw ndjson record
        return from_quickdraw(obj["drawing"])
    if isinstance(obj, dict) and "strokes" in obj:
        obj = obj["strokes"]
    return from_strokes(obj, "stroke JSON")


def from_json(text: str | bytes) -> Sketch:
    """From the app's JSON ``[[[x, y], ...], ...]`` (pixels of the drawing canvas), checked by :func:`parse_json`."""
    return from_parsed(parse_json(text))


def from_pen_array(arr: np.ndarray) -> Sketch:
    """From absolute ``(N, 3)`` x, y, pen_end (QMUL ChairV2); pen_end = 1 on a stroke's last point."""
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < 3:
        raise SketchError(f"expected an (N, 3) x, y, pen_end array, got shape {arr.shape}")
    ends = np.flatnonzero(arr[:, 2] > 0.5)
    cuts = np.concatenate([[-1], ends, [len(arr) - 1]])
    strokes = [arr[a + 1 : b + 1, :2] for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a]
    return from_strokes(strokes, "pen array")


def from_quickdraw(drawing: Any) -> Sketch:
    """From a QuickDraw drawing: ``[[xs], [ys](, [ts])]`` per stroke."""
    if not isinstance(drawing, list):
        raise SketchError("QuickDraw drawing must be a list of [xs, ys(, ts)] strokes")
    strokes = []
    for i, s in enumerate(drawing):
        if not (isinstance(s, list) and len(s) >= 2 and isinstance(s[0], list) and isinstance(s[1], list)):
            raise SketchError(f"QuickDraw stroke {i} must be [xs, ys(, ts)]")
        if len(s[0]) != len(s[1]):
            raise SketchError(f"QuickDraw stroke {i}: xs and ys differ in length")
        strokes.append([[x, y] for x, y in zip(s[0], s[1], strict=True)])
    return from_strokes(strokes, "QuickDraw drawing")


def from_stroke3(arr: np.ndarray) -> Sketch:
    """From stroke-3 ``(N, 3)``: dx, dy, pen_lift (1 = pen lifted after this point)."""
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise SketchError(f"stroke-3 must be (N, 3), got {arr.shape}")
    xy = np.cumsum(arr[:, :2], axis=0)
    return from_pen_array(np.column_stack([xy, arr[:, 2]]))


def from_stroke5(arr: np.ndarray) -> Sketch:
    """From stroke-5 ``(N, 5)``: dx, dy, p_down, p_up, p_end (stops at the first p_end)."""
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 5:
        raise SketchError(f"stroke-5 must be (N, 5), got {arr.shape}")
    end = np.flatnonzero(arr[:, 4] > 0.5)
    if len(end):
        arr = arr[: end[0]]
    return from_stroke3(np.column_stack([arr[:, :2], arr[:, 3]]))


def from_raster(image: Any) -> Sketch:
    """From a drawing image (PIL image or ``(H, W[, C])`` uint8 array, dark lines on light paper)."""
    from PIL import Image

    if isinstance(image, Image.Image):
        if image.mode in ("RGBA", "LA", "P"):
            rgba = image.convert("RGBA")
            bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            image = Image.alpha_composite(bg, rgba)
        gray = np.asarray(image.convert("L"))
    else:
        a = np.asarray(image)
        if a.ndim == 3:
            a = a[..., :3].mean(-1)
        if a.ndim != 2:
            raise SketchError(f"raster sketch must be (H, W) or (H, W, C), got {a.shape}")
        gray = a.astype(np.uint8) if a.dtype != np.uint8 else a
    ink = (255 - gray.astype(np.int16)).clip(0, 255).astype(np.uint8)
    if int(ink.max()) < 32:
        raise SketchError("the sketch image is blank: no dark lines found")
    return Sketch((), raster=ink)


def load_sketch(path: str | Path) -> Sketch:
    """Load a sketch file: ``.json`` (app strokes), ``.ndjson`` (QuickDraw, first record),
    ``.npy`` (stroke-3/-5 by width, or (N, 3) pen array with ``--absolute``) or an image."""
    p = Path(path)
    if not p.is_file():
        raise SketchError(f"no such sketch file: {p}")
    ext = p.suffix.lower()
    if ext == ".json":
        return from_json(p.read_bytes())
    if ext == ".ndjson":
        with p.open("rb") as f:
            return from_json(f.readline())
    if ext == ".npy":
        try:
            arr = np.load(p, allow_pickle=False)
        except ValueError as e:
            raise SketchError(f"could not read {p.name}: {e}") from None
        if arr.ndim == 2 and arr.shape[1] == 5:
            return from_stroke5(arr)
        if arr.ndim == 2 and arr.shape[1] == 3:
            return from_stroke3(arr)
        raise SketchError(f"{p.name}: expected stroke-3 (N,3) or stroke-5 (N,5), got {arr.shape}")
    if ext in RASTER_EXTS:
        from sketchdown.sketch.imageio import open_image

        return from_raster(open_image(p))
    raise SketchError(f"unsupported sketch file type '{ext}' (use .json, .ndjson, .npy or an image)")


def stroke_sequence(sketch: Sketch, epsilon: float = 2.0, max_len: int = 200) -> np.ndarray:
    """Selector input: RDP-simplified stroke-5 on a 256 canvas, deltas scaled to ~unit range.

    Returns float32 ``(L, 5)`` with L <= max_len.
    """
    s5 = sketch.normalized(256.0).simplified(epsilon).to_stroke5()
    if len(s5) > max_len:  # keep the start and the end token
        s5 = np.vstack([s5[: max_len - 1], s5[-1:]])
    s5 = s5.copy()
    s5[:, :2] /= 64.0
    return s5


__all__ = ["MAX_JSON_CHARS", "MAX_POINTS", "Sketch", "SketchError", "from_json", "from_parsed", "from_pen_array",
           "from_quickdraw", "from_raster", "from_stroke3", "from_stroke5", "from_strokes", "is_blank", "load_sketch",
           "parse_json", "rdp", "stroke_sequence"]
