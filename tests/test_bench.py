"""``python -m sketchdown bench`` end to end in a quick setting (tiny weights, small galleries), and its
gallery-scale helpers against brute-force references."""

from __future__ import annotations

import json

import faiss
import numpy as np
import pytest

from sketchdown.cli import main as cli
from sketchdown.eval.bench import recall_at_k, synthetic_embeddings
from sketchdown.retrieval.accel import onnx_available


def test_synthetic_embeddings_are_unit_and_queries_near_the_gallery():
    x, q = synthetic_embeddings(2000, 32, np.random.default_rng(0), 50)
    assert x.shape == (2000, 32) and q.shape == (50, 32) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    assert (q @ x.T).max(1).min() > 0.8  # each query lies next to some gallery item


def test_recall_at_k():
    exact = np.array([[1, 2, 3], [4, 5, 6]])
    assert recall_at_k(exact, exact) == 1.0
    assert recall_at_k(np.array([[1, 2, 9], [7, 8, 9]]), exact) == pytest.approx((2 / 3 + 0) / 2)


def test_ivf_tuned_recall_matches_brute_force_on_synthetic_data():
    from sketchdown.retrieval.gallery import make_index

    x, q = synthetic_embeddings(5000, 64, np.random.default_rng(1), 100)
    exact = np.argsort(-(q @ x.T), axis=1)[:, :10]
    ivf = make_index(x, "ivf")
    assert isinstance(ivf, faiss.IndexIVFFlat)
    assert recall_at_k(ivf.search(q, 10)[1], exact) >= 0.9


def test_exact_fused_is_brute_force_and_two_stage_finds_it(tmp_path):
    from sketchdown.eval.bench import exact_fused, synthetic_gallery
    from sketchdown.retrieval.twostage import TwoStageSearch

    x, hogs, q = synthetic_gallery(4000, 16, 40, np.random.default_rng(2), 30, 3.0, tmp_path / "h.f16")
    assert hogs.dtype == np.float16 and (np.asarray(hogs) >= 0).all()
    np.testing.assert_allclose(np.linalg.norm(np.asarray(hogs, np.float32), axis=1), 1, atol=2e-3)
    fused = np.concatenate([x, np.asarray(hogs, np.float32)], 1)
    ref = np.argsort(-(q @ fused.T), axis=1, kind="stable")[:, :10]
    got = exact_fused(x, hogs, q, chunk=700)  # several chunks
    assert recall_at_k(got, ref) == 1.0
    assert recall_at_k(TwoStageSearch.build(x, hogs, "flat", 512).search(q, 10)[1], ref) >= 0.95


def test_bench_cli_quick(smoke_weights, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SKETCHDOWN_DATA", str(tmp_path / "no-data"))  # built-in examples as queries
    backends = "onnx,eager" if onnx_available() else "eager"
    code = cli(["bench", "--weights", str(smoke_weights), "--queries", "2", "--backends", backends, "--scale", "1000,3000",
                "--scale-queries", "20", "--hnsw-max", "3000", "--out", str(tmp_path / "b"), "--json"])
    assert code == 0
    s = json.loads(capsys.readouterr().out)
    for key in ("full_ms_median", "student_ms_median", "speedup", "student_gflops_per_query", "flops_reduction_pct"):
        assert isinstance(s[key], (int, float)), key
    assert s["speedup"] == pytest.approx(s["full_ms_median"] / s["student_ms_median"], rel=0.01)
    assert s["search_1m_ms_median"] is None  # no 1M run here
    assert {r["index"] for r in s["scale"]} == {"exact fused (batched)", "two-stage ivf", "two-stage hnsw"}
    assert all(r["recall_at_10"] >= 0.9 for r in s["scale"]) and s["peak_rss_mb"] > 0
    assert {r["backend"] for r in s["costs"]} == set(backends.split(","))
    md = (tmp_path / "b" / "bench.md").read_text()
    assert "| full network |" in md and "Gallery scale" in md
    assert s["granularity"] == "instance" and "instance-level gallery" in md  # ChairV2-like: its HOG weights
    assert json.loads((tmp_path / "b" / "bench.json").read_text())["speedup"] == s["speedup"]
