"""Command line: ``python -m sketchdown {index,search,eval,flops,bench} ...`` (``--json`` for scripts).

Errors a user can cause (bad sketch, unreadable image, corrupt weights, stale index, missing data)
print one line ``error: ...`` and exit with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sketchdown import config
from sketchdown.bundles.weights import WeightsError
from sketchdown.eval.data import DatasetError
from sketchdown.retrieval.gallery import GRANULARITIES, INDEX_TYPES, GalleryError
from sketchdown.sketch.imageio import ImageError
from sketchdown.sketch.strokes import SketchError

USER_ERRORS = (SketchError, ImageError, WeightsError, GalleryError, DatasetError, ValueError, FileNotFoundError)


def _weights_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", default=None, help="weights folder, hf://owner/name[@rev] or imagenet-lite0 (default: weights/default)")


def _progress(enabled: bool):
    """A tqdm bar on stderr, created on the first update (so nothing prints when no indexing happens)."""
    if not enabled:
        return None
    from tqdm import tqdm

    bars: list = []

    def update(i: int, n: int) -> None:
        if not bars:
            bars.append(tqdm(total=n, desc="indexing", unit="photo", file=sys.stderr))
        bars[0].n = i
        bars[0].refresh()
        if i == n:
            bars[0].close()

    return update


def cmd_index(a: argparse.Namespace) -> int:
    from sketchdown.bundles.bundle import load_bundle
    from sketchdown.retrieval.gallery import build_gallery, default_index_dir

    b = load_bundle(a.weights)
    out = Path(a.out) if a.out else default_index_dir(a.photo_dir, b.name)
    from sketchdown.bundles.photo import EdgeCache

    # --cache-edges: reuse/keep HED edge maps in the edge cache (8-bit PNGs; training and eval use it)
    g = build_gallery(b, a.photo_dir, out, kind=a.index_type, progress=_progress(not a.json),
                      edge_cache=EdgeCache() if a.cache_edges else None, granularity=a.granularity)
    info = {"index": str(out), "photos": len(g), "skipped": g.meta["skipped"], "index_type": g.meta["index_type"], "weights": b.name}
    print(json.dumps(info) if a.json else f"indexed {len(g)} photos into {out} ({len(g.meta['skipped'])} skipped)")
    return 0


def cmd_search(a: argparse.Namespace) -> int:
    from sketchdown.bundles.bundle import load_bundle
    from sketchdown.eval.plot import fmt_pct
    from sketchdown.retrieval.retriever import Retriever
    from sketchdown.sketch.strokes import load_sketch

    sketch = load_sketch(a.sketch_file)
    b = load_bundle(a.weights)
    gallery = str(config.gallery_dir(a.gallery))
    r = Retriever.from_folder(b, gallery, a.index, rebuild="never" if a.no_rebuild else "auto", progress=_progress(not a.json),
                              backend=a.backend)
    canvas = a.canvas if a.canvas in ("auto", "cascade", "selector") else int(a.canvas)
    res = r.retrieve(sketch, k=a.k, canvas=canvas, model=a.model, lam=a.lam, fusion=False if a.no_hog else None)
    if a.json:
        print(json.dumps(res.to_json()))
        return 0
    print(f"model {res.model} | canvas {res.canvas}px | {res.gflops:.4f} GFLOPs (full network {res.full_gflops:.3f}, "
          f"saving {fmt_pct(res.saving_pct)}%) | {res.params / 1e6:.2f}M params | {res.latency_ms:.1f} ms")
    if res.cascade:
        print("cascade: " + " -> ".join(f"{c}px lead {m:.3f}" + ("" if t == float("inf") else f" {'>=' if m >= t else '<'} {t:.3f}")
                                        for c, m, t in res.cascade))
    for h in res.hits:
        print(f"{h.rank:3d}  {h.score:+.3f}  {h.path}  {h.label}")
    return 0


def cmd_eval(a: argparse.Namespace) -> int:
    from sketchdown.bundles.bundle import load_bundle
    from sketchdown.eval.data import load_dataset
    from sketchdown.eval.evaluate import default_rows, evaluate
    from sketchdown.eval.rows import RowKey

    data = load_dataset(a.dataset, root=a.data_root, split=a.split, pairs=a.pairs, level=a.level)
    refs = a.weights or shipped_weight_sets() or ["imagenet-lite0"]
    for ref in refs:
        b = load_bundle(ref)
        rows = default_rows(b, sweep=a.sweep)
        if a.model:
            rows = [r for r in rows if r.model == a.model or (a.model.endswith("+selector") and r.uses_selector)
                    or (a.model.endswith("+cascade") and r.cascade)]
            if a.canvas:
                rows = [RowKey(a.model, int(a.canvas), weights=b.name)]
        say = None if a.json else (lambda s: print(s, file=sys.stderr))
        for row in evaluate(b, data, rows, prefix_steps=a.prefix_steps, progress=say):
            if a.json:
                print(json.dumps(row), flush=True)
            else:
                ma = "-" if row["m@A"] is None else f"{row['m@A']:.2f}"
                mb = "-" if row["m@B"] is None else f"{row['m@B']:.2f}"
                print(f"{row['model']:<48} acc@1 {row['acc@1']:6.2f}  acc@5 {row['acc@5']:6.2f}  acc@10 {row['acc@10']:6.2f}  "
                      f"mean rank {row['mean_rank']:6.2f}  m@A {ma:>6}  m@B {mb:>6}  GFLOPs {row['gflops_per_query']:.4f}  "
                      f"params {row['params'] / 1e6:.2f}M  {row['latency_ms']} ms", flush=True)
    return 0


def cmd_bench(a: argparse.Namespace) -> int:
    from sketchdown.eval.bench import BenchConfig, run, to_markdown

    scale = tuple(int(float(x)) for x in a.scale.split(",") if x.strip() and float(x) > 0) if a.scale else ()
    cfg = BenchConfig(
        weights=a.weights, data_root=a.data_root,
        queries=a.queries, repeats=a.repeats, threads=a.threads, backends=tuple(a.backends.split(",")),
        scale=scale, scale_queries=a.scale_queries, hnsw_max=a.hnsw_max, granularity=a.granularity,
    )
    summary = run(cfg, say=lambda m: print(m, file=sys.stderr, flush=True))
    md = to_markdown(summary)
    if a.out:
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "bench.json").write_text(json.dumps(summary, indent=2) + "\n")
        (out / "bench.md").write_text(md)
    print(json.dumps(summary) if a.json else md)
    return 0


def shipped_weight_sets() -> list[str]:
    """Every weight set in the repo's weights/ that has sketch models (not the HED helper weights)."""
    from sketchdown import config
    from sketchdown.bundles.manifest import load_manifest

    out = []
    for d in sorted(config.weights_dir().iterdir()) if config.weights_dir().is_dir() else []:
        if (d / "manifest.json").is_file() and load_manifest(d).photo is not None:
            out.append(str(d))
    return out


def cmd_flops(a: argparse.Namespace) -> int:
    from sketchdown.bundles.bundle import load_bundle

    b = load_bundle(a.weights)
    sizes = [int(s) for s in a.canvas.split(",")] if a.canvas else None
    rows = []
    for name, br in b.sketch.items():
        if a.model and name != a.model:
            continue
        for c in sizes or br.canvas_sizes:
            if len(br.canvas_sizes) > 1 and c not in br.canvas_sizes:
                continue
            rows.append({"model": f"{b.name}/{name}", "canvas": c, "gflops": br.flops(c) / 1e9, "params": br.params()})
    for r in rows:
        print(json.dumps(r) if a.json else f"{r['model']:<36} canvas {r['canvas']:4d}  {r['gflops']:8.4f} GFLOPs  {r['params'] / 1e6:6.2f}M params")
    return 0


def _add_index(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("index", help="build a gallery index from a photo folder")
    s.add_argument("photo_dir")
    s.add_argument("--out", help="index folder (default: per folder and weights)")
    s.add_argument("--index-type", default="auto", choices=list(INDEX_TYPES),
                   help="auto: exact up to 50,000 photos, above: two stages (IVF over the embeddings, then the HOG "
                        "rows of the candidates from a float16 file) when the weights fuse HOG, else IVF")
    s.add_argument("--granularity", default="category", choices=GRANULARITIES,
                   help="photos of many kinds (default) or many photos of one kind (e.g. only chairs): picks the HOG weight")
    s.add_argument("--cache-edges", action="store_true",
                   help="read/write HED edge maps in $SKETCHDOWN_CACHE (default ~/.cache/sketchdown): re-indexing is fast")
    _weights_arg(s)
    s.set_defaults(fn=cmd_index)


def _add_search(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("search", help="rank gallery photos for a sketch file (.json strokes, .ndjson, .npy, image)")
    s.add_argument("sketch_file")
    s.add_argument("--gallery", help="photo folder (default: the shipped gallery/photos)")
    s.add_argument("--index", help="index folder (default: per folder and weights)")
    s.add_argument("--no-rebuild", action="store_true", help="fail instead of rebuilding a missing/stale index")
    s.add_argument("--k", type=int, default=10)
    s.add_argument("--canvas", default="auto", help="auto (the RL selector), cascade (the confidence cascade, where the weights have one) or a size in pixels")
    s.add_argument("--model", default=None, help="sketch branch: student, teacher, ... (default: the selector's)")
    s.add_argument("--lam", type=float, default=None, help="lambda_F for the selector (0 = accuracy .. 1 = FLOPs)")
    s.add_argument("--no-hog", action="store_true", help="rank by the network alone (no HOG fusion)")
    # one query: the ONNX export (~1.5 s per canvas) would cost more than it saves; the app and bench warm up once
    s.add_argument("--backend", default="eager", choices=["eager", "onnx", "auto"], help="inference backend (default eager)")
    _weights_arg(s)
    s.set_defaults(fn=cmd_search)


def _add_eval(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("eval", help="benchmark a weight set on a paired dataset")
    s.add_argument("--dataset", default="chairv2", choices=["chairv2", "sketchy", "pairs", "gallery", "doodles"],
                   help="gallery: pseudo-sketches of the default gallery's held-out photos vs all its photos; "
                   "doodles: held-out Quick, Draw! human doodles vs all its photos, a hit is any photo of that kind "
                   "(needs python -m training.fetch_quickdraw)")
    s.add_argument("--level", type=int, default=2, help="pseudo-sketch abstraction level for --dataset gallery (0..2)")
    s.add_argument("--data-root", default=None, help="folder holding chairv2/ and sketchy10/ (default $SKETCHDOWN_DATA or ../shared/data)")
    s.add_argument("--pairs", help="CSV with sketch,photo columns (for --dataset pairs)")
    s.add_argument("--split", default="test")
    s.add_argument("--weights", action="append", help="repeatable; default: every weight set shipped in weights/ (imagenet-lite0 if none)")
    s.add_argument("--model", default=None, help="evaluate only this sketch branch")
    s.add_argument("--canvas", default=None, help="with --model: only this canvas")
    s.add_argument("--sweep", action="store_true", help="every canvas of every branch (for the FLOPs-vs-accuracy plot)")
    s.add_argument("--prefix-steps", type=int, default=10, help="prefix fractions for m@A/m@B (0: skip)")
    s.set_defaults(fn=cmd_eval)


def _add_flops(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("flops", help="FLOPs and parameters per model and canvas")
    s.add_argument("--model", default=None)
    s.add_argument("--canvas", default=None, help="comma-separated sizes (default: each model's canvases)")
    _weights_arg(s)
    s.set_defaults(fn=cmd_flops)


def _add_bench(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("bench", help="per-query cost (full vs student vs selector) and gallery-scale search")
    s.add_argument("--data-root", default=None, help="ChairV2 sketches for the queries (else the built-in examples)")
    s.add_argument("--queries", type=int, default=40, help="sketches, each run full and half drawn")
    s.add_argument("--repeats", type=int, default=1)
    s.add_argument("--threads", type=int, default=2)
    s.add_argument("--backends", default="onnx,eager", help="comma-separated; the first is the headline")
    s.add_argument("--scale", default="10000,100000,1000000", help="gallery sizes for the faiss part ('' to skip)")
    s.add_argument("--scale-queries", type=int, default=200)
    s.add_argument("--hnsw-max", type=int, default=100_000, help="largest gallery to build HNSW for")
    s.add_argument("--granularity", default="instance", choices=GRANULARITIES,
                   help="the gallery's kind, which picks the HOG weight (instance: like ChairV2; category: like the default gallery)")
    s.add_argument("--out", default=None, help="folder for bench.json and bench.md")
    _weights_arg(s)
    s.set_defaults(fn=cmd_bench)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sketchdown", description="Sketch-based photo retrieval on a FLOP budget.")
    sub = p.add_subparsers(dest="cmd", required=True)
    _add_index(sub)
    _add_search(sub)
    _add_eval(sub)
    _add_flops(sub)
    _add_bench(sub)
    for sp in sub.choices.values():
        sp.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
