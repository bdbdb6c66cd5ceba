"""Evaluate training runs network alone (no HOG, no selector) on the ChairV2 validation split and on
test, per canvas: the teacher and every student run, so a claim about distillation rests on the mean
and spread over seeds rather than on one run. Writes ``seeds.json`` (every run) and ``seeds.md`` (mean
+- standard deviation over seeds per architecture, KD or not, and canvas).

    python -m training.eval_runs --teacher runs/recipe/teacher.pt --out runs/recipe/seeds runs/recipe/students/*/best.pt
    python -m training.eval_runs --smoke --teacher /tmp/r/teacher.pt --out /tmp/r/seeds /tmp/r/students/*/best.pt
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

import torch

from sketchdown.bundles.build import EncoderConfig, build_encoder
from sketchdown.bundles.photo import EdgeCache, PhotoSpec
from sketchdown.eval.data import load_chairv2
from sketchdown.eval.metrics import summary
from sketchdown.sketch.render import RenderSpec

from .checkpoints import load_checkpoint, load_teacher
from .common import Source, encode_photos, evaluate_ranks, load_sources, make_source
from .env import configure_device, pick_device, set_threads


def splits(smoke: bool, data_root: str | None, n_val: int) -> dict[str, Source]:
    """{"val": the validation split carved from train, "test": ChairV2 test} (synthetic ones in smoke mode)."""
    if smoke:
        from .synthetic import synthetic_source

        return {"val": synthetic_source(6, seed=2, name="val"), "test": synthetic_source(6, seed=5, name="test")}
    _, val = load_sources(data_root, False, n_val, EdgeCache())
    return {"val": val, "test": make_source("chairv2-test", load_chairv2(data_root, "test"), EdgeCache())}


@torch.inference_mode()
def evaluate_model(encoder: torch.nn.Module, canvases: tuple[int, ...], photo_emb: dict[str, torch.Tensor],
                   data: dict[str, Source], render: RenderSpec) -> dict[str, dict[str, float]]:
    """{"<split>@<canvas>": {"acc@1", "acc@10"}} for every split and canvas (percent, 2 decimals)."""
    out = {}
    for ci, c in enumerate(canvases):
        for split, src in data.items():
            m = summary(evaluate_ranks(encoder, photo_emb[split], src, c, render, ci, bs=128))
            out[f"{split}@{c}"] = {"acc@1": round(m["acc@1"], 2), "acc@10": round(m["acc@10"], 2)}
    return out


def aggregate(runs: dict[str, dict]) -> dict[str, dict]:
    """Runs named ``<arch>-<kd|nokd>-s<seed>`` grouped over seeds: {group: {"seeds", "<split>@<canvas>": {metric:
    [mean, sd]}}}; other names form a group of their own."""
    groups: dict[str, list[dict]] = {}
    for name, r in runs.items():
        groups.setdefault(re.sub(r"-s\d+$", "", name), []).append(r["metrics"])
    out = {}
    for g, ms in groups.items():
        row: dict = {"seeds": len(ms)}
        for key in ms[0]:
            row[key] = {m: [round(statistics.fmean(x[key][m] for x in ms), 2),
                            round(statistics.stdev(x[key][m] for x in ms), 2) if len(ms) > 1 else 0.0]
                        for m in ("acc@1", "acc@10")}
        out[g] = row
    return out


def kd_gain(teacher: dict, groups: dict[str, dict]) -> dict[str, dict]:
    """What KD buys per architecture, on test at the canvas where the KD group's mean validation Acc@1 is
    highest (chosen on validation, so test is read once): {arch: {"canvas", "teacher", "kd", "nokd"
    ([mean, sd] test Acc@1), "gap_kd", "gap_nokd" (teacher minus the mean), "closed" (the share of the
    no-KD gap that KD closes; None where the no-KD mean already reaches the teacher)}}. Every other group of
    the arch (``<arch>-<variant>``, e.g. another distillation term) is compared with ``<arch>-nokd`` the same
    way, under its own name."""
    t = next(v["acc@1"] for k, v in teacher.items() if k.startswith("test@"))
    out = {}
    for g, row in groups.items():
        arch = next((n[:-5] for n in groups if n.endswith("-nokd") and g != n and g.startswith(n[:-5] + "-")), None)
        if arch is None:
            continue
        nokd = groups[f"{arch}-nokd"]
        vals = [k for k in row if k.startswith("val@") and f"test@{k[4:]}" in nokd]
        if not vals:
            continue
        c = max(vals, key=lambda k: row[k]["acc@1"][0])[4:]
        kd, nk = row[f"test@{c}"]["acc@1"], nokd[f"test@{c}"]["acc@1"]
        gap_kd, gap_nokd = round(t - kd[0], 2), round(t - nk[0], 2)
        closed = round((kd[0] - nk[0]) / gap_nokd, 3) if gap_nokd > 0 else None
        out[arch if g == f"{arch}-kd" else g] = {"canvas": int(c), "teacher": t, "kd": kd, "nokd": nk, "seeds": [row["seeds"], nokd["seeds"]],
                       "gap_kd": gap_kd, "gap_nokd": gap_nokd, "closed": closed}
    return out


def _pm(v: list[float]) -> str:
    """A [mean, sd] pair as "mean ± sd"."""
    return f"{v[0]:.2f} ± {v[1]:.2f}"


def markdown(teacher: dict, groups: dict[str, dict]) -> str:
    lines = ["| model | seeds | canvas | val Acc@1 | val Acc@10 | test Acc@1 | test Acc@10 |", "|---|---|---|---|---|---|---|"]
    for key, v in teacher.items():
        if key.startswith("val@"):
            c = key.split("@")[1]
            t = teacher[f"test@{c}"]
            lines.append(f"| teacher (full network) | 1 | {c} | {v['acc@1']:.2f} | {v['acc@10']:.2f} | {t['acc@1']:.2f} | {t['acc@10']:.2f} |")
    for g, row in groups.items():
        for key, v in row.items():
            if not key.startswith("val@"):
                continue
            c = key.split("@")[1]
            t = row[f"test@{c}"]
            cells = [_pm(v["acc@1"]), _pm(v["acc@10"]), _pm(t["acc@1"]), _pm(t["acc@10"])]
            lines.append(f"| {g} | {row['seeds']} | {c} | " + " | ".join(cells) + " |")
    gains = kd_gain(teacher, groups)
    if gains:
        lines += ["", "What KD buys (test Acc@1 at the canvas best on validation for KD; gap = full network minus student):", "",
                  "| arch | canvas | seeds KD / no KD | full network | KD | no KD | gap KD | gap no KD | no-KD gap closed |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for arch, r in gains.items():
            closed = "-" if r["closed"] is None else f"{100 * r['closed']:.0f}%"
            lines.append(f"| {arch} | {r['canvas']} | {r['seeds'][0]} / {r['seeds'][1]} | {r['teacher']:.2f} | "
                         f"{_pm(r['kd'])} | {_pm(r['nokd'])} | "
                         f"{r['gap_kd']:.2f} | {r['gap_nokd']:.2f} | {closed} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", required=True, help="train_teacher checkpoint (its photo branch embeds the gallery)")
    p.add_argument("--out", required=True)
    p.add_argument("--data-root", default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("--smoke", action="store_true", help="synthetic splits (tests)")
    p.add_argument("runs", nargs="*", help="distill checkpoints (best.pt); a run is named after its folder")
    a = p.parse_args(argv)
    set_threads()
    device = pick_device(a.device)
    configure_device(device)
    render = RenderSpec()
    t_sk, t_ph, tcfg, _ = load_teacher(a.teacher)
    n_val = int(tcfg.get("n_val", 40))
    data = splits(a.smoke, a.data_root or tcfg.get("data_root"), n_val)
    t_ph.to(device).eval()
    pspec = PhotoSpec("hed", tcfg["photo_size"])
    photo_emb = {k: encode_photos(t_ph, s.photo_ink, pspec, render) for k, s in data.items()}
    result: dict = {"teacher": evaluate_model(t_sk.to(device).eval(), (tcfg["canvas"],), photo_emb, data, render), "runs": {}}
    for path in a.runs:
        ck = load_checkpoint(Path(path))
        enc = build_encoder(EncoderConfig(**json.loads(ck["encoder"])), weights=ck["student"]).to(device)
        cfg = json.loads(ck["config"])
        name = Path(path).parent.name
        result["runs"][name] = {"step": int(ck["step"]), "config": {k: cfg[k] for k in ("arch", "kd_weight", "seed", "steps", "lr")},
                                "metrics": evaluate_model(enc, tuple(cfg["canvases"]), photo_emb, data, render)}
        print(name, json.dumps(result["runs"][name]["metrics"]), file=sys.stderr, flush=True)
    result["groups"] = aggregate(result["runs"]) if result["runs"] else {}
    result["kd_gain"] = kd_gain(result["teacher"], result["groups"])
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "seeds.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "seeds.md").write_text(markdown(result["teacher"], result["groups"]))
    print((out / "seeds.md").read_text(), file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
