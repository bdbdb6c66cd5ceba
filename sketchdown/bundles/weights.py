"""The weights format and its one strict loader.

``weights/<name>/`` holds fp16 ``*.safetensors`` files and ``manifest.json``:
``{"format": "sketchdown/1", "name", "files": {file: sha256}, "components": {...}, "metrics": {...}}``.
Every component records its architecture config and preprocessing, so loading never guesses; the
typed fields and their checks live in :mod:`sketchdown.bundles.manifest`.
:func:`resolve_weights` also accepts ``hf://owner/name[@revision]`` (Hugging Face Hub, through
``huggingface_hub.snapshot_download``; honours ``HF_HUB_OFFLINE``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

FORMAT = "sketchdown/1"
MANIFEST = "manifest.json"

if TYPE_CHECKING:
    from sketchdown.bundles.manifest import Manifest


class WeightsError(RuntimeError):
    """Missing, corrupt or mismatched weights. One-line message."""


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def resolve_weights(ref: str | os.PathLike) -> Path:
    """A local weights folder, or ``hf://owner/name[@revision]`` downloaded (or found in the cache)."""
    s = str(ref)
    if s.startswith("hf://"):
        repo, _, rev = s[5:].partition("@")
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(repo_id=repo, revision=rev or None))
        except Exception as e:  # network off, not cached, no such repo: one clear line
            msg = " ".join(str(e).split())  # hub messages can span lines; WeightsError is one line
            raise WeightsError(f"cannot get {s} from the Hugging Face Hub: {type(e).__name__}: {msg}") from None
    p = Path(s)
    if not (p / MANIFEST).is_file():
        raise WeightsError(f"no {MANIFEST} in {p} (is it a SketchDown weights folder?)")
    return p


def read_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    """The manifest's raw JSON object (format checked). :func:`sketchdown.bundles.manifest.load_manifest`
    parses it into typed fields; this form is for code that only passes it on (make_results' metric rows)."""
    p = Path(folder) / MANIFEST
    try:
        m = json.loads(p.read_text())
    except (OSError, ValueError) as e:  # ValueError: bad JSON, or bytes that are not UTF-8
        raise WeightsError(f"cannot read {p}: {e}") from None
    if not isinstance(m, dict):
        raise WeightsError(f"{p}: not a SketchDown manifest (expected a JSON object)")
    if m.get("format") != FORMAT:
        raise WeightsError(f"{p}: unknown format {m.get('format')!r} (expected {FORMAT})")
    return m


def load_tensors(folder: str | os.PathLike, file: str, files: Mapping[str, str] | None = None) -> dict[str, torch.Tensor]:
    """Load one safetensors file of a weights folder after checking its recorded sha256 (as float32).
    ``files``: the manifest's file -> sha256 table (None: read from ``folder``'s manifest)."""
    folder = Path(folder)
    if files is None:
        from sketchdown.bundles.manifest import load_manifest  # the typed manifest imports this module

        files = load_manifest(folder).files
    expected = files.get(file)
    path = folder / file
    if expected is None:
        raise WeightsError(f"{file} is not listed in {folder / MANIFEST}")
    if not path.is_file():
        raise WeightsError(f"missing weights file {path}")
    got = sha256_file(path)
    if got != expected:
        raise WeightsError(f"{path} is corrupt or was changed: sha256 {got[:12]}... != recorded {expected[:12]}...")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise WeightsError(f"cannot read {path}: {e}") from None
    return {k: v.float() for k, v in tensors.items()}


def save_tensors(folder: str | os.PathLike, file: str, state: dict[str, torch.Tensor], files: dict[str, str]) -> str:
    """Write fp16 safetensors (integer buffers kept as they are) and record its sha256 in ``files``
    (a manifest's file -> sha256 table)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {k: (v.detach().half() if v.is_floating_point() else v.detach()).contiguous() for k, v in state.items()}
    save_file(out, str(folder / file))
    digest = sha256_file(folder / file)
    files[file] = digest
    return digest


def write_manifest(folder: str | os.PathLike, manifest: Manifest | dict[str, Any]) -> None:
    """Write ``folder/manifest.json`` (sorted keys). A dict is checked by parsing it as a :class:`Manifest`
    first, so nothing writes a manifest the loader would refuse."""
    from sketchdown.bundles.manifest import Manifest

    path = Path(folder) / MANIFEST
    if isinstance(manifest, dict):
        manifest = Manifest.from_dict({**manifest, "format": FORMAT}, str(path))
    tmp = path.with_name(MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest.to_dict(), indent=2, sort_keys=True) + "\n")
    tmp.replace(path)  # atomic: a crash never leaves half a manifest
