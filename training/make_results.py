"""Evaluate shipped weight sets and publish the results table: weights/RESULTS.md, the FLOPs-vs-Acc@1
plot (weights/flops_vs_acc.png), and each manifest's ``metrics`` (read by the app's teaching panel).

    python -m training.make_results --weights weights/chairv2 --dataset chairv2 --data-root ../shared/data
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sketchdown.bundle import load_bundle
from sketchdown.data import load_dataset
from sketchdown.evaluate import default_rows, evaluate
from sketchdown.weights import MANIFEST, read_manifest, write_manifest

# published ChairV2 numbers (Acc@1, Acc@10, m@A, m@B, GFLOPs of the sketch branch)
PUBLISHED = [
    ("Triplet-SN VGG-16 (paper's full network)", 45.65, 84.24, None, None, 40.18),
    ("On-the-fly FG-SBIR (Bhunia et al. 2020)", 56.54, 89.61, 85.44, 35.09, None),
]


def fmt(v: object, nd: int = 2) -> str:
    return "-" if v is None else (f"{v:.{nd}f}" if isinstance(v, float) else str(v))


def table(rows: list[dict]) -> str:
    head = "| model | params | GFLOPs / query | Acc@1 | Acc@10 | m@A | m@B | CPU ms / query | canvases used |\n|---|---|---|---|---|---|---|---|---|\n"
    body = ""
    for r in rows:
        hist = ", ".join(f"{c}:{n}" for c, n in r.get("canvas_hist", {}).items())
        body += (f"| {r['model']} | {r['params'] / 1e6:.2f}M | {r['gflops_per_query']:.4f} | {fmt(r['acc@1'])} | {fmt(r['acc@10'])} "
                 f"| {fmt(r['m@A'])} | {fmt(r['m@B'])} | {fmt(r['latency_ms'], 1)} | {hist} |\n")
    for name, a1, a10, ma, mb, g in PUBLISHED:
        body += f"| *{name}, published* | - | {fmt(g)} | {a1:.2f} | {a10:.2f} | {fmt(ma)} | {fmt(mb)} | - | - |\n"
    return head + body


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    series: dict[str, list[tuple[float, float, str]]] = {}
    for r in rows:
        name = r["model"].split("/", 1)[1]
        key = name.split("@")[0] if "@" in name else "student+selector"
        series.setdefault(key, []).append((r["gflops_per_query"], r["acc@1"], name))
    for key, pts in series.items():
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-" if len(pts) > 1 else "s", label=key)
        for x, y, n in pts:
            ax.annotate(n.split("@")[-1] if "@" in n else n.split("lambda_F=")[-1].rstrip(")"), (x, y), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
    ax.axhline(45.65, color="gray", ls="--", lw=0.8)
    ax.text(ax.get_xlim()[0], 45.9, "paper's VGG-16 full network, 40.18 GFLOPs", fontsize=7, color="gray")
    ax.set_xscale("log")
    ax.set_xlabel("sketch-branch GFLOPs per query (log)")
    ax.set_ylabel("Acc@1 (%)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", action="append", required=True)
    p.add_argument("--dataset", default="chairv2")
    p.add_argument("--data-root", default=None)
    p.add_argument("--split", default="test")
    p.add_argument("--prefix-steps", type=int, default=10)
    p.add_argument("--results", default="weights/RESULTS.md")
    a = p.parse_args(argv)
    data = load_dataset(a.dataset, root=a.data_root, split=a.split)
    all_rows: list[dict] = []
    for ref in a.weights:
        b = load_bundle(ref)
        rows = evaluate(b, data, default_rows(b, sweep=True), prefix_steps=a.prefix_steps,
                        progress=lambda s: print(s, file=sys.stderr, flush=True))
        for r in rows:
            print(json.dumps(r), flush=True)
        m = read_manifest(ref)
        m.setdefault("metrics", {})[data.name] = {"rows": rows}
        write_manifest(ref, m)
        all_rows += rows
    out = Path(a.results)
    png = out.with_name("flops_vs_acc.png")
    plot(all_rows, png, f"{data.name}: {len(data.sketches)} sketches vs {len(data.photos)} photos")
    text = (f"# Results on {data.name} ({len(data.sketches)} sketches, {len(data.photos)} photos)\n\n"
            f"Made by `python -m training.make_results {' '.join(argv or sys.argv[1:])}` on a 2-core CPU; "
            "GFLOPs are the sketch branch per query (selector included), counted with FlopCounterMode; "
            "m@A / m@B over 10 ink-prefix fractions; latency = median single-sketch query, selector + render + encoder + search.\n\n"
            + table(all_rows) + f"\n![FLOPs vs Acc@1]({png.name})\n")
    out.write_text(text)
    print(f"wrote {out} and {png} ({MANIFEST} metrics updated)", file=sys.stderr)
    return all_rows


if __name__ == "__main__":
    main()
