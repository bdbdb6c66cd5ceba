"""sketchdown/bundles/manifest.py: the typed manifest reads every shipped manifest and writes it back
unchanged, names the file and field of every malformed value, and the loader turns weights that do not
fit the manifest into a WeightsError naming the file."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from sketchdown.bundles.bundle import load_bundle
from sketchdown.bundles.manifest import Manifest, SelectorComponent, SketchComponent, load_manifest
from sketchdown.bundles.weights import WeightsError, write_manifest
from training.configs import DEAD_KEYS, recorded_config
from training.distill import DistillConfig
from training.train_selector import SelectorConfig
from training.train_teacher import TeacherConfig

REPO = Path(__file__).resolve().parent.parent
SHIPPED = ("default", "chairv2", "hed")
SOURCE = "weights/x/manifest.json"


def _raw(name: str) -> dict:
    return json.loads((REPO / "weights" / name / "manifest.json").read_text())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_manifests_round_trip_exactly(name: str) -> None:
    raw = _raw(name)
    back = Manifest.from_dict(copy.deepcopy(raw), f"weights/{name}/manifest.json").to_dict()
    assert back == raw
    # same JSON types too (3.0 stays 3.0, null stays null, absent keys stay absent)
    assert json.dumps(back, sort_keys=True) == json.dumps(raw, sort_keys=True)


def test_shipped_manifest_fields() -> None:
    m = load_manifest(REPO / "weights" / "chairv2")
    assert list(m.sketch) == ["student", "student-nokd", "teacher"]
    t = m.sketch["teacher"]
    # the paper's full network: VGG-16 Triplet-SN at 256 px; the student is distilled from it
    assert isinstance(t, SketchComponent) and t.full is True and t.canvas_sizes == (256,) and t.default_canvas is None
    assert t.encoder.arch == "vgg16" and m.sketch["student"].encoder.arch == "lite0"
    assert m.sketch["student"].hog_alpha == 4.0 and m.sketch["student"].hog_alpha_category is None
    assert m.sketch["student"].kd_loss == "structure" and m.sketch["student-nokd"].kd_weight == 0.0
    sel = m.selector
    assert isinstance(sel, SelectorComponent) and sel.hidden == 64 and sel.start_lam == 0.2 and len(sel.costs) == 4
    assert m.hog is not None and m.hog.cells == (16,) and m.photo is not None and m.photo.photo.size == 256
    assert m.photo.encoder.arch == "vgg16"


# the gallery index of a set is keyed by this id: it must not change with how the manifest is parsed
PHOTO_IDS = {"default": "05e14e2470ff24bb3a6812be8e9f3419ab6f5231254040b1f27c486153e59e13",
             "chairv2": "d78c0c7406198c4b3c4319419d4279a8074ffc108db7892a45ea7344069cf55c"}


@pytest.mark.parametrize("name", sorted(PHOTO_IDS))
def test_shipped_sets_load_with_their_photo_ids(name: str) -> None:
    b = load_bundle(REPO / "weights" / name)
    raw = _raw(name)
    assert b.photo_id == PHOTO_IDS[name]
    assert b.selector is not None and b.selector.default_lam == raw["components"]["selector"]["default_lam"]
    assert {k: v.hog_alpha for k, v in b.sketch.items()} == {
        k: c["hog_alpha"] for k, c in raw["components"].items() if c.get("role") == "sketch"}


def _set(d: dict, path: str | tuple[str, ...], value: object) -> None:
    """Set (or delete, with _DELETE) the value at a dotted path, or a tuple of keys (names with dots)."""
    *keys, last = path.split(".") if isinstance(path, str) else path
    for k in keys:
        d = d[k]
    if value is _DELETE:
        del d[last]
    else:
        d[last] = value


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("components.selector.hidden", "a", "components.selector.hidden: expected int, got 'a'"),
        ("components.selector.hidden", True, "components.selector.hidden: expected int, got True"),
        ("components.selector.lams", [0.0, "x"], "components.selector.lams: expected a list of numbers"),
        ("components.selector.lams", [], "components.selector.lams: expected at least one lambda_F"),
        ("components.student.file", _DELETE, "components.student.file: missing"),
        ("components.student.canvas_sizes", [32, 64.5], "components.student.canvas_sizes: expected a list of ints"),
        ("components.student.hog_alpah", 2.0, "components.student.hog_alpah: unknown field"),
        ("components.student.role", "sketchy", "components.student.role: unknown role 'sketchy'"),
        ("components.teacher.full", "yes", "components.teacher.full: expected true or false, got 'yes'"),
        ("components.photo.encoder.embed_dim", None, "components.photo.encoder.embed_dim: expected int, got None"),
        ("components.photo.photo.edge_threshold", "0.5", "components.photo.photo.edge_threshold: expected a number or null"),
        ("components.photo", [], "components.photo: expected an object, got []"),
        ("hog.cells", [7], "hog: HOG size 128 must be a multiple of cell 7"),
        ("render.margin", "wide", "render.margin: expected number, got 'wide'"),
        (("files", "student.safetensors"), 5, "files.student.safetensors: expected string, got 5"),
        ("classes", "chair", "classes: expected a list of strings, got 'chair'"),
        ("format", "sketchdown/2", "format: unknown format 'sketchdown/2'"),
        ("surprise", 1, "surprise: unknown field"),
    ],
)
def test_malformed_fields_name_the_file_and_field(path: str | tuple[str, ...], value: object, message: str) -> None:
    raw = _raw("default")
    _set(raw, path, value)
    with pytest.raises(WeightsError) as e:
        Manifest.from_dict(raw, SOURCE)
    assert str(e.value).startswith(f"{SOURCE}: {message}")


def test_write_manifest_refuses_what_the_loader_would(tmp_path: Path) -> None:
    raw = _raw("default")
    raw["components"]["selector"]["hidden"] = "64"
    with pytest.raises(WeightsError, match="components.selector.hidden: expected int"):
        write_manifest(tmp_path, raw)
    assert not (tmp_path / "manifest.json").exists()


def _copy_default(tmp_path: Path) -> Path:
    w = tmp_path / "w"
    shutil.copytree(REPO / "weights" / "default", w)
    return w


def _edit(w: Path, path: str, value: object) -> None:
    raw = json.loads((w / "manifest.json").read_text())
    _set(raw, path, value)
    (w / "manifest.json").write_text(json.dumps(raw))


@pytest.mark.parametrize(
    ("path", "value", "file"),
    [
        ("components.student.encoder.embed_dim", 128, "student.safetensors"),  # right keys, wrong shapes
        ("components.student.encoder.num_canvases", 1, "student.safetensors"),  # per-canvas BN keys unexpected
        ("components.photo.encoder.arch", "lite0", "photo.safetensors"),  # another backbone's keys
        ("components.selector.hidden", 32, "selector.safetensors"),
    ],
)
def test_weights_that_do_not_fit_the_manifest_name_the_file(tmp_path: Path, path: str, value: object, file: str) -> None:
    w = _copy_default(tmp_path)
    _edit(w, path, value)
    with pytest.raises(WeightsError) as e:
        load_bundle(w)
    msg = str(e.value)
    assert str(w / file) in msg and "\n" not in msg


def test_a_malformed_manifest_on_disk_names_it(tmp_path: Path) -> None:
    w = _copy_default(tmp_path)
    _edit(w, "components.selector.hidden", "a")
    with pytest.raises(WeightsError, match=r"manifest\.json: components\.selector\.hidden: expected int, got 'a'"):
        load_bundle(w)


def test_recorded_configs_with_removed_options_still_load() -> None:
    """Shipped provenance records options since removed (p_prefix, the selector's policy and lam_feature):
    they are dropped where recorded configs are read; any other unknown option is an error."""
    prov = _raw("default")["provenance"]
    assert "p_prefix" in prov["student"]["config"] and "policy" in prov["selector"]["config"]
    student = recorded_config(DistillConfig, prov["student"]["config"])
    assert student.canvases == (32, 64, 96, 128) and student.kd_weight == 1.0 and student.n_val == 40
    selector = recorded_config(SelectorConfig, prov["selector"]["config"])
    assert selector.lams == (0.0, 0.02, 0.05, 0.1, 0.15, 0.2) and selector.hidden == 64
    assert recorded_config(TeacherConfig, prov["teacher"]["config"]).arch == "lite2"
    assert {"p_prefix", "policy", "lam_feature"} <= DEAD_KEYS
    with pytest.raises(SystemExit, match="unknown options"):
        recorded_config(DistillConfig, prov["student"]["config"] | {"p_prefixx": 0.3})
