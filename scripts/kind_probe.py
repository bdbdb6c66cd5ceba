"""Does a human drawing of a kind put a photo of that kind in the top k of the app's gallery?

Answers it the way the app does (``Retriever`` over the shipped gallery index, the weight set's default
model, selector at its default lambda_F, HOG fused as the weight set ships it) for
  * held-out Quick, Draw! doodles (80..99 of each category; ``training/fetch_quickdraw.py``) of the
    chosen kinds, a hit being any photo of the kind (``gallery/quickdraw_map.json``), and
  * the repo's hand-drawn examples (``examples/<kind>.json``) where one exists.
Prints one JSON object: per kind, hit@k over its doodles and the example's top-k labels.

    python scripts/kind_probe.py                       # fish, cat, guitar at k = 5
    python scripts/kind_probe.py --kinds fish,cat,guitar,car,bird --k 5 --no-hog
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sketchdown.bundles.bundle import load_bundle  # noqa: E402
from sketchdown.eval.data import get_sketch, load_doodles  # noqa: E402
from sketchdown.retrieval.retriever import Retriever  # noqa: E402
from sketchdown.sketch.strokes import load_sketch  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default=str(REPO / "weights" / "default"))
    p.add_argument("--gallery", default=str(REPO / "gallery" / "photos"))
    p.add_argument("--index", default=None, help="the gallery index folder (default: the one per folder and weights)")
    p.add_argument("--kinds", default="fish,cat,guitar")
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--no-hog", action="store_true", help="rank by the network alone")
    a = p.parse_args(argv)
    bundle = load_bundle(a.weights)
    r = Retriever.from_folder(bundle, a.gallery, a.index, rebuild="never")
    kinds = [k.strip() for k in a.kinds.split(",") if k.strip()]
    doodles = load_doodles("heldout", Path(a.gallery).parent)
    assert doodles.positives is not None  # category-level pairs
    # the right photos of each kind, as files (the hits are paths in the gallery index)
    right_files: dict[str, set[str]] = {}
    for it, pos in zip(doodles.sketches, doodles.positives, strict=True):
        right_files.setdefault(it.name.split("/")[0], {str(doodles.photos[i].resolve()) for i in pos})
    unknown = [k for k in kinds if k not in right_files]
    if unknown:
        p.error(f"not in gallery/quickdraw_map.json: {unknown}")
    fusion = False if a.no_hog else None
    out: dict = {"weights": bundle.name, "k": a.k, "hog": not a.no_hog, "kinds": {}}
    total = hits = 0
    for kind in kinds:
        items = [it for it in doodles.sketches if it.name.split("/")[0] == kind]
        n_hit = 0
        for it in items:
            res = r.retrieve(get_sketch(it), k=a.k, fusion=fusion)
            n_hit += any(str(Path(h.path).resolve()) in right_files[kind] for h in res.hits)
        row = {"doodles": len(items), f"hit@{a.k}": round(100 * n_hit / max(1, len(items)), 1)}
        ex = REPO / "examples" / f"{kind}.json"
        if ex.is_file():
            res = r.retrieve(load_sketch(ex), k=a.k, fusion=fusion)
            row["example"] = {"canvas": res.canvas, "top": [h.label for h in res.hits],
                              "hit": any(str(Path(h.path).resolve()) in right_files[kind] for h in res.hits)}
        out["kinds"][kind] = row
        total += len(items)
        hits += n_hit
    out[f"hit@{a.k}"] = round(100 * hits / max(1, total), 1)
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
