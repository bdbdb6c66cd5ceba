"""The RL canvas selector over student seeds: for each seed's weight set (the KD student of that seed, its
own selector and HOG fusion), the selector's row at the set's default lambda_F against the student's best
fixed canvas on the same test sketches, network alone and with the HOG fused; then mean +- sd over seeds.
One student and one selector is one draw: on 323 ChairV2 test sketches a difference under ~3 Acc@1 is
within one standard error, so the claim "the selector saves FLOPs at equal accuracy" is read off the seeds.

Input: per seed, the weight set's folder (its manifest gives the default lambda_F), evaluated here on ChairV2
test (the selector's branch at every canvas and the selector at every shipped lambda_F, with and without the
HOG: ``sketchdown.eval``'s rows), or given the JSON rows that ``python -m sketchdown eval --sweep --json`` printed
for it. Output: a markdown table (``--out``) and, next to it, every seed's comparison and rows as JSON.
``training.recipe``'s ``selector_seeds`` stage trains a selector for every other KD seed and runs this.

    python -m training.selector_seeds --seed runs/r/weights --seed runs/r/selector_seeds/s0/weights --out runs/r/selector_seeds.md
    python -m training.selector_seeds --seed weights/chairv2=eval.json --out /tmp/selector_seeds.md
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from sketchdown.bundles.weights import read_manifest
from sketchdown.eval.rows import RowKey


def evaluate_rows(weights: Path, data_root: str | None) -> dict[str, dict]:
    """The selector's branch at every canvas and the selector at every shipped lambda_F (+HOG rows where the set
    fuses it), on ChairV2 test, by model name (the rows ``sketchdown eval --sweep --json`` prints)."""
    from sketchdown.bundles.bundle import load_bundle
    from sketchdown.eval.data import load_dataset
    from sketchdown.eval.evaluate import default_rows, evaluate

    b = load_bundle(weights)
    if b.selector is None:
        raise SystemExit(f"{weights}: the weight set has no selector")
    rows = [r for r in default_rows(b, sweep=True) if r.model == b.selector.model and not r.cascade]
    return {r["model"]: r for r in evaluate(b, load_dataset("chairv2", root=data_root, split="test"), rows, prefix_steps=0)}


def read_rows(paths: list[Path]) -> dict[str, dict]:
    """``eval --json`` rows (one JSON object a line) by model name; a later file's row wins."""
    rows: dict[str, dict] = {}
    for p in paths:
        for line in p.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                rows[r["model"]] = r
    return rows


def compare(rows: dict[str, dict], set_name: str, branch: str, lam: float, hog: bool) -> dict:
    """The selector at ``lam`` against the branch's best fixed canvas (highest Acc@1; on a tie the cheaper one):
    {"canvas", "fixed" / "selector": {"acc@1", "acc@10", "gflops"}, "delta_acc1", "fewer_flops_pct"}."""
    keys = {RowKey.parse(m): r for m, r in rows.items()}
    fixed = {k.canvas: r for k, r in keys.items()
             if k.weights == set_name and k.model == branch and k.canvas is not None and k.hog == hog}
    if not fixed:
        raise SystemExit(f"no fixed-canvas rows of {set_name}/{branch} (hog {hog}; evaluate with --sweep)")
    canvas = max(fixed, key=lambda c: (fixed[c]["acc@1"], -fixed[c]["gflops_per_query"]))
    best, key = fixed[canvas], RowKey(branch, lam=lam, hog=hog, weights=set_name).label()
    if key not in rows:
        raise SystemExit(f"no row {key!r} (have: {', '.join(sorted(rows))})")
    sel = rows[key]
    pick = lambda r: {"acc@1": r["acc@1"], "acc@10": r["acc@10"], "gflops": r["gflops_per_query"]}  # noqa: E731
    return {"canvas": canvas, "fixed": pick(best), "selector": pick(sel),
            "delta_acc1": round(sel["acc@1"] - best["acc@1"], 2),
            "fewer_flops_pct": round(100 * (1 - sel["gflops_per_query"] / best["gflops_per_query"]), 1)}


def seed_rows(weights: Path, rows: dict[str, dict]) -> dict:
    """One seed: {"weights", "student", "lam", "alone": compare(...), "hog": compare(...) or None, "rows"}."""
    m = read_manifest(weights)
    sel = m["components"].get("selector")
    if sel is None:
        raise SystemExit(f"{weights}: the weight set has no selector")
    branch, lam = sel["model"], float(sel["default_lam"])
    run = m.get("provenance", {}).get(branch, {}).get("config", {})  # the student's training config
    student = f"{Path(str(run.get('out', '?'))).name} (seed {run.get('seed', '?')})"
    hog = any(k.hog and k.model == branch and k.weights == m["name"] and k.canvas is not None
              for k in map(RowKey.parse, rows))  # fixed-canvas +HOG rows, as compare() needs
    return {"weights": str(weights), "student": student, "lam": lam,
            "alone": compare(rows, m["name"], branch, lam, False),
            "hog": compare(rows, m["name"], branch, lam, True) if hog else None, "rows": list(rows.values())}


def _pm(xs: list[float]) -> str:
    return f"{statistics.fmean(xs):.2f} ± {statistics.stdev(xs):.2f}" if len(xs) > 1 else f"{xs[0]:.2f}"


def markdown(seeds: list[dict]) -> str:
    """Per seed and mode (network alone, +HOG): best fixed canvas vs selector; then mean ± sd over seeds."""
    lines = ["| student | mode | lambda_F | best fixed canvas | its Acc@1 / @10 | its GFLOPs | selector Acc@1 / @10 "
             "| selector GFLOPs | Acc@1 change | fewer FLOPs |", "|---|---|---|---|---|---|---|---|---|---|"]
    for s in seeds:
        for mode in ("alone", "hog"):
            c = s[mode]
            if c is None:
                continue
            f, x = c["fixed"], c["selector"]
            lines.append(f"| {s['student']} | {'network alone' if mode == 'alone' else '+HOG'} | {s['lam']:g} | {c['canvas']} px "
                         f"| {f['acc@1']:.2f} / {f['acc@10']:.2f} | {f['gflops']:.4f} | {x['acc@1']:.2f} / {x['acc@10']:.2f} "
                         f"| {x['gflops']:.4f} | {c['delta_acc1']:+.2f} | {c['fewer_flops_pct']:.1f}% |")
    lines += ["", f"Over {len(seeds)} seeds (mean ± sd):", "", "| mode | Acc@1 change vs best fixed canvas | fewer FLOPs |",
              "|---|---|---|"]
    for mode in ("alone", "hog"):
        cs = [s[mode] for s in seeds if s[mode] is not None]
        if cs:
            lines.append(f"| {'network alone' if mode == 'alone' else '+HOG'} | {_pm([c['delta_acc1'] for c in cs])} "
                         f"| {_pm([c['fewer_flops_pct'] for c in cs])}% |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", action="append", required=True,
                   help="WEIGHTS[=EVAL.json[,EVAL2.json]]: one seed's weight set (and its eval --json rows; without them "
                        "it is evaluated here), repeatable")
    p.add_argument("--data-root", default=None, help="folder holding chairv2/ (default $SKETCHDOWN_DATA or ../shared/data)")
    p.add_argument("--out", required=True, help="markdown table; its rows go next to it as .json")
    a = p.parse_args(argv)
    seeds = []
    for item in a.seed:
        w, _, files = item.partition("=")
        rows = read_rows([Path(f) for f in files.split(",")]) if files else evaluate_rows(Path(w), a.data_root)
        seeds.append(seed_rows(Path(w), rows))
    out = Path(a.out)
    out.write_text(markdown(seeds))
    out.with_suffix(".json").write_text(json.dumps(seeds, indent=1) + "\n")
    print(out.read_text())
    return seeds


if __name__ == "__main__":
    main()
