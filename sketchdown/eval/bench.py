"""``python -m sketchdown bench``: per-query cost (full network vs student vs student + selector, on the
same sketches, in one run) and gallery-scale search (exact vs approximate faiss indexes).

Latency is wall-clock of single-sketch ``Retriever.retrieve`` calls after warm-up, exactly as the app
runs them (selector + render + sketch encoder + search), so FLOPs and milliseconds can be compared
row by row. The FLOP-bound limit of a row is its FLOPs divided by this machine's measured dense
matmul throughput: how fast the row would be if nothing but arithmetic cost time.
"""

from __future__ import annotations

import resource
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import faiss
import numpy as np
import torch

from sketchdown.bundles.bundle import ModelBundle
from sketchdown.retrieval.retriever import Retriever
from sketchdown.retrieval.twostage import TwoStageSearch
from sketchdown.sketch.strokes import Sketch

PAPER_FULL_GFLOPS = 40.18  # Triplet-SN VGG-16 at 256 px (Sain et al., CVPR 2025, Table 1)


@dataclass
class BenchConfig:
    weights: str | None = None
    data_root: str | None = None
    queries: int = 40  # sketches from ChairV2 test (each full and half drawn), else the built-in examples
    repeats: int = 1  # latency samples per sketch and setting
    threads: int = 2
    backends: tuple[str, ...] = ("onnx", "eager")
    scale: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    scale_queries: int = 200
    hnsw_max: int = 100_000  # HNSW builds take ~10 min at 1M on 2 cores: skipped above this
    seed: int = 0
    # the gallery's granularity picks the weight set's HOG weight: "instance" like the ChairV2 benchmark
    # the queries come from, "category" like the app's default gallery
    granularity: str = "instance"


@dataclass
class CostRow:
    setting: str
    backend: str
    model: str
    canvas: str  # a size, or "auto" for the selector
    lam: float | None
    gflops_per_query: float
    params: int
    ms_median: float
    ms_p95: float
    flop_bound_ms: float
    peak_rss_mb: float
    canvas_hist: dict[int, int] = field(default_factory=dict)


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def matmul_gflops(n: int = 1024, reps: int = 5) -> float:
    """Dense fp32 matmul throughput of this machine at the current thread count (the FLOP-bound yardstick)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def query_sketches(data_root: str | None, n: int) -> tuple[list[Sketch], str]:
    """``n`` ChairV2 test sketches, each full and at half its ink; else the built-in examples."""
    from sketchdown.eval.data import DatasetError, load_chairv2

    try:
        d = load_chairv2(data_root, "test")
        idx = np.linspace(0, len(d.sketches) - 1, min(n, len(d.sketches))).round().astype(int)
        full = [d.sketches[i].sketch for i in idx]
        src = f"ChairV2 test, {len(full)} sketches full + half drawn"
    except DatasetError:
        from sketchdown.sketch.examples import EXAMPLES
        from sketchdown.sketch.strokes import from_strokes

        full = [from_strokes(v) for v in EXAMPLES.values()]
        src = f"{len(full)} built-in example sketches, full + half drawn (ChairV2 not found)"
    return full + [s.prefix_ink(0.5) for s in full], src


def settings(bundle: ModelBundle) -> list[tuple[str, str, str | int, float | None]]:
    """(label, model, canvas, lam) rows: the full network, every student canvas, the selector per lambda_F."""
    full = bundle.full
    rows: list[tuple[str, str, str | int, float | None]] = [("full network", full.name, full.default_canvas, None)]
    sel = bundle.selector
    for name, b in bundle.sketch.items():
        if b.is_full:
            continue
        if sel is None or name == sel.model:
            rows += [(f"{name} @{c}", name, c, None) for c in b.canvas_sizes]
    if sel is not None:
        rows += [(f"{sel.model} + selector (lambda_F={lam:g})", sel.model, "auto", lam) for lam in sel.lams]
    return rows


def bench_costs(retr: Retriever, sketches: list[Sketch], repeats: int, peak_gflops: float) -> list[CostRow]:
    retr.warmup()
    out = []
    for label, model, canvas, lam in settings(retr.bundle):
        times, flops, hist = [], [], {}
        res = None
        for s in sketches:
            for _ in range(repeats):
                t0 = time.perf_counter()
                res = retr.retrieve(s, k=10, canvas=canvas, model=model, lam=lam)
                times.append((time.perf_counter() - t0) * 1000)
            flops.append(res.gflops)
            hist[res.canvas] = hist.get(res.canvas, 0) + 1
        g = float(np.mean(flops))
        out.append(CostRow(
            label, retr.backend, model, str(canvas), lam, round(g, 4), int(res.params) if res else 0,
            round(statistics.median(times), 2), round(_pct(times, 95), 2), round(g / peak_gflops * 1000, 3),
            round(peak_rss_mb(), 1), dict(sorted(hist.items())),
        ))
    return out


# ---- gallery scale ---------------------------------------------------------------------------
def synthetic_embeddings(n: int, dim: int, rng: np.random.Generator, n_queries: int) -> tuple[np.ndarray, np.ndarray]:
    """Loosely clustered unit vectors like a real gallery (objects come in kinds, with much variety
    inside a kind: cosine to the kind's centre ~0.55), and queries that lie near a random gallery
    item (a sketch near its photo). Returns (gallery (n, dim), queries (q, dim)), float32."""
    n_centres = max(16, n // 5000)
    centres = rng.standard_normal((n_centres, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = np.empty((n, dim), np.float32)
    for i in range(0, n, 100_000):  # chunks keep the temporaries small at 1M
        m = min(n, i + 100_000) - i
        x[i : i + m] = centres[rng.integers(n_centres, size=m)] + rng.standard_normal((m, dim), dtype=np.float32) * (1.5 / np.sqrt(dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[rng.integers(n, size=n_queries)] + rng.standard_normal((n_queries, dim), dtype=np.float32) * (0.3 / np.sqrt(dim))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return x, q.astype(np.float32)


def synthetic_gallery(n: int, emb_dim: int, hog_dim: int, rng: np.random.Generator, n_queries: int, alpha: float,
                      hog_file: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A fused gallery like the app's: unit embeddings as :func:`synthetic_embeddings` and unit, non-negative
    HOGs of the same kinds (each kind's own mean HOG plus a photo's own variation), written as float16 to
    ``hog_file``; queries near a random photo in both parts (a sketch's HOG differs from its photo's more than
    its embedding does), fused as the Retriever fuses them (HOG part times ``alpha``).
    Returns (embeddings (n, emb_dim) float32, HOG memmap (n, hog_dim) float16, queries (q, emb_dim + hog_dim))."""
    if hog_dim == 0:  # a weight set without HOG fusion: the embeddings alone
        x, q = synthetic_embeddings(n, emb_dim, rng, n_queries)
        return x, np.zeros((n, 0), np.float16), q
    n_centres = max(16, n // 5000)
    ce = _unit(rng.standard_normal((n_centres, emb_dim), dtype=np.float32))
    ch = _unit(np.abs(rng.standard_normal((n_centres, hog_dim), dtype=np.float32)))
    labels = rng.integers(n_centres, size=n)
    x = np.empty((n, emb_dim), np.float32)
    hogs = np.memmap(hog_file, np.float16, "w+", shape=(n, hog_dim))
    for i in range(0, n, 50_000):  # chunks keep the temporaries small at 1M
        sl = slice(i, min(n, i + 50_000))
        m = sl.stop - i
        x[sl] = _unit(ce[labels[sl]] + rng.standard_normal((m, emb_dim), dtype=np.float32) * (1.5 / np.sqrt(emb_dim)))
        hogs[sl] = _unit(ch[labels[sl]] + np.abs(rng.standard_normal((m, hog_dim), dtype=np.float32)) * (1.5 / np.sqrt(hog_dim)))
    hogs.flush()
    t = rng.integers(n, size=n_queries)
    qe = _unit(x[t] + rng.standard_normal((n_queries, emb_dim), dtype=np.float32) * (0.3 / np.sqrt(emb_dim)))
    qh = _unit(np.asarray(hogs[t], np.float32) + np.abs(rng.standard_normal((n_queries, hog_dim), dtype=np.float32))
               * (1.0 / np.sqrt(hog_dim)))
    return x, hogs, np.concatenate([qe, alpha * qh], 1).astype(np.float32)


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def exact_fused(x: np.ndarray, hogs: np.ndarray, q: np.ndarray, k: int = 10, chunk: int = 50_000) -> np.ndarray:
    """Exact top-``k`` ids ``(Q, k)`` of fused scores ``x . q_emb + hogs . q_hog`` over the whole gallery,
    a chunk of rows at a time (the reference the two-stage search is measured against)."""
    e = x.shape[1]
    best_s = np.full((len(q), 0), -np.inf, np.float32)
    best_i = np.zeros((len(q), 0), np.int64)
    for i in range(0, len(x), chunk):
        sl = slice(i, min(len(x), i + chunk))
        s = q[:, :e] @ x[sl].T + q[:, e:] @ np.asarray(hogs[sl], np.float32).T
        cs, ci = np.concatenate([best_s, s], 1), np.concatenate([best_i, np.broadcast_to(np.arange(sl.start, sl.stop), s.shape)], 1)
        top = np.argsort(-cs, axis=1, kind="stable")[:, :k]
        best_s, best_i = np.take_along_axis(cs, top, 1), np.take_along_axis(ci, top, 1)
    return best_i


def _single_query_ms(index, q: np.ndarray, k: int = 10) -> tuple[list[float], np.ndarray]:
    times, ids = [], []
    for i in range(len(q)):
        t0 = time.perf_counter()
        _, found = index.search(q[i : i + 1], k)
        times.append((time.perf_counter() - t0) * 1000)
        ids.append(found[0])
    return times, np.stack(ids)


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean |found ∩ exact| / k over queries (both (Q, k) ids)."""
    k = exact.shape[1]
    return float(np.mean([len(set(f.tolist()) & set(e.tolist())) / k for f, e in zip(found, exact, strict=True)]))


def _tune(ts: TwoStageSearch, kind: str, tune: np.ndarray, exact: np.ndarray) -> str | None:
    """The cheapest first-stage breadth and candidate count with recall@10 >= 0.95 on ``tune`` (set on ``ts``)."""
    breadths = [1] if kind == "flat" else [b for b in (8, 16, 32, 64, 128, 256) if kind != "ivf" or b <= ts.first.nlist]
    for breadth in breadths:
        if kind == "ivf":
            ts.first.nprobe = breadth
        elif kind == "hnsw":
            ts.first.hnsw.efSearch = max(breadth, 64)
        for cand in (64, 128, 256, 512, 1024):
            ts.candidates = cand
            if recall_at_k(ts.search(tune, 10)[1], exact) >= 0.95:
                return {"flat": f"candidates={cand}", "ivf": f"nlist={getattr(ts.first, 'nlist', 0)}, nprobe={breadth}, "
                        f"candidates={cand}", "hnsw": f"M=32, efSearch={max(breadth, 64)}, candidates={cand}"}[kind]
    return None


def bench_scale(cfg: BenchConfig, emb_dim: int, hog_dim: int, alpha: float, say=print) -> list[dict]:
    """Two-stage fused search (:class:`TwoStageSearch`) at each gallery size of ``cfg.scale``: an approximate
    first stage over the embeddings, exact fused rescoring with float16 HOG rows from a file; recall@10
    against exact fused search over every photo."""
    import tempfile

    rows = []
    rng = np.random.default_rng(cfg.seed)
    for n in cfg.scale:
        with tempfile.TemporaryDirectory(prefix="sketchdown-bench-") as tmp:
            x, hogs, q = synthetic_gallery(n, emb_dim, hog_dim, rng, 2 * cfg.scale_queries, alpha, Path(tmp) / "hog.f16")
            tune, test = q[: cfg.scale_queries], q[cfg.scale_queries :]
            say(f"gallery scale: exact fused search over {n:,} x {emb_dim + hog_dim}")
            t0 = time.perf_counter()
            exact = exact_fused(x, hogs, q)
            exact_ms = (time.perf_counter() - t0) * 1000 / len(q)
            # the reference: every photo's fused score, all queries in one batch (its ms is per query)
            rows.append({"n": n, "index": "exact fused (batched)", "build_s": 0.0, "memory_mb": round(x.nbytes / 2**20, 1),
                         "ms_median": round(exact_ms, 3), "ms_p95": None, "recall_at_10": 1.0, "search_param": None,
                         "hog_disk_mb": round(hogs.nbytes / 2**20, 1)})
            for kind in ("ivf", "hnsw"):
                if kind == "hnsw" and n > cfg.hnsw_max:
                    continue
                say(f"gallery scale: two-stage, {kind} over the {emb_dim}-d embeddings of {n:,} photos")
                t0 = time.perf_counter()
                ts = TwoStageSearch.build(x, hogs, kind)
                build_s = time.perf_counter() - t0
                tuned = _tune(ts, kind, tune, exact[: cfg.scale_queries])
                times, ids = _single_query_ms(ts, test)
                rows.append({
                    "n": n, "index": f"two-stage {kind}", "build_s": round(build_s, 2),
                    "memory_mb": round(len(faiss.serialize_index(ts.first)) / 2**20, 1),
                    "ms_median": round(statistics.median(times), 3), "ms_p95": round(_pct(times, 95), 3),
                    "recall_at_10": round(recall_at_k(ids, exact[cfg.scale_queries :]), 4),
                    "search_param": tuned or f"recall@10 < 0.95 at the widest setting (candidates={ts.candidates})",
                    "hog_disk_mb": round(hogs.nbytes / 2**20, 1),
                })
                del ts
            del x, hogs
    return rows


# ---- the whole run ---------------------------------------------------------------------------
def run(cfg: BenchConfig, say=print) -> dict:
    """Both benchmarks; returns the summary dict (the keys external checks read) plus the tables."""
    from sketchdown.bundles.bundle import load_bundle
    from sketchdown.retrieval.gallery import GalleryIndex, make_index

    torch.set_num_threads(cfg.threads)
    faiss.omp_set_num_threads(cfg.threads)
    bundle = load_bundle(cfg.weights)
    sketches, source = query_sketches(cfg.data_root, cfg.queries)
    peak = matmul_gflops()
    # search cost at the app's gallery size: the default gallery's photo count, synthetic vectors
    n_gallery = 331
    rng = np.random.default_rng(cfg.seed)
    emb, _ = synthetic_embeddings(n_gallery, bundle.embed_dim, rng, 1)
    gallery = GalleryIndex(Path("/"), [f"{i}.jpg" for i in range(n_gallery)], [""] * n_gallery, [""] * n_gallery, make_index(emb, "flat"),
                           {"granularity": cfg.granularity})
    costs: list[CostRow] = []
    for backend in cfg.backends:
        say(f"per-query cost: backend {backend}, {len(sketches)} queries x {len(settings(bundle))} settings")
        costs += bench_costs(Retriever(bundle, gallery, backend=backend), sketches, cfg.repeats, peak)
    main = [r for r in costs if r.backend == cfg.backends[0]]
    full = main[0]
    sel = bundle.selector
    student = next(r for r in main if r.canvas == "auto" and r.lam == sel.default_lam) if sel else main[-1]
    hog_dim = bundle.hog.dim if bundle.hog is not None else 0
    alpha = Retriever(bundle, gallery).hog_alpha(bundle.default_model) if hog_dim else 0.0
    scale = bench_scale(cfg, bundle.embed_dim - hog_dim, hog_dim, alpha, say) if cfg.scale else []
    top = max(cfg.scale) if cfg.scale else None
    approx = [r for r in scale if r["n"] == top and r["index"].startswith("two-stage")]
    best = min(approx, key=lambda r: r["ms_median"]) if approx else next((r for r in scale if r["n"] == top), None)
    summary = {
        "weights": bundle.name,
        "backend": cfg.backends[0],
        "threads": cfg.threads,
        "queries": len(sketches),
        "granularity": cfg.granularity,
        "query_source": source,
        "full_model": full.setting,
        "student_setting": student.setting,
        "full_ms_median": full.ms_median,
        "student_ms_median": student.ms_median,
        "speedup": round(full.ms_median / student.ms_median, 2),
        "full_gflops_per_query": full.gflops_per_query,
        "student_gflops_per_query": student.gflops_per_query,
        "flops_reduction_pct": round(100 * (1 - student.gflops_per_query / full.gflops_per_query), 2),
        "flops_reduction_vs_paper_full_pct": round(100 * (1 - student.gflops_per_query / PAPER_FULL_GFLOPS), 2),
        "matmul_gflops_per_s": round(peak, 1),
        "search_1m_ms_median": best["ms_median"] if best and top == 1_000_000 else None,
        "recall_at_10_1m": best["recall_at_10"] if best and top == 1_000_000 else None,
        "search_1m_index": f"{best['index']} ({best['search_param']})" if best and top == 1_000_000 else None,
        "search_hog_alpha": alpha,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "costs": [asdict(r) for r in costs],
        "scale": scale,
    }
    return summary


def to_markdown(s: dict) -> str:
    """The two tables of a run, as GitHub markdown."""
    lines = [
        f"Per-query cost, weights `{s['weights']}`, {s['threads']} threads, {s['query_source']}, "
        f"{s.get('granularity', 'instance')}-level gallery (its HOG weights); "
        f"dense matmul here: {s['matmul_gflops_per_s']} GFLOP/s.",
        "",
        "| setting | backend | GFLOPs/query | params | median ms | p95 ms | FLOP-bound ms | peak RSS MB | canvases |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in s["costs"]:
        hist = ", ".join(f"{c}:{n}" for c, n in r["canvas_hist"].items())
        lines.append(f"| {r['setting']} | {r['backend']} | {r['gflops_per_query']:.4f} | {r['params'] / 1e6:.2f}M | "
                     f"{r['ms_median']:.2f} | {r['ms_p95']:.2f} | {r['flop_bound_ms']:.3f} | {r['peak_rss_mb']:.0f} | {hist} |")
    lines += [
        "",
        f"Student + selector vs full network ({s['backend']}): **{s['speedup']}x** faster "
        f"({s['student_ms_median']} vs {s['full_ms_median']} ms median), **{s['flops_reduction_pct']}%** fewer FLOPs "
        f"({s['student_gflops_per_query']} vs {s['full_gflops_per_query']} GFLOPs), "
        f"{s['flops_reduction_vs_paper_full_pct']}% below the paper's VGG-16 full network ({PAPER_FULL_GFLOPS} GFLOPs).",
    ]
    if s["scale"]:
        lines += ["", f"Gallery scale, fused score (embedding + {s.get('search_hog_alpha')} x HOG; synthetic clustered "
                  f"vectors of the shipped dimensions; single queries, k=10; recall@10 against exact fused search; "
                  f"peak RSS of the whole run {s.get('peak_rss_mb')} MB):", "",
                  "| photos | search | build s | index in memory MB | HOG on disk MB | median ms | p95 ms | recall@10 | setting |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in s["scale"]:
            lines.append(f"| {r['n']:,} | {r['index']} | {r['build_s']} | {r['memory_mb']} | {r.get('hog_disk_mb', '-')} | "
                         f"{r['ms_median']} | {r['ms_p95'] if r['ms_p95'] is not None else '-'} | {r['recall_at_10']} | "
                         f"{r['search_param'] or 'exact'} |")
    return "\n".join(lines) + "\n"
