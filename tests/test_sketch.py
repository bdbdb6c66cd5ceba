"""sketchdown/sketch.py: the parsers, RDP, transforms, prefixes and input validation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from sketchdown.sketch.strokes import (
    MAX_POINTS,
    MAX_STROKES,
    Sketch,
    SketchError,
    from_json,
    from_pen_array,
    from_quickdraw,
    from_raster,
    from_stroke3,
    from_stroke5,
    load_sketch,
    rdp,
    stroke_sequence,
)


def _sk(*strokes) -> Sketch:
    return Sketch(tuple(np.asarray(s, np.float32).reshape(-1, 2) for s in strokes))


def _strokes_equal(a: Sketch, b: Sketch, atol: float = 1e-5) -> bool:
    return a.num_strokes == b.num_strokes and all(
        x.shape == y.shape and np.allclose(x, y, atol=atol) for x, y in zip(a.strokes, b.strokes, strict=True)
    )


def _random_sketch(seed: int, n_strokes: int = 4) -> Sketch:
    rng = np.random.default_rng(seed)
    strokes = []
    for _ in range(n_strokes):
        n = int(rng.integers(1, 12))
        start = rng.uniform(0, 300, 2)
        strokes.append((start + np.cumsum(rng.normal(0, 15, (n, 2)), 0)).astype(np.float32))
    return Sketch(tuple(strokes))


def _line_drawing(size: int = 64) -> Image.Image:
    im = Image.new("RGB", (size, size), (255, 255, 255))
    ImageDraw.Draw(im).line([(8, 8), (size - 8, size // 2), (size // 3, size - 8)], fill=(0, 0, 0), width=3)
    return im


# ---- parsers -----------------------------------------------------------------------------------
def test_from_json_app_format() -> None:
    s = from_json("[[[0, 0], [10, 0], [10, 5.5]], [[3, 4]]]")
    assert s.num_strokes == 2 and s.num_points == 4 and not s.is_raster
    assert all(st.dtype == np.float32 for st in s.strokes)
    np.testing.assert_array_equal(s.strokes[0], [[0, 0], [10, 0], [10, 5.5]])
    np.testing.assert_array_equal(s.strokes[1], [[3, 4]])
    # bytes and the {"strokes": ...} wrapper give the same sketch; extra values per point are ignored
    assert _strokes_equal(from_json(b'{"strokes": [[[0, 0], [10, 0], [10, 5.5]], [[3, 4]]]}'), s)
    assert _strokes_equal(from_json("[[[0, 0, 0.1], [10, 0, 0.2], [10, 5.5, 0.3]], [[3, 4, 9]]]"), s)


def test_to_json_round_trip() -> None:
    s = _random_sketch(1)
    back = from_json(s.to_json())
    assert _strokes_equal(back, s, atol=0.0051)  # to_json rounds to 2 decimals


def test_from_json_quickdraw_record() -> None:
    rec = {"word": "cat", "countrycode": "GB", "drawing": [[[0, 10, 20], [0, 5, 0]], [[1, 2], [3, 4]]]}
    s = from_json(json.dumps(rec))
    assert s.num_strokes == 2
    np.testing.assert_array_equal(s.strokes[0], [[0, 0], [10, 5], [20, 0]])
    np.testing.assert_array_equal(s.strokes[1], [[1, 3], [2, 4]])


def test_from_quickdraw_with_timestamps() -> None:
    # raw QuickDraw: [[xs], [ys], [ts]] per stroke; the times are dropped
    s = from_quickdraw([[[5, 6, 7], [1, 2, 3], [0, 16, 40]], [[9], [9], [100]]])
    np.testing.assert_array_equal(s.strokes[0], [[5, 1], [6, 2], [7, 3]])
    np.testing.assert_array_equal(s.strokes[1], [[9, 9]])
    with pytest.raises(SketchError, match="differ in length"):
        from_quickdraw([[[1, 2, 3], [1, 2]]])
    with pytest.raises(SketchError, match=r"\[xs, ys"):
        from_quickdraw([[1, 2]])
    with pytest.raises(SketchError, match="must be a list"):
        from_quickdraw("abc")


def test_from_pen_array() -> None:
    arr = np.array([[0, 0, 0], [1, 1, 1], [5, 5, 0], [6, 6, 0], [7, 7, 1]], np.float64)
    s = from_pen_array(arr)
    assert s.num_strokes == 2
    np.testing.assert_array_equal(s.strokes[0], [[0, 0], [1, 1]])
    np.testing.assert_array_equal(s.strokes[1], [[5, 5], [6, 6], [7, 7]])
    # a last stroke without a pen_end flag is kept
    s2 = from_pen_array(np.array([[0, 0, 1], [3, 3, 0], [4, 4, 0]]))
    assert [len(x) for x in s2.strokes] == [1, 2]
    with pytest.raises(SketchError, match=r"\(N, 3\)"):
        from_pen_array(np.zeros((4, 2)))
    with pytest.raises(SketchError, match="empty"):
        from_pen_array(np.zeros((0, 3)))


def test_from_stroke3() -> None:
    # deltas; pen lifted after the 2nd and 4th points
    s3 = np.array([[1, 1, 0], [1, 0, 1], [2, 2, 0], [0, 1, 1]], np.float32)
    s = from_stroke3(s3)
    assert s.num_strokes == 2
    np.testing.assert_array_equal(s.strokes[0], [[1, 1], [2, 1]])
    np.testing.assert_array_equal(s.strokes[1], [[4, 3], [4, 4]])
    with pytest.raises(SketchError, match="stroke-3"):
        from_stroke3(np.zeros((3, 5)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stroke5_round_trip(seed: int) -> None:
    s = _random_sketch(seed)
    s5 = s.to_stroke5()
    assert s5.shape == (s.num_points + 1, 5) and s5.dtype == np.float32
    np.testing.assert_array_equal(s5[-1], [0, 0, 0, 0, 1])  # end-of-sketch token
    np.testing.assert_array_equal(s5[:-1, 2] + s5[:-1, 3], 1)  # exactly one pen state per point
    assert s5[:-1, 3].sum() == s.num_strokes  # one pen-up per stroke
    back = from_stroke5(s5)
    # stroke-5 keeps deltas only: the same strokes, translated so the first point is the origin
    origin = s.strokes[0][0]
    assert back.num_strokes == s.num_strokes
    for b, o in zip(back.strokes, s.strokes, strict=True):
        np.testing.assert_allclose(b, o - origin, atol=1e-3)
    # everything after the first end token is ignored
    junk = np.vstack([s5, np.array([[50, 50, 1, 0, 0], [1, 1, 0, 1, 0]], np.float32)])
    assert _strokes_equal(from_stroke5(junk), back)
    with pytest.raises(SketchError, match="stroke-5"):
        from_stroke5(np.zeros((3, 3)))


def test_from_raster_array_and_pil() -> None:
    im = _line_drawing()
    s = from_raster(im)
    assert s.is_raster and s.raster.dtype == np.uint8 and s.raster.shape == (64, 64)
    assert s.raster.max() == 255 and s.raster[0, 0] == 0  # ink is 255, paper 0
    s2 = from_raster(np.asarray(im))  # (H, W, 3) array
    np.testing.assert_array_equal(s2.raster, s.raster)
    # transparent PNG-style drawing: black lines on alpha 0 are composited on white paper
    rgba = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    ImageDraw.Draw(rgba).line([(4, 4), (28, 28)], fill=(0, 0, 0, 255), width=2)
    r = from_raster(rgba)
    assert r.raster[0, 31] == 0 and r.raster[16, 16] == 255
    with pytest.raises(SketchError, match="blank"):
        from_raster(np.full((32, 32), 250, np.uint8))
    with pytest.raises(SketchError, match=r"\(H, W\)"):
        from_raster(np.zeros((2, 2, 2, 2), np.uint8))


def test_raster_sketch_refuses_vector_ops() -> None:
    s = from_raster(_line_drawing())
    for op in (lambda: s.normalized(), lambda: s.to_stroke5(), lambda: s.prefix(1), lambda: s.simplified()):
        with pytest.raises(SketchError, match="raster"):
            op()


def test_load_sketch_files(tmp_path: Path) -> None:
    ref = _random_sketch(3)
    (tmp_path / "a.json").write_text(ref.to_json())
    assert _strokes_equal(load_sketch(tmp_path / "a.json"), ref, atol=0.0051)

    rec1 = {"word": "a", "drawing": [[[0, 10], [0, 10]]]}
    rec2 = {"word": "b", "drawing": [[[5, 6, 7], [5, 6, 7]]]}
    (tmp_path / "q.ndjson").write_text(json.dumps(rec1) + "\n" + json.dumps(rec2) + "\n")
    q = load_sketch(tmp_path / "q.ndjson")  # first record only
    assert q.num_strokes == 1
    np.testing.assert_array_equal(q.strokes[0], [[0, 0], [10, 10]])

    np.save(tmp_path / "s5.npy", ref.to_stroke5())
    s5 = load_sketch(tmp_path / "s5.npy")
    assert _strokes_equal(s5, from_stroke5(ref.to_stroke5()))
    s3 = np.array([[1, 1, 0], [1, 0, 1], [2, 2, 1]], np.float32)
    np.save(tmp_path / "s3.npy", s3)
    assert _strokes_equal(load_sketch(tmp_path / "s3.npy"), from_stroke3(s3))

    _line_drawing().save(tmp_path / "d.png")
    png = load_sketch(tmp_path / "d.png")
    np.testing.assert_array_equal(png.raster, from_raster(_line_drawing()).raster)


def test_load_sketch_errors(tmp_path: Path) -> None:
    with pytest.raises(SketchError, match="no such sketch file"):
        load_sketch(tmp_path / "missing.json")
    (tmp_path / "x.svg").write_text("<svg/>")
    with pytest.raises(SketchError, match="unsupported sketch file type"):
        load_sketch(tmp_path / "x.svg")
    np.save(tmp_path / "w.npy", np.zeros((4, 4), np.float32))
    with pytest.raises(SketchError, match=r"stroke-3 \(N,3\) or stroke-5"):
        load_sketch(tmp_path / "w.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(SketchError, match="could not read obj.npy"):  # never unpickled
        load_sketch(tmp_path / "obj.npy")
    (tmp_path / "empty.json").write_text("")
    with pytest.raises(SketchError, match="could not be parsed"):
        load_sketch(tmp_path / "empty.json")
    (tmp_path / "empty.ndjson").write_text("")
    with pytest.raises(SketchError, match="could not be parsed"):
        load_sketch(tmp_path / "empty.ndjson")


# ---- RDP ---------------------------------------------------------------------------------------
def _rdp_reference(points: np.ndarray, eps: float) -> np.ndarray:
    """Textbook recursive Ramer-Douglas-Peucker (same distance rule, first maximum wins)."""
    if len(points) < 3:
        return points
    a, b = points[0].astype(np.float64), points[-1].astype(np.float64)
    best, idx = -1.0, 0
    for i in range(1, len(points) - 1):
        p = points[i].astype(np.float64)
        ab = b - a
        n = math.hypot(*ab)
        d = math.hypot(*(p - a)) if n < 1e-9 else abs(ab[0] * (p[1] - a[1]) - ab[1] * (p[0] - a[0])) / n
        if d > best:
            best, idx = d, i
    if best > eps:
        left = _rdp_reference(points[: idx + 1], eps)
        right = _rdp_reference(points[idx:], eps)
        return np.vstack([left[:-1], right])
    return points[[0, -1]]


def test_rdp_collinear_collapses_to_endpoints() -> None:
    line = np.stack([np.arange(11), np.zeros(11)], 1).astype(np.float32)
    np.testing.assert_array_equal(rdp(line, 0.5), [[0, 0], [10, 0]])
    diag = np.stack([np.arange(6), 2 * np.arange(6)], 1).astype(np.float32)
    np.testing.assert_array_equal(rdp(diag, 0.01), [[0, 0], [5, 10]])


def test_rdp_keeps_corner_and_drops_small_wiggles() -> None:
    corner = np.array([[0, 0], [5, 0], [10, 0], [10, 5], [10, 10]], np.float32)
    np.testing.assert_array_equal(rdp(corner, 1.0), [[0, 0], [10, 0], [10, 10]])
    wiggle = np.array([[0, 0], [2, 0.3], [4, -0.3], [6, 0.2], [8, 0]], np.float32)
    np.testing.assert_array_equal(rdp(wiggle, 0.5), [[0, 0], [8, 0]])
    np.testing.assert_array_equal(rdp(wiggle, 0.1), wiggle)  # every wiggle above epsilon is kept
    # too short, or epsilon <= 0: unchanged
    np.testing.assert_array_equal(rdp(corner[:2], 5.0), corner[:2])
    np.testing.assert_array_equal(rdp(corner, 0.0), corner)


@pytest.mark.parametrize("eps", [0.5, 2.0, 8.0])
def test_rdp_matches_recursive_reference(eps: float) -> None:
    rng = np.random.default_rng(int(eps * 10))
    for _ in range(20):
        pts = np.cumsum(rng.normal(0, 3, (int(rng.integers(3, 60)), 2)), 0).astype(np.float32)
        np.testing.assert_array_equal(rdp(pts, eps), _rdp_reference(pts, eps))
    loop = np.array([[0, 0], [5, 0], [5, 5], [0, 5], [0, 0]], np.float32)  # closed: endpoints coincide
    np.testing.assert_array_equal(rdp(loop, 1.0), _rdp_reference(loop, 1.0))


def test_simplified_applies_per_stroke() -> None:
    s = _sk([[0, 0], [1, 0], [2, 0]], [[0, 0], [5, 0], [10, 0], [10, 5], [10, 10]])
    out = s.simplified(1.0)
    np.testing.assert_array_equal(out.strokes[0], [[0, 0], [2, 0]])
    np.testing.assert_array_equal(out.strokes[1], [[0, 0], [10, 0], [10, 10]])


# ---- transforms --------------------------------------------------------------------------------
def test_normalized_keeps_aspect_and_fits_box() -> None:
    s = _sk([[1000, -300], [1100, -300]], [[1050, -250]])  # 100 x 50 box far from the origin
    n = s.normalized(256.0)
    x0, y0, x1, y1 = n.bbox()
    assert (x0, x1) == pytest.approx((0, 256), abs=1e-3)
    assert (y0, y1) == pytest.approx((64, 192), abs=1e-3)  # centred, aspect 2:1 kept
    m = s.normalized(200.0, margin=0.1)
    x0, y0, x1, y1 = m.bbox()
    assert (x0, x1) == pytest.approx((20, 180), abs=1e-3)
    assert (x1 - x0) / (y1 - y0) == pytest.approx(2.0, rel=1e-5)
    # a single point lands in the centre instead of dividing by zero
    p = _sk([[7, 7]]).normalized(100.0)
    np.testing.assert_allclose(p.strokes[0], [[50, 50]])


def test_prefix_strokes() -> None:
    s = _random_sketch(4, n_strokes=5)
    for n in (1, 2, 5):
        p = s.prefix(n)
        assert p.num_strokes == n
        assert all(np.array_equal(a, b) for a, b in zip(p.strokes, s.strokes, strict=False))
    assert s.prefix(0).num_strokes == 1  # at least one stroke
    assert s.prefix(99).num_strokes == 5


@pytest.mark.parametrize("frac", [0.01, 0.1, 0.33, 0.5, 0.77, 0.999])
def test_prefix_ink_length(frac: float) -> None:
    s = Sketch((np.array([[3, 3]], np.float32), *_random_sketch(5, n_strokes=6).strokes))
    total = s.ink_length()
    p = s.prefix_ink(frac)
    assert p.ink_length() == pytest.approx(frac * total, rel=1e-3)
    # it is a prefix: earlier strokes untouched, the last one cut along its own path
    *full, last = p.strokes
    for a, b in zip(full, s.strokes, strict=False):
        np.testing.assert_array_equal(a, b)
    orig = s.strokes[len(full)]
    np.testing.assert_array_equal(last[:-1], orig[: len(last) - 1])
    seg_a, seg_b = orig[len(last) - 2], orig[min(len(last) - 1, len(orig) - 1)]
    if len(last) >= 2 and not np.array_equal(seg_a, seg_b):  # the cut point lies on the next segment
        cross = (seg_b - seg_a)[0] * (last[-1] - seg_a)[1] - (seg_b - seg_a)[1] * (last[-1] - seg_a)[0]
        assert abs(cross) / np.linalg.norm(seg_b - seg_a) < 1e-2


def test_prefix_ink_whole() -> None:
    s = _random_sketch(6)
    assert s.prefix_ink(1.0) is s and s.prefix_ink(5.0) is s
    assert s.prefix_ink(0.0).num_points >= 1


def test_stroke_sequence_shape() -> None:
    s = _random_sketch(7, n_strokes=30)
    seq = stroke_sequence(s, max_len=40)
    assert seq.shape[1] == 5 and 2 <= len(seq) <= 40 and seq.dtype == np.float32
    np.testing.assert_array_equal(seq[-1], [0, 0, 0, 0, 1])


# ---- bad input ---------------------------------------------------------------------------------
_BIG_STROKE = "[[" + ",".join(["[1,2]"] * (MAX_POINTS + 1)) + "]]"
_MANY_STROKES = "[" + ",".join(["[[1,2]]"] * (MAX_STROKES + 1)) + "]"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "empty"),
        ("[[]]", "empty"),
        ("[[], []]", "empty"),
        ("[[[NaN, 1]]]", "finite"),
        ("[[[1, Infinity]]]", "finite"),
        ("[[[1, -Infinity]]]", "finite"),
        ("[[[1e400, 1]]]", "finite"),  # JSON overflows to inf
        ("[[[2000000, 1]]]", "within"),
        ("[[[1, -1e7]]]", "within"),
        (f"[[[{10**400}, 1]]]", "within"),  # an integer too large for a float
        (f'{{"drawing": [[[{10**400}], [1]]]}}', "within"),
        ("[1, 2, 3]", "stroke 0 must be a list"),
        ("[[1, 2]]", "stroke 0 must be a list of \\[x, y\\] points"),
        ("[[[1, 2], [3]]]", "stroke 0 must be a list"),
        ('[[["1", "2"]]]', "not a number"),
        ("[[[1, 2]], [[null, 2]]]", "stroke 1 has a coordinate that is not a number"),
        ("[[[true, 1]]]", "not a number"),
        ("[[[[1, 2], [3, 4]]]]", "not a number"),
        (_BIG_STROKE, "too many points"),
        (_MANY_STROKES, "too many strokes"),
        ("[[[1, 2]", "could not be parsed"),
        ("", "could not be parsed"),
        ("{'a': 1}", "could not be parsed"),
        ("[" * 100_000 + "]" * 100_000, "too many points"),  # more lists than points allowed: refused unparsed
        ("[" * 60_000 + "]" * 60_000, "nested too deeply"),  # within the count, too deep for the parser
        (f"[[[{'9' * 5001}, 1]]]", "within"),  # past Python's 4300-digit int limit
        ("null", "expected a list of strokes"),
        ('"strokes"', "expected a list of strokes"),
        ('{"strokes": 5}', "expected a list of strokes"),
        ('{"drawing": 5}', "QuickDraw"),
    ],
    ids=lambda v: v[:30] if isinstance(v, str) else v,
)
def test_bad_input_raises_sketch_error(text: str, message: str) -> None:
    with pytest.raises(SketchError, match=message) as e:
        from_json(text)
    assert "\n" not in str(e.value) and len(str(e.value)) < 300  # one line, fit to show a user


def test_single_point_is_valid() -> None:
    s = from_json("[[[5, 7]]]")
    assert s.num_points == 1 and s.ink_length() == 0.0
    assert s.bbox() == (5.0, 7.0, 5.0, 7.0)


def test_max_points_is_allowed() -> None:
    text = "[[" + ",".join(["[1,2]"] * MAX_POINTS) + "]]"
    assert from_json(text).num_points == MAX_POINTS


def test_empty_sketch_object() -> None:
    with pytest.raises(SketchError, match="empty"):
        Sketch(())


# ---- property test -----------------------------------------------------------------------------
_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=4)
_json_like = st.recursive(
    _scalars,
    lambda kids: (
        st.lists(kids, max_size=5) | st.dictionaries(st.sampled_from(["drawing", "strokes", "word", "x"]), kids, max_size=3)
    ),
    max_leaves=40,
)
_num = st.integers(-(10**7), 10**7) | st.floats(allow_nan=True, allow_infinity=True)
_near_valid = st.lists(st.lists(st.lists(_num | _scalars, min_size=0, max_size=3), max_size=6), max_size=4)
_quickdraw = st.fixed_dictionaries({"drawing": st.lists(st.lists(st.lists(_num, max_size=4), max_size=3), max_size=3)})


@settings(max_examples=300, deadline=None, database=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(_json_like | _near_valid | _quickdraw)
def test_from_json_never_raises_anything_but_sketch_error(obj) -> None:
    """Any JSON document gives a Sketch or a SketchError, never another exception.

    300 derandomized examples keep this in the unit suite; the long randomized fuzz run (many
    thousands of examples) is a separate job, not part of this suite.
    """
    text = json.dumps(obj)
    try:
        s = from_json(text)
    except SketchError as e:
        assert str(e) and "\n" not in str(e)
        return
    assert isinstance(s, Sketch) and s.num_strokes >= 1
    for stroke in s.strokes:
        assert stroke.dtype == np.float32 and stroke.ndim == 2 and stroke.shape[1] == 2 and len(stroke) >= 1
        assert np.all(np.isfinite(stroke)) and np.abs(stroke).max() <= 1e6
