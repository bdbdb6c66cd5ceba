"""Fit the HOG fusion: one HOG spec for the gallery and one weight alpha per sketch branch, chosen on
the ChairV2 validation split (never on test).

The fused score of a sketch against a photo is ``cos(embedding) + alpha * cos(HOG)``. The HOG spec
(pyramid cell sizes and blurs, from ``--specs``) and each branch's alpha are picked on the validation
photos plus ``distractors`` extra training photos,
so the gallery has the test split's size (100) and ranking is not too easy (``--distractors 0`` for
students fine-tuned long on those training photos: they rank them too high, see docs/experiments.md, weights/default v2). Selection score:
``Acc@1 + Acc@10 / 4``, averaged over a branch's canvases. Output: ``fusion.json``, read by
``train_selector --fusion`` and ``export --fusion``.

``--doodle-val`` also fits each branch's alpha for *category-level* galleries (photos of many kinds,
like the default gallery), with the HOG spec chosen above. Such a gallery gets two kinds of query: a
drawing of a kind ("a fish": the doodle validation split, doodles 64..79 of each kind vs the gallery's
training photos, any photo of the kind counts, ``Acc@5 + Acc@10 / 4``) and a drawing of one particular
photo (the ChairV2 validation score above). The HOG helps the second and drowns the first, so
``alpha_category`` maximises the sum of the two scores.

    python -m training.fit_fusion --teacher runs/teacher/best.pt --student student=runs/student/best.pt --out runs/fusion
    python -m training.fit_fusion --smoke --out /tmp/fusion
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from sketchdown.bundles.build import EncoderConfig, build_encoder
from sketchdown.bundles.photo import EdgeCache, PhotoSpec
from sketchdown.eval.data import load_doodles
from sketchdown.eval.metrics import rank_of_true, summary
from sketchdown.sketch.hog import HogSpec, ink_hogs, sketch_hogs
from sketchdown.sketch.render import RenderSpec

from .checkpoints import load_teacher, write_run_info
from .common import distractor_inks, encode_photos, load_sources, make_source, sketch_tensor
from .configs import apply_smoke, parse_config
from .env import seed_all, set_threads
from .runs import load_student
from .synthetic import category_level, synthetic_source


@dataclass
class FusionConfig:
    out: str = "runs/fusion"
    teacher: str = "runs/teacher/best.pt"
    student: list[str] = field(default_factory=list)  # NAME=checkpoint (repeatable)
    data_root: str | None = None
    n_val: int = 40
    distractors: int = 0  # training photos added to the validation gallery (0: the 40 validation photos alone)
    size: int = 128
    # candidate HOG specs, "cells/blurs" separated by spaces (finer pyramids cost index memory:
    # cells 8,16,32 at 128 px would be 10k dims per photo, so it is not offered)
    specs: str = "16/3"
    alphas: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0)
    doodle_val: bool = False  # also fit alpha_category on the doodle validation split
    category_alphas: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
    seed: int = 0
    smoke: bool = False


def score(ranks: np.ndarray, at: int = 1) -> tuple[float, float, float]:
    """(Acc@at + Acc@10 / 4, Acc@at, Acc@10)."""
    m = summary(ranks)
    return m[f"acc@{at}"] + m["acc@10"] / 4, m[f"acc@{at}"], m["acc@10"]


def parse_specs(size: int, text: str) -> dict[str, HogSpec]:
    """``"16/2 16,32/3,4"`` -> {"16/2": HogSpec(size, (16,), (2.0,)), ...}."""
    out = {}
    for item in text.split():
        cells, blurs = item.split("/")
        out[item] = HogSpec(size, tuple(int(c) for c in cells.split(",")), tuple(float(b) for b in blurs.split(",")))
    return out


def fit(cnn_sims: dict[str, list[np.ndarray]], hog_sims: dict[str, np.ndarray], true: np.ndarray,
        alphas: tuple[float, ...], at: int = 1) -> tuple[str, dict[str, float], list[dict]]:
    """Grid search: (spec key, {branch: alpha}, table). ``cnn_sims[branch]`` holds one (N, P) similarity
    per canvas; ``hog_sims[spec]`` the (N, P) HOG similarity; ``true`` (N,) photo or (N, P) mask.
    The spec maximises the summed best score (Acc@``at`` + Acc@10 / 4)."""
    table, best = [], (-1.0, "", {})
    for key, hs in hog_sims.items():
        total, pick = 0.0, {}
        for name, per_canvas in cnn_sims.items():
            row_best = (-1.0, 0.0)
            for a in alphas:
                res = [score(rank_of_true(s + a * hs, true), at) for s in per_canvas]
                sc = float(np.mean([r[0] for r in res]))
                table.append({"spec": key, "branch": name, "alpha": a, "score": round(sc, 2),
                              f"acc@{at}": round(float(np.mean([r[1] for r in res])), 2),
                              "acc@10": round(float(np.mean([r[2] for r in res])), 2)})
                if sc > row_best[0]:
                    row_best = (sc, a)
            total += row_best[0]
            pick[name] = row_best[1]
        if total > best[0]:
            best = (total, key, pick)
    return best[1], best[2], table


Branches = dict[str, tuple[torch.nn.Module, tuple[int, ...]]]  # name -> (sketch encoder, its canvases)


def _branches(cfg: FusionConfig) -> tuple[torch.nn.Module, Branches, PhotoSpec, str | None]:
    """(photo encoder, sketch branches, photo spec, the teacher's recorded data root); random tiny nets in
    smoke mode without checkpoints."""
    if cfg.smoke and cfg.teacher == FusionConfig.teacher:
        photo_enc = build_encoder(EncoderConfig("lite0", 32, 1, 0), weights=None)
        return photo_enc, {"teacher": (build_encoder(EncoderConfig("lite0", 32, 1, 0), weights=None), (64,))}, \
            PhotoSpec("hed", 64), None
    teacher, photo_enc, tcfg, _ = load_teacher(cfg.teacher)
    branches: Branches = {"teacher": (teacher, (tcfg["canvas"],))}
    for spec in cfg.student:
        name, path = spec.split("=", 1)
        enc, canvases, _ = load_student(path)
        branches[name] = (enc, canvases)
    return photo_enc, branches, PhotoSpec("hed", tcfg["photo_size"]), tcfg.get("data_root")


def _category_fit(cfg: FusionConfig, branches: Branches, photo_enc: torch.nn.Module, pspec: PhotoSpec, key: str,
                  spec: HogSpec, instance: tuple[dict, np.ndarray, np.ndarray], render: RenderSpec) -> dict:
    """Category-level galleries (the doodle validation split): the chosen HOG spec, each branch's own alpha,
    picked on the sum of its category-level and instance-level scores. ``instance``: (CNN similarities,
    HOG similarities, truth) of the instance-level split."""
    dv = category_level(synthetic_source(6, seed=4, name="doodles-val")) if cfg.smoke else \
        make_source("doodles-val", load_doodles("val"), EdgeCache())
    dsk = [dv.sketch(i) for i in range(len(dv.data.sketches))]
    dcnn = branch_sims(branches, dsk, encode_photos(photo_enc, dv.photo_ink, pspec, render).numpy(), render)
    dhog = {key: sketch_hogs(dsk, spec, render) @ ink_hogs(dv.photo_ink, spec, render).T}
    _, _, ctable = fit(dcnn, dhog, dv.data.true(), cfg.category_alphas, at=5)
    cnn, hog_sims, truth = instance
    _, _, itable = fit(cnn, {key: hog_sims}, truth, cfg.category_alphas)
    inst = {(r["branch"], r["alpha"]): r for r in itable}
    for r in ctable:
        i = inst[(r["branch"], r["alpha"])]
        r.update(instance_score=i["score"], instance_acc1=i["acc@1"], score_sum=round(r["score"] + i["score"], 2))
    # per branch the best summed score (the first alpha on ties, as fit() keeps)
    calphas = {b: max((r for r in ctable if r["branch"] == b), key=lambda r: r["score_sum"])["alpha"] for b in dcnn}
    cchosen = [r for r in ctable if r["alpha"] in (0.0, calphas.get(r["branch"]))]
    return {"alpha_category": calphas, "val_category": {"sketches": len(dsk), "photos": len(dv.photo_ink), "chosen": cchosen},
            "grid_category": ctable}


@torch.inference_mode()
def main(argv: list[str] | None = None) -> dict:
    cfg = parse_config(FusionConfig, argv, __doc__)
    if cfg.smoke:
        # one alpha > 0: the smoke weights always fuse, so the tests exercise that path
        cfg = apply_smoke(cfg, size=32, specs="8/0 8,16/1,1", alphas=(1.0,), category_alphas=(0.5,), distractors=2)
    set_threads()
    seed_all(cfg.seed)
    render = RenderSpec()
    out = Path(cfg.out)
    write_run_info(out, cfg)
    photo_enc, branches, pspec, root = _branches(cfg)
    if cfg.smoke:
        val, extra = synthetic_source(6, seed=2, name="val"), synthetic_source(4, seed=3).photo_ink
    else:
        train, val = load_sources(cfg.data_root or root, False, cfg.n_val, EdgeCache())
        extra = distractor_inks(train[0], cfg.distractors, np.random.default_rng(cfg.seed))
    photo_enc.eval()
    specs = parse_specs(cfg.size, cfg.specs)
    inks = list(val.photo_ink) + list(extra)
    sketches = [val.sketch(i) for i in range(len(val.data.sketches))]
    cnn = branch_sims(branches, sketches, encode_photos(photo_enc, inks, pspec, render).numpy(), render)
    hog_sims = {k: sketch_hogs(sketches, sp, render) @ ink_hogs(inks, sp, render).T for k, sp in specs.items()}
    key, alphas, table = fit(cnn, hog_sims, val.data.true(), cfg.alphas)
    chosen = [r for r in table if r["spec"] == key and r["alpha"] in (0.0, alphas.get(r["branch"]))]
    result = {"hog": specs[key].to_dict(), "alpha": alphas,
              "val": {"sketches": len(sketches), "photos": len(inks), "chosen": chosen}, "grid": table}
    if cfg.doodle_val:
        result.update(_category_fit(cfg, branches, photo_enc, pspec, key, specs[key], (cnn, hog_sims[key], val.data.true()), render))
    (out / "fusion.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("hog", "alpha", "alpha_category") if k in result} | {"chosen": chosen},
                     indent=1), file=sys.stderr)
    if "val_category" in result:
        print(json.dumps({"chosen_category": result["val_category"]["chosen"]}, indent=1), file=sys.stderr)
    return result


def branch_sims(branches: dict[str, tuple[torch.nn.Module, tuple[int, ...]]], sketches: list, pemb: np.ndarray,
                render: RenderSpec) -> dict[str, list[np.ndarray]]:
    """Per branch, one (N, P) cosine similarity per canvas of ``sketches`` against photo embeddings ``pemb``."""
    cnn: dict[str, list[np.ndarray]] = {}
    for name, (enc, canvases) in branches.items():
        enc.eval()
        cnn[name] = []
        for ci, c in enumerate(canvases):
            e = torch.cat([enc(sketch_tensor(sketches[j : j + 64], c, render), ci) for j in range(0, len(sketches), 64)])
            cnn[name].append(e.numpy() @ pemb.T)
    return cnn


if __name__ == "__main__":
    main()
