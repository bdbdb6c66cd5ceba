"""Export trained checkpoints into a shipped weight set: ``weights/<name>/`` with fp16 safetensors and
a manifest (architectures, preprocessing, canvas sizes, sha256 of every file, training provenance).

    python -m training.export --name chairv2 --teacher runs/teacher/best.pt \
        --student student=runs/student/best.pt --student student-nokd=runs/student_nokd/best.pt \
        --selector runs/selector/selector.pt --fusion runs/fusion/fusion.json --out weights/chairv2

``--teacher`` may also be a shipped set (``--teacher weights/default``): its full network and photo
encoder are copied byte for byte, so new students can be exported beside them without the teacher's run.

Metrics are added afterwards by ``training/make_results.py`` from a real evaluation run.

``--base weights/default --selector runs/sel/selector.pt`` swaps only the selector of an existing set:
every other file is copied byte for byte (its stored metric rows stay valid), the selector's rows are
dropped so ``make_results --reuse`` measures them again.

    python -m training.export --base weights/default --selector runs/selector/selector.pt --out weights/default
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from sketchdown.bundles.bundle import load_bundle
from sketchdown.bundles.photo import PhotoSpec
from sketchdown.bundles.weights import load_tensors, read_manifest, save_tensors, write_manifest
from sketchdown.eval.evaluate import uses_selector
from sketchdown.sketch.render import RenderSpec

from .common import git_sha, load_checkpoint


def _selector_component(ck: dict, selector_model: str, lams: tuple[float, ...] | None,
                        default_lam: float | None) -> tuple[dict, dict]:
    """(manifest component, provenance) for a train_selector checkpoint; the tensors are saved by the caller."""
    sc = json.loads(ck["config"])
    canv = json.loads(ck["canvases"])
    shipped = list(lams or sc["lams"])
    comp = {"file": "selector.safetensors", "role": "selector", "model": selector_model,
            "num_canvases": len(canv), "hidden": sc["hidden"], "conditioned": True,
            "lam_power": float(ck.get("lam_power", 1.0)),
            "lams": shipped,
            "default_lam": shipped[len(shipped) // 2] if default_lam is None else default_lam}
    if "costs" in ck:  # a trade-off selector: its logits carry the canvases' compute reward
        comp["costs"] = json.loads(ck["costs"])
    return comp, {"config": sc, "report": json.loads(ck["report"])}


def _replace(tmp: Path, out: Path) -> Path:
    """Move the staged folder ``tmp`` to ``out`` once it loads with the strict loader."""
    load_bundle(tmp)  # the export must load with the strict loader before it replaces anything
    if out.exists():
        old = out.with_name(out.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old)
    else:
        tmp.rename(out)
    return out


def replace_selector(base: Path, selector: str, out: Path, selector_model: str = "student",
                     lams: tuple[float, ...] | None = None, default_lam: float | None = None) -> Path:
    """Copy the weight set ``base`` to ``out`` with the selector checkpoint ``selector`` in place of its
    selector. Metric rows that used the old selector are removed; all others stay (same files)."""
    m = read_manifest(base)
    if selector_model not in m.get("components", {}):
        raise SystemExit(f"{base}: no sketch branch {selector_model!r} for the selector")
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    old = m["components"].get("selector", {}).get("file")
    tmp.mkdir(parents=True)
    for f in m["files"]:
        if f != old:
            shutil.copy2(Path(base) / f, tmp / f)
    if old:
        del m["files"][old]
    ck = load_checkpoint(Path(selector))
    save_tensors(tmp, "selector.safetensors", ck["policy"], m)
    m["components"]["selector"], m["provenance"]["selector"] = _selector_component(ck, selector_model, lams, default_lam)
    m["provenance"]["selector"]["git_sha"] = git_sha()
    for d in m.get("metrics", {}).values():
        d["rows"] = [r for r in d.get("rows", []) if not uses_selector(r["model"])]
    write_manifest(tmp, m)
    return _replace(tmp, out)


def best_val_canvas(history: list[dict], canvases: list[int]) -> int:
    """The canvas a student runs at without the selector: the one with the best validation Acc@1 in the
    record its checkpoint was kept for (the best score), the smaller on ties; the largest when the history
    records no per-canvas accuracy."""
    rec = max(history, key=lambda h: h.get("score", float("-inf")), default={})
    accs = [(rec[f"acc@1@{c}"], -c) for c in canvases if f"acc@1@{c}" in rec]
    return -max(accs)[1] if accs else max(canvases)


def _teacher_state(teacher: str) -> dict:
    """A train_teacher checkpoint, or a shipped set's full network + photo encoder in the same layout
    (``config``/``classes``/``history`` as JSON strings), so a set can be re-exported with new students
    without the teacher's training run at hand."""
    if not Path(teacher).is_dir():
        return load_checkpoint(Path(teacher))
    m = read_manifest(teacher)
    comps, prov = m.get("components", {}), m.get("provenance", {}).get("teacher", {})
    full = [c for c in comps.values() if c.get("role") == "sketch" and c.get("full")]
    if len(full) != 1 or "photo" not in comps or not prov.get("config"):
        raise SystemExit(f"{teacher}: needs one full sketch branch, a photo encoder and provenance.teacher.config")
    # the files themselves are copied (sha256-checked by load_tensors first): same bytes, same sha256, so
    # the two sets' teacher rows and gallery indexes describe one network
    return {"config": json.dumps(prov["config"]), "classes": json.dumps(m.get("classes", [])),
            "history": json.dumps(prov.get("history", [])),
            "photo": load_tensors(teacher, comps["photo"]["file"], m), "sketch": load_tensors(teacher, full[0]["file"], m),
            "copy": {"photo.safetensors": (Path(teacher) / comps["photo"]["file"], m["files"][comps["photo"]["file"]]),
                     "teacher.safetensors": (Path(teacher) / full[0]["file"], m["files"][full[0]["file"]])}}


def _save(tmp: Path, file: str, tensors: dict, manifest: dict, copy: dict) -> None:
    """Write ``file`` from ``tensors``, or copy it byte for byte when ``copy`` names a source (path, sha256)."""
    if file in copy:
        tmp.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(copy[file][0], tmp / file)
        manifest.setdefault("files", {})[file] = copy[file][1]
    else:
        save_tensors(tmp, file, tensors, manifest)


def export(name: str, teacher: str, students: dict[str, str], selector: str | None, out: Path,
           selector_model: str = "student", lams: tuple[float, ...] | None = None, classes: list[str] | None = None,
           default_lam: float | None = None, fusion: str | None = None) -> Path:
    tck = _teacher_state(teacher)
    tcfg = json.loads(tck["config"])
    classes = classes or json.loads(tck.get("classes", "[]"))  # the category heads' classes
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    manifest: dict = {"name": name, "render": vars(RenderSpec()), "classes": classes or [], "components": {}, "files": {},
                      "provenance": {"git_sha": git_sha(), "teacher": {"config": tcfg, "history": json.loads(tck["history"])[-3:]}}}
    enc = {"arch": tcfg["arch"], "embed_dim": tcfg["embed_dim"], "num_canvases": 1}
    _save(tmp, "photo.safetensors", tck["photo"], manifest, tck.get("copy", {}))
    manifest["components"]["photo"] = {"file": "photo.safetensors", "encoder": dict(enc, num_classes=0),
                                       "photo": vars(PhotoSpec("hed", tcfg["photo_size"]))}
    _save(tmp, "teacher.safetensors", tck["sketch"], manifest, tck.get("copy", {}))
    n_cls = len(json.loads(tck["classes"]))
    manifest["components"]["teacher"] = {"file": "teacher.safetensors", "role": "sketch", "full": True,
                                         "encoder": dict(enc, num_classes=n_cls), "canvas_sizes": [tcfg["canvas"]]}
    for sname, path in students.items():
        ck = load_checkpoint(Path(path))
        scfg = json.loads(ck["config"])
        save_tensors(tmp, f"{sname}.safetensors", ck["student"], manifest)
        history = json.loads(ck["history"])
        manifest["components"][sname] = {"file": f"{sname}.safetensors", "role": "sketch", "encoder": json.loads(ck["encoder"]),
                                         "canvas_sizes": list(scfg["canvases"]),
                                         "default_canvas": best_val_canvas(history, scfg["canvases"]),
                                         "kd_weight": scfg["kd_weight"]}
        manifest["provenance"][sname] = {"config": scfg, "history": json.loads(ck["history"])[-3:]}
    if selector:
        ck = load_checkpoint(Path(selector))
        save_tensors(tmp, "selector.safetensors", ck["policy"], manifest)
        manifest["components"]["selector"], manifest["provenance"]["selector"] = _selector_component(
            ck, selector_model, lams, default_lam)
    if fusion:  # fit_fusion's HOG spec (gallery side) and per-branch weights (query side)
        fz = json.loads(Path(fusion).read_text())
        manifest["hog"] = fz["hog"]
        for bname, alpha in fz.get("alpha_category", {}).items():  # category-level galleries' weight
            if bname in manifest["components"]:
                manifest["components"][bname]["hog_alpha_category"] = float(alpha)
        for bname, alpha in fz["alpha"].items():
            if bname in manifest["components"]:
                manifest["components"][bname]["hog_alpha"] = float(alpha)
        manifest["provenance"]["fusion"] = {"val": fz["val"]} | ({"val_category": fz["val_category"]} if "val_category" in fz else {})
    if Path(teacher).is_dir():
        manifest["metrics"] = teacher_rows(read_manifest(teacher), manifest)
    write_manifest(tmp, manifest)
    return _replace(tmp, out)


def teacher_rows(src: dict, new: dict) -> dict:
    """The metric rows of ``src``'s full network that still describe ``new``'s: same set name, same teacher and
    photo files (sha256), same HOG spec and teacher HOG weights, same rendering. A student swap then re-measures
    only the students' rows (``make_results --reuse``), not the teacher's, which are the slowest."""
    def teacher_view(m: dict) -> tuple:
        t, ph = m["components"]["teacher"], m["components"]["photo"]
        return (m["name"], m["files"].get(t["file"]), m["files"].get(ph["file"]), json.dumps(m.get("hog"), sort_keys=True),
                t.get("hog_alpha"), t.get("hog_alpha_category"), json.dumps(m.get("render"), sort_keys=True),
                json.dumps(t["encoder"], sort_keys=True), t["canvas_sizes"])
    if "teacher" not in src.get("components", {}) or teacher_view(src) != teacher_view(new):
        return {}
    prefix = f"{new['name']}/teacher@"
    kept = {d: {"rows": [r for r in v.get("rows", []) if r["model"].startswith(prefix)]} for d, v in src.get("metrics", {}).items()}
    return {d: v for d, v in kept.items() if v["rows"]}


def lam_within(cv: dict, lams: tuple[float, ...], tol: float) -> float:
    """The largest of ``lams`` whose held-out Acc@1 (train_selector's ``cv.json``, complete sketches) is within
    ``tol`` points of the smallest one's (lambda_F = 0): the rule that picks a set's default lambda_F before test is looked at.
    Where the CV also held out doodles (``--doodle-variants``), their Acc@5 must stay within ``tol`` too
    (session 7 applied this by hand to ``weights/default``)."""
    key = str(float(min(lams)))
    checks = [(cv["held_out"], "acc1_full")]
    if "held_out_doodles" in cv:
        checks.append((cv["held_out_doodles"], "acc5_full"))
    ok = [lam for lam in lams
          if all(held[str(float(lam))][m] >= held[key][m] - tol for held, m in checks)]
    return max(ok)


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", default=None, help="an existing weight set: swap in --selector, keep everything else")
    p.add_argument("--name", default=None)
    p.add_argument("--teacher", default=None, help="train_teacher checkpoint, or a weight set (its full network + photo encoder)")
    p.add_argument("--student", action="append", default=[], help="NAME=checkpoint (repeatable)")
    p.add_argument("--selector", default=None)
    p.add_argument("--selector-model", default="student")
    p.add_argument("--lams", default=None, help="comma-separated lambda_F values the app offers")
    p.add_argument("--default-lam", type=float, default=None, help="the app's starting lambda_F (default: the middle one)")
    p.add_argument("--default-lam-tol", type=float, default=None,
                   help="instead: the largest of --lams within this many held-out Acc@1 (and doodle Acc@5, where the CV "
                        "held doodles out) of the smallest (cv.json beside --selector)")
    p.add_argument("--fusion", default=None, help="fit_fusion's fusion.json: fuse HOG into the branches it names")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    students = dict(s.split("=", 1) for s in a.student)
    lams = tuple(float(x) for x in a.lams.split(",")) if a.lams else None
    if a.default_lam_tol is not None:
        if a.default_lam is not None or not a.selector or not lams:
            p.error("--default-lam-tol needs --selector and --lams, and no --default-lam")
        cv_path = Path(a.selector).with_name("cv.json")
        if not cv_path.is_file():
            p.error(f"--default-lam-tol: {cv_path} not found (train the selector with --folds > 1)")
        a.default_lam = lam_within(json.loads(cv_path.read_text()), lams, a.default_lam_tol)
        print(f"default lambda_F {a.default_lam:g} (held-out Acc@1, and doodle Acc@5 where held out, within "
              f"{a.default_lam_tol:g} of lambda_F = {min(lams):g})")
    if a.base:
        if not a.selector or a.teacher or a.student or a.fusion:
            p.error("--base swaps the selector only: give --selector (and no --teacher/--student/--fusion)")
        out = replace_selector(Path(a.base), a.selector, Path(a.out), a.selector_model, lams, a.default_lam)
        print(f"exported {out} (selector replaced)")
        return out
    if not a.name or not a.teacher:
        p.error("--name and --teacher are required (or --base to swap a selector)")
    out = export(a.name, a.teacher, students, a.selector, Path(a.out), a.selector_model, lams, default_lam=a.default_lam,
                 fusion=a.fusion)
    print(f"exported {out}")
    return out


if __name__ == "__main__":
    main()
