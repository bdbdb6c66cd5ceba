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
import dataclasses
import json
import shutil
from pathlib import Path

from sketchdown.bundles.build import EncoderConfig
from sketchdown.bundles.bundle import load_bundle
from sketchdown.bundles.manifest import Component, Manifest, PhotoComponent, SelectorComponent, SketchComponent, load_manifest
from sketchdown.bundles.photo import PhotoSpec
from sketchdown.bundles.weights import load_tensors, save_tensors, write_manifest
from sketchdown.eval.evaluate import uses_selector
from sketchdown.sketch.hog import HogSpec
from sketchdown.sketch.render import RenderSpec

from .checkpoints import load_checkpoint
from .configs import recorded_config
from .distill import DistillConfig
from .env import git_sha
from .train_selector import SelectorConfig
from .train_teacher import TeacherConfig


def _selector_component(ck: dict, selector_model: str, lams: tuple[float, ...] | None,
                        default_lam: float | None) -> tuple[SelectorComponent, dict]:
    """(manifest component, provenance) for a train_selector checkpoint; the tensors are saved by the caller."""
    recorded = json.loads(ck["config"])
    sc = recorded_config(SelectorConfig, recorded, "selector checkpoint")
    shipped = tuple(lams or sc.lams)
    # "costs": a trade-off selector's logits carry the canvases' compute reward
    comp = SelectorComponent("selector.safetensors", selector_model, len(json.loads(ck["canvases"])), sc.hidden, shipped,
                             conditioned=True, lam_power=float(ck.get("lam_power", 1.0)),
                             default_lam=shipped[len(shipped) // 2] if default_lam is None else default_lam,
                             costs=tuple(json.loads(ck["costs"])) if "costs" in ck else None)
    return comp, {"config": recorded, "report": json.loads(ck["report"])}


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


def _staging(out: Path) -> Path:
    """An empty ``<out>.tmp`` folder to assemble a set in."""
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def replace_selector(base: Path, selector: str, out: Path, selector_model: str = "student",
                     lams: tuple[float, ...] | None = None, default_lam: float | None = None) -> Path:
    """Copy the weight set ``base`` to ``out`` with the selector checkpoint ``selector`` in place of its
    selector. Metric rows that used the old selector are removed; all others stay (same files)."""
    m = load_manifest(base)
    if selector_model not in m.components:
        raise SystemExit(f"{base}: no sketch branch {selector_model!r} for the selector")
    tmp = _staging(out)
    old = m.selector.file if m.selector is not None else None
    files = {f: sha for f, sha in m.files.items() if f != old}
    for f in files:
        shutil.copy2(Path(base) / f, tmp / f)
    ck = load_checkpoint(Path(selector))
    save_tensors(tmp, "selector.safetensors", ck["policy"], files)
    comp, prov = _selector_component(ck, selector_model, lams, default_lam)
    comps = {k: c for k, c in m.components.items() if not isinstance(c, SelectorComponent)} | {"selector": comp}
    metrics = None if m.metrics is None else {
        d: {**v, "rows": [r for r in v["rows"] if not uses_selector(r["model"])]} for d, v in m.metrics.items()}
    provenance = dict(m.provenance or {}) | {"selector": prov | {"git_sha": git_sha()}}
    write_manifest(tmp, dataclasses.replace(m, files=files, components=comps, metrics=metrics, provenance=provenance))
    return _replace(tmp, out)


def best_val_canvas(history: list[dict], canvases: list[int] | tuple[int, ...]) -> int:
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
    m = load_manifest(teacher)
    prov = m.recorded("teacher")
    full = [c for c in m.sketch.values() if c.full]
    if len(full) != 1 or m.photo is None or "config" not in prov:
        raise SystemExit(f"{teacher}: needs one full sketch branch, a photo encoder and provenance.teacher.config")
    photo, sketch = m.photo.file, full[0].file
    # the files themselves are copied (sha256-checked by load_tensors first): same bytes, same sha256, so
    # the two sets' teacher rows and gallery indexes describe one network
    return {"config": json.dumps(prov["config"]), "classes": json.dumps(list(m.classes or ())),
            "history": json.dumps(prov.get("history", [])),
            "photo": load_tensors(teacher, photo, m.files), "sketch": load_tensors(teacher, sketch, m.files),
            "copy": {"photo.safetensors": (Path(teacher) / photo, m.files[photo]),
                     "teacher.safetensors": (Path(teacher) / sketch, m.files[sketch])}}


def _save(tmp: Path, file: str, tensors: dict, files: dict[str, str], copy: dict) -> None:
    """Write ``file`` from ``tensors``, or copy it byte for byte when ``copy`` names a source (path, sha256)."""
    if file in copy:
        shutil.copyfile(copy[file][0], tmp / file)
        files[file] = copy[file][1]
    else:
        save_tensors(tmp, file, tensors, files)


def _with_fusion(comps: dict[str, Component], fz: dict) -> dict[str, Component]:
    """fit_fusion's per-branch HOG weights (instance-level ``alpha``, category-level ``alpha_category``) set
    on the branches it names."""
    out = dict(comps)
    for key, field in (("alpha_category", "hog_alpha_category"), ("alpha", "hog_alpha")):
        for bname, alpha in fz.get(key, {}).items():
            if bname in out:
                out[bname] = dataclasses.replace(out[bname], **{field: float(alpha)})
    return out


def _teacher_components(tmp: Path, tck: dict, files: dict[str, str]) -> dict[str, Component]:
    """The photo encoder and the full network of a teacher (its files written or copied into ``tmp``)."""
    tcfg = recorded_config(TeacherConfig, json.loads(tck["config"]), "teacher")
    enc = EncoderConfig(tcfg.arch, tcfg.embed_dim, 1, 0)
    _save(tmp, "photo.safetensors", tck["photo"], files, tck.get("copy", {}))
    _save(tmp, "teacher.safetensors", tck["sketch"], files, tck.get("copy", {}))
    return {"photo": PhotoComponent("photo.safetensors", enc, PhotoSpec("hed", tcfg.photo_size)),
            "teacher": SketchComponent("teacher.safetensors", dataclasses.replace(enc, num_classes=len(json.loads(tck["classes"]))),
                                       (tcfg.canvas,), full=True)}


def _student_component(tmp: Path, sname: str, ck: dict, files: dict[str, str]) -> SketchComponent:
    scfg = recorded_config(DistillConfig, json.loads(ck["config"]), sname)
    save_tensors(tmp, f"{sname}.safetensors", ck["student"], files)
    return SketchComponent(f"{sname}.safetensors", EncoderConfig(**json.loads(ck["encoder"])), tuple(scfg.canvases),
                           default_canvas=best_val_canvas(json.loads(ck["history"]), scfg.canvases),
                           kd_weight=float(scfg.kd_weight), kd_loss=scfg.kd_loss if scfg.kd_weight > 0 else None)


def export(name: str, teacher: str, students: dict[str, str], selector: str | None, out: Path,
           selector_model: str = "student", lams: tuple[float, ...] | None = None, classes: list[str] | None = None,
           default_lam: float | None = None, fusion: str | None = None) -> Path:
    """Assemble the weight set ``out`` (staged in ``<out>.tmp``, moved once it loads with the strict loader)."""
    tck = _teacher_state(teacher)
    classes = classes or json.loads(tck.get("classes", "[]"))  # the category heads' classes
    tmp = _staging(out)
    files: dict[str, str] = {}
    prov: dict = {"git_sha": git_sha(), "teacher": {"config": json.loads(tck["config"]), "history": json.loads(tck["history"])[-3:]}}
    comps = _teacher_components(tmp, tck, files)
    for sname, path in students.items():
        ck = load_checkpoint(Path(path))
        comps[sname] = _student_component(tmp, sname, ck, files)
        prov[sname] = {"config": json.loads(ck["config"]), "history": json.loads(ck["history"])[-3:]}
    if selector:
        ck = load_checkpoint(Path(selector))
        save_tensors(tmp, "selector.safetensors", ck["policy"], files)
        comps["selector"], prov["selector"] = _selector_component(ck, selector_model, lams, default_lam)
    hog = None
    if fusion:  # fit_fusion's HOG spec (gallery side) and per-branch weights (query side)
        fz = json.loads(Path(fusion).read_text())
        hog, comps = HogSpec(**fz["hog"]), _with_fusion(comps, fz)
        prov["fusion"] = {"val": fz["val"]} | ({"val_category": fz["val_category"]} if "val_category" in fz else {})
    m = Manifest(files, comps, name=name, classes=tuple(classes or ()), hog=hog, render=RenderSpec(), provenance=prov)
    if Path(teacher).is_dir():
        m = dataclasses.replace(m, metrics=teacher_rows(load_manifest(teacher), m))
    write_manifest(tmp, m)
    return _replace(tmp, out)


def teacher_rows(src: Manifest, new: Manifest) -> dict:
    """The metric rows of ``src``'s full network that still describe ``new``'s: same set name, same teacher and
    photo files (sha256), same HOG spec and teacher HOG weights, same rendering. A student swap then re-measures
    only the students' rows (``make_results --reuse``), not the teacher's, which are the slowest."""
    def teacher_view(m: Manifest) -> tuple:
        t, ph = m.sketch["teacher"], m.photo
        return (m.name, m.files.get(t.file), m.files.get(ph.file), m.hog,
                t.hog_alpha, t.hog_alpha_category, m.render, t.encoder, t.canvas_sizes)
    if "teacher" not in src.sketch or src.photo is None or teacher_view(src) != teacher_view(new):
        return {}
    prefix = f"{new.name}/teacher@"
    kept = {d: {"rows": [r for r in v["rows"] if r["model"].startswith(prefix)]} for d, v in (src.metrics or {}).items()}
    return {d: v for d, v in kept.items() if v["rows"]}


def lam_within(cv: dict, lams: tuple[float, ...], tol: float) -> float:
    """The largest of ``lams`` whose held-out Acc@1 (train_selector's ``cv.json``, complete sketches) is within
    ``tol`` points of the smallest one's (lambda_F = 0): the rule that picks a set's default lambda_F before test is looked at.
    Where the CV also held out doodles (``--doodle-variants``), their Acc@5 must stay within ``tol`` too."""
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
    p.add_argument("--lams", default=None, help="comma-separated lambda_F values the app offers (default: the selector's)")
    p.add_argument("--default-lam", type=float, default=None, help="the app's starting lambda_F (default: the middle one)")
    p.add_argument("--default-lam-tol", type=float, default=None,
                   help="instead: the largest of the lambda_F values within this many held-out Acc@1 (and doodle Acc@5, where the CV "
                        "held doodles out) of the smallest (cv.json beside --selector)")
    p.add_argument("--fusion", default=None, help="fit_fusion's fusion.json: fuse HOG into the branches it names")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    students = dict(s.split("=", 1) for s in a.student)
    lams = tuple(float(x) for x in a.lams.split(",")) if a.lams else None
    if a.default_lam_tol is not None:
        if a.default_lam is not None or not a.selector:
            p.error("--default-lam-tol needs --selector, and no --default-lam")
        # without --lams: the values the selector was trained and reported on
        lams = lams or recorded_config(SelectorConfig, json.loads(load_checkpoint(Path(a.selector))["config"]), a.selector).lams
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
