"""Pack training checkpoints into a few fp16 safetensors shards of bounded size, and back.

A training machine may hand back only a few files of limited size (a GPU lease returns at most 8 files
of 16 MiB). ``pack`` writes every tensor of the given checkpoints once (tensors shared between
checkpoints or between branches of one checkpoint, such as a teacher's shared trunk, are stored once,
by content), fp16 where floating point, into shards of at most ``max_bytes``; the first shard's metadata
holds the index: the checkpoints' other entries (configs, histories), the ``result.json`` beside each
checkpoint (a finished run's record, which the recipe reads to skip that run) and where each tensor went.
``unpack`` restores the checkpoints (without optimizer state, which is left out) and those ``result.json``
under a root folder. Round trip: every tensor equals its fp16 rounding.

    python -m training.pack pack --root runs/gpu --out /tmp/artifacts teacher/best.pt students/a/best.pt
    python -m training.pack unpack --src /tmp/artifacts --root runs/gpu

``--sha256`` also writes ``<prefix>.sha256`` (``sha256sum`` format) beside the shards, as a committed pack
has: ``unpack`` checks every shard against it when it is there and refuses a shard that differs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from sketchdown.bundles.weights import sha256_file

from .checkpoints import load_checkpoint, save_checkpoint

INDEX = "index.json"
SKIP = ("opt",)  # optimizer state: large and not needed to evaluate or continue a recipe


def _digest(t: torch.Tensor) -> str:
    t = t.detach().cpu().contiguous().reshape(-1)
    return hashlib.sha1(t.view(torch.uint8).numpy().tobytes() + repr((t.dtype, tuple(t.shape))).encode()).hexdigest()


def _small(t: torch.Tensor) -> torch.Tensor:
    t = t.detach().cpu()
    return (t.half() if t.is_floating_point() else t).contiguous()


def pack(root: Path, checkpoints: list[str], out: Path, max_bytes: int = 15 << 20, prefix: str = "pack",
         sha256: bool = False) -> list[Path]:
    """Write ``checkpoints`` (paths relative to ``root``) into ``out`` (and with ``sha256`` their checksums
    in ``<prefix>.sha256``); returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    index: dict[str, Any] = {"checkpoints": {}, "shards": {}, "results": {}}
    for rel in checkpoints:
        ck = load_checkpoint(root / rel)
        result = (root / rel).parent / "result.json"
        if result.is_file():
            index["results"][rel] = json.loads(result.read_text())
        entry: dict[str, Any] = {"values": {}, "dicts": {}}
        for k, v in ck.items():
            if k in SKIP:
                continue
            if isinstance(v, dict) and v and all(isinstance(t, torch.Tensor) for t in v.values()):
                names = {}
                for name, t in v.items():
                    key = _digest(t)
                    tensors.setdefault(key, _small(t))
                    names[name] = key
                entry["dicts"][k] = names
            elif isinstance(v, (str, int, float, bool)) or v is None:
                entry["values"][k] = v
            else:
                raise TypeError(f"{rel}: cannot pack entry {k!r} of type {type(v).__name__}")
        index["checkpoints"][rel] = entry
    # first-fit decreasing: each tensor goes to the first shard with room, largest tensors first
    shards: list[dict[str, torch.Tensor]] = []
    sizes: list[int] = []
    for key, t in sorted(tensors.items(), key=lambda kv: -kv[1].numel()):
        nbytes = t.numel() * t.element_size()
        if nbytes > max_bytes:
            raise ValueError(f"one tensor ({nbytes} bytes) exceeds the shard size {max_bytes}")
        i = next((i for i, s in enumerate(sizes) if s + nbytes <= max_bytes), len(shards))
        if i == len(shards):
            shards.append({})
            sizes.append(0)
        shards[i][key] = t
        sizes[i] += nbytes
    names = [f"{prefix}-{i:02d}.safetensors" for i in range(len(shards))]
    for name, shard in zip(names, shards, strict=True):
        index["shards"].update({k: name for k in shard})
    for i, (name, shard) in enumerate(zip(names, shards, strict=True)):
        # the index travels inside the first shard (safetensors metadata): no extra file to hand back
        save_file(shard, str(out / name), metadata={INDEX: json.dumps(index)} if i == 0 else None)
    files = [out / n for n in names]
    if sha256:
        sums = out / f"{prefix}.sha256"
        sums.write_text("".join(f"{sha256_file(f)}  {f.name}\n" for f in files))
        files.append(sums)
    return files


def _check_sums(src: Path, prefix: str) -> None:
    """Refuse shards that differ from ``<prefix>.sha256`` (when the pack has one)."""
    sums = src / f"{prefix}.sha256"
    if not sums.is_file():
        return
    for line in sums.read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        if not (src / name).is_file():
            raise FileNotFoundError(f"{src / name}: listed in {sums.name} but missing")
        if sha256_file(src / name) != digest:
            raise ValueError(f"{src / name}: sha256 differs from {sums.name} (corrupt or replaced); not loaded")


def unpack(src: Path, root: Path, prefix: str = "pack") -> list[Path]:
    """Restore the checkpoints packed in ``src`` under ``root`` (float tensors as float32) and the ``result.json``
    packed with them; returns the checkpoints' paths."""
    _check_sums(src, prefix)
    with safe_open(str(src / f"{prefix}-00.safetensors"), "pt") as f:
        index = json.loads((f.metadata() or {})[INDEX])
    shards = {name: load_file(str(src / name)) for name in set(index["shards"].values())}
    written = []
    for rel, entry in index["checkpoints"].items():
        state: dict[str, Any] = dict(entry["values"])
        for k, names in entry["dicts"].items():
            tensors = {n: shards[index["shards"][key]][key] for n, key in names.items()}
            # a tensor packed once for several equal entries (BN's num_batches_tracked) gets a copy per entry:
            # safetensors refuses to save a state whose tensors share memory
            state[k] = {n: t.float() if t.is_floating_point() else t.clone() for n, t in tensors.items()}
        save_checkpoint(root / rel, **state)
        if rel in index.get("results", {}):  # packs made before results travelled have none
            (root / rel).parent.joinpath("result.json").write_text(json.dumps(index["results"][rel], indent=2) + "\n")
        written.append(root / rel)
    return written


def main(argv: list[str] | None = None) -> list[Path]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pack")
    a.add_argument("--root", required=True)
    a.add_argument("--out", required=True)
    a.add_argument("--max-mb", type=float, default=15.0)
    a.add_argument("--prefix", default="pack")
    a.add_argument("--sha256", action="store_true", help="also write <prefix>.sha256, checked by unpack")
    a.add_argument("checkpoints", nargs="+")
    u = sub.add_parser("unpack")
    u.add_argument("--src", required=True)
    u.add_argument("--root", required=True)
    u.add_argument("--prefix", default="pack")
    args = p.parse_args(argv)
    if args.cmd == "pack":
        files = pack(Path(args.root), args.checkpoints, Path(args.out), int(args.max_mb * (1 << 20)), args.prefix,
                     args.sha256)
    else:
        files = unpack(Path(args.src), Path(args.root), args.prefix)
    for f in files:
        print(f)
    return files


if __name__ == "__main__":
    main()
