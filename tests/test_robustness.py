"""Bad input through the app's per-stroke handler (property-based fuzz), and the fast inference path
(ONNX Runtime) against the eager reference.

The fuzz run is short here (``SKETCHDOWN_FUZZ`` examples, default 300). The long run is by hand:
``SKETCHDOWN_FUZZ=10000 python -m pytest tests/test_robustness.py -k fuzz``.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sketchdown.retrieval.accel import onnx_available
from sketchdown.sketch.examples import example_json
from sketchdown.sketch.strokes import from_strokes

pytestmark = [pytest.mark.filterwarnings("ignore:::gradio.queueing"), pytest.mark.filterwarnings("ignore:::gradio.helpers")]

FUZZ = int(os.environ.get("SKETCHDOWN_FUZZ", "300"))

_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([0, -1, 1e308, -1e308, 5e-324, 255.5]),
)
_leaf = st.one_of(_numbers, st.text(max_size=4), st.none(), st.booleans())
_point = st.one_of(st.lists(_numbers, min_size=0, max_size=4), st.tuples(_numbers, _numbers), _leaf)
_stroke = st.one_of(st.lists(_point, max_size=12), _leaf, st.dictionaries(st.text(max_size=3), _leaf, max_size=2))
_sketch = st.one_of(st.lists(_stroke, max_size=6), _leaf, st.dictionaries(st.text(max_size=5), st.lists(_stroke, max_size=3), max_size=2))


def _dump(obj) -> str:
    # NaN/inf become the JSON extension tokens a broken client might send
    return json.dumps(obj, allow_nan=True)


@pytest.fixture(scope="module")
def h(web_app):
    """The app's handlers over the tiny weights and 6-photo gallery (built once, conftest.py)."""
    return web_app.handlers


def test_fuzz_stroke_json_through_the_handler(h):
    """Generated stroke JSON (wrong nesting, strings, NaN/inf, huge and negative coordinates, empty
    and single points): the handler never raises, answers with photos or a clear message, and a good
    sketch still works right after."""
    good = example_json("fish")
    outcomes = {"photos": 0, "message": 0}

    @settings(max_examples=FUZZ, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(obj=_sketch, raw=st.one_of(st.none(), st.text(max_size=30)))
    def run(obj, raw):
        text = raw if raw is not None and len(raw) % 5 == 0 else _dump(obj)
        out = h.retrieve(text)
        photos, readout, status = out[0], out[1], out[5]
        assert isinstance(readout, dict)
        if photos:
            outcomes["photos"] += 1
            assert readout.get("error") is None
        else:
            outcomes["message"] += 1
            assert readout.get("empty") or (readout.get("error") and "internal error" not in readout["error"]), readout
            assert status == "" or status.startswith("⚠️")

    run()
    assert outcomes["message"] > 0  # the generator does reach the error paths
    assert h.retrieve(good)[0], "a good sketch after the fuzz run must still return photos"


@pytest.mark.parametrize(
    "strokes, fragment",
    [
        ([[[1e300, 1e300], [-1e300, 5]]], "within"),  # finite but absurd: refused with the allowed range
        ([[[9e5, 9e5], [-9e5, 5]]], None),  # huge but allowed: normalised like any sketch
        ([[[-50, -50], [-10, -30]]], None),  # negative coordinates are fine
        ([[[float("nan"), 1], [2, 3]]], "finite"),
        ([[[float("inf"), 1], [2, 3]]], "finite"),
        ([[[5, 5]]], None),  # a single point is a dot
    ],
)
def test_extreme_coordinates(h, strokes, fragment):
    out = h.retrieve(_dump(strokes))
    if fragment is None:
        assert out[0] and out[1]["error"] is None
    else:
        assert not out[0] and fragment in out[1]["error"]


def test_100k_points_is_refused_cleanly(h):
    pts = [[float(i % 500), float(i // 500)] for i in range(100_000)]
    out = h.retrieve(json.dumps([pts]))
    assert not out[0] and "too many points" in out[1]["error"]


@pytest.mark.skipif(not onnx_available(), reason="onnx/onnxruntime not installed")
def test_onnx_branch_matches_eager(smoke_weights):
    from sketchdown.bundles.bundle import load_bundle
    from sketchdown.retrieval.retriever import Retriever

    b = load_bundle(smoke_weights)
    fast, ref = Retriever(b, None, backend="onnx"), Retriever(b, None, backend="eager")
    sk = from_strokes(json.loads(example_json("guitar")))
    for name, br in b.sketch.items():
        for c in br.canvas_sizes:
            e1, _, cats1 = fast.embed(sk, name, c)
            e2, _, cats2 = ref.embed(sk, name, c)
            np.testing.assert_allclose(e1, e2, atol=1e-4)
            assert [c for c, _ in cats1] == [c for c, _ in cats2]
    c1, p1, f1 = fast.select_canvas(sk, b.selector.model, 0.2)
    c2, p2, f2 = ref.select_canvas(sk, b.selector.model, 0.2)
    assert (c1, f1) == (c2, f2)
    assert all(math.isclose(p1[k], p2[k], abs_tol=1e-5) for k in p1)


@pytest.mark.skipif(not onnx_available(), reason="onnx/onnxruntime not installed")
def test_onnx_selector_matches_eager():
    """The selector gives the same logits in ONNX as in eager PyTorch, lambda_F included."""
    import torch

    from sketchdown.models.modules import CanvasSelector
    from sketchdown.retrieval.accel import OnnxSelector

    torch.manual_seed(0)
    sel = CanvasSelector(3, hidden=16, costs=[0.0, -0.3, -1.0]).eval()
    seq = np.random.default_rng(0).normal(size=(9, 5)).astype(np.float32)
    fast = OnnxSelector(sel)
    for lam in (0.0, 0.01, 0.5):
        with torch.inference_mode():
            ref = sel(torch.from_numpy(seq)[None], torch.tensor([9]), torch.tensor([lam]))[0].numpy()
        np.testing.assert_allclose(fast(seq, lam), ref, atol=1e-5)


def test_backend_choice(monkeypatch):
    from sketchdown.retrieval.accel import resolve_backend

    assert resolve_backend("eager") == "eager"
    monkeypatch.setenv("SKETCHDOWN_BACKEND", "eager")
    assert resolve_backend(None) == "eager"
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_backend("tensorrt")


def test_onnx_branch_rejects_wrong_canvas(smoke_weights):
    if not onnx_available():
        pytest.skip("onnx/onnxruntime not installed")
    from sketchdown.bundles.bundle import load_bundle
    from sketchdown.retrieval.accel import OnnxBranch

    b = load_bundle(smoke_weights)
    br = next(iter(b.sketch.values()))
    runner = OnnxBranch(br.encoder, br.canvas_sizes[0], 0)
    with pytest.raises(ValueError, match="expected"):
        runner(torch.zeros(1, 3, br.canvas_sizes[0] + 1, br.canvas_sizes[0] + 1))
