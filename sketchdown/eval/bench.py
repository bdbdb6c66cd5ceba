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


def _single_query_ms(index: faiss.Index, q: np.ndarray, k: int = 10) -> tuple[list[float], np.ndarray]:
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


def bench_scale(cfg: BenchConfig, dim: int, say=print) -> list[dict]:
    from sketchdown.retrieval.gallery import make_index

    rows = []
    rng = np.random.default_rng(cfg.seed)
    for n in cfg.scale:
        x, q = synthetic_embeddings(n, dim, rng, 2 * cfg.scale_queries)
        tune, test = q[: cfg.scale_queries], q[cfg.scale_queries :]
        exact_ids = {}
        for kind in ("flat", "ivf", "hnsw"):
            if kind == "hnsw" and n > cfg.hnsw_max:
                continue
            say(f"gallery scale: {kind} over {n:,} x {dim}")
            t0 = time.perf_counter()
            index = make_index(x, kind)
            build_s = time.perf_counter() - t0
            mem_mb = len(faiss.serialize_index(index)) / 2**20
            tuned = None
            if kind == "flat":
                exact_ids = {"tune": index.search(tune, 10)[1], "test": None}
            else:  # smallest search breadth with recall@10 >= 0.95 on the tuning queries
                for breadth in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512):
                    if kind == "ivf":
                        if breadth > index.nlist:
                            break
                        index.nprobe = breadth
                    else:
                        index.hnsw.efSearch = max(10, breadth)
                    if recall_at_k(index.search(tune, 10)[1], exact_ids["tune"]) >= 0.95:
                        tuned = breadth
                        break
            times, ids = _single_query_ms(index, test)
            if kind == "flat":
                exact_ids["test"] = ids
            rec = recall_at_k(ids, exact_ids["test"])
            rows.append({
                "n": n, "index": kind, "build_s": round(build_s, 2), "memory_mb": round(mem_mb, 1),
                "ms_median": round(statistics.median(times), 3), "ms_p95": round(_pct(times, 95), 3),
                "recall_at_10": round(rec, 4),
                "search_param": None if kind == "flat" else {"ivf": f"nlist={index.nlist if kind == 'ivf' else 0}, nprobe={tuned}", "hnsw": f"M=32, efSearch={tuned}"}[kind],
            })
            del index
        del x
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
    scale = bench_scale(cfg, bundle.embed_dim, say) if cfg.scale else []
    top = max(cfg.scale) if cfg.scale else None
    approx = [r for r in scale if r["n"] == top and r["index"] != "flat"]
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
        lines += ["", "Gallery scale (synthetic clustered unit vectors, single queries, k=10):", "",
                  "| photos | index | build s | memory MB | median ms | p95 ms | recall@10 | search setting |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in s["scale"]:
            lines.append(f"| {r['n']:,} | {r['index']} | {r['build_s']} | {r['memory_mb']} | {r['ms_median']} | "
                         f"{r['ms_p95']} | {r['recall_at_10']} | {r['search_param'] or 'exact'} |")
    return "\n".join(lines) + "\n"
