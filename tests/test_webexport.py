"""The in-page export against the eager modules it was made from: every canvas' embedding and logits, the
selector's logits, the gallery vectors, the manifest's checksums and the float16 storage."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from sketchdown.bundles.bundle import load_bundle
from sketchdown.retrieval.encode import encoder_runner, pad_sequences
from sketchdown.retrieval.gallery import GalleryIndex
from sketchdown.retrieval.webexport import export_key, export_web
from sketchdown.sketch.strokes import Sketch, stroke_sequence

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    bundle = load_bundle(str(REPO / "weights" / "default"))
    gallery = GalleryIndex.load(REPO / "gallery" / "index" / "default", REPO / "gallery" / "photos")
    out = tmp_path_factory.mktemp("web")
    export_web(bundle, gallery, out, classes=["chair", "fish"])
    return bundle, gallery, out, json.loads((out / "manifest.json").read_text())


def test_one_graph_serves_every_canvas(shipped):
    bundle, _, out, m = shipped
    b = bundle.sketch[m["model"]]
    assert m["encoders"] == [{"file": "encoder.onnx", "canvases": list(b.canvas_sizes)}]
    sess = ort.InferenceSession(str(out / "encoder.onnx"))
    torch.manual_seed(0)
    for i, c in enumerate(b.canvas_sizes):
        x = torch.rand(1, 3, c, c) * 2 - 1
        e, lg = encoder_runner(b.encoder, i, logits=True)(x, c)
        e2, lg2 = sess.run(None, {"x": x.numpy(), "canvas": np.array([i], np.int64)})
        np.testing.assert_allclose(e2, e.numpy(), atol=1e-5)
        np.testing.assert_allclose(lg2, lg.numpy(), atol=1e-4)
        assert m["branch_flops"][str(c)] == b.flops(c)


def test_selector_gallery_and_manifest(shipped):
    bundle, gallery, out, m = shipped
    sess = ort.InferenceSession(str(out / "selector.onnx"))
    sk = Sketch((np.array([[0, 0], [30, 40], [80, 10], [100, 90]], np.float32), np.array([[5, 5], [60, 70]], np.float32)))
    seq = stroke_sequence(sk)
    x, lens = pad_sequences([seq])
    for lam in m["selector"]["lams"]:
        want = bundle.selector.policy(x, lens, torch.tensor([lam])).detach().numpy()
        got = sess.run(None, {"seq": seq[None], "lam": np.array([lam], np.float32)})[0]
        np.testing.assert_allclose(got, want, atol=1e-5)
    vec = np.fromfile(out / "gallery.f32", "<f4").reshape(m["gallery"]["count"], m["gallery"]["dim"])
    np.testing.assert_array_equal(vec, gallery.embeddings())
    assert [it["path"] for it in m["gallery"]["items"]] == gallery.paths
    for name, digest in m["files"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
    assert m["offered"] == ["chair", "fish"] and m["alpha"] == bundle.sketch[m["model"]].alpha_for(m["granularity"])


def test_weights_are_stored_as_exact_float16(shipped):
    """The shipped weights are float16: the export stores them so (half the download) and loses nothing,
    which the embedding test above checks; here, that most of the file is float16."""
    _, _, out, _ = shipped
    model = onnx.load(str(out / "encoder.onnx"))
    sizes = {t: 0 for t in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)}
    for init in model.graph.initializer:
        if init.data_type in sizes:
            sizes[init.data_type] += int(np.prod(init.dims))
    assert sizes[onnx.TensorProto.FLOAT16] > 10 * sizes[onnx.TensorProto.FLOAT]


def test_canvases_that_pad_differently_get_a_graph_each(smoke_weights, tmp_path):
    bundle = load_bundle(str(smoke_weights))
    b = bundle.sketch[bundle.default_model]
    emb = np.random.default_rng(0).normal(size=(3, bundle.embed_dim)).astype(np.float32)
    from sketchdown.retrieval.gallery import make_index

    gallery = GalleryIndex(tmp_path, ["a.jpg", "b.jpg", "c.jpg"], ["a", "b", "c"], ["", "", ""], make_index(emb, "flat"), {})
    export_web(bundle, gallery, tmp_path / "web")
    m = json.loads((tmp_path / "web" / "manifest.json").read_text())
    if len({c % 32 for c in b.canvas_sizes}) > 1:
        assert [e["canvases"] for e in m["encoders"]] == [[c] for c in b.canvas_sizes]
    for e in m["encoders"]:
        c = e["canvases"][0]
        sess = ort.InferenceSession(str(tmp_path / "web" / e["file"]))
        x = torch.rand(1, 3, c, c) * 2 - 1
        want, _ = encoder_runner(b.encoder, b.canvas_index(c))(x, c)
        got = sess.run(None, {"x": x.numpy(), "canvas": np.array([b.canvas_index(c)], np.int64)})[0]
        np.testing.assert_allclose(got, want.numpy(), atol=1e-5)
    k1 = export_key(bundle, gallery)
    gallery.meta["fingerprint"] = "other photos"
    assert export_key(bundle, gallery) != k1
