"""The GCompris photo source of the default gallery: rcc parser, credits, and build_gallery end to end.

The Qt resource files are written here by a small independent writer of the documented layout
(breadth-first tree, names table, data table), so the parser is checked against a reference."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training import build_gallery as bg
from training import gcompris as gc

README = """Copyright: Timothee, 2020
License: CC-BY-SA 4.0
Files:
cat.svg
dog.svg

Copyright: Loliloli
License: Public Domain
Source: https://commons.wikimedia.org/wiki/File:Cat.JPG
Files:
cat.webp

Files: dog.webp
License: CC0-1.0
Copyright: Someone Else
"""


def write_rcc(path: Path, files: dict[str, bytes], version: int = 2, compress: tuple[str, ...] = ()) -> None:
    """Files ``{"a/b/c.png": bytes}`` -> a Qt resource file (zlib for the paths in ``compress``)."""
    tree: dict = {}
    for p, data in files.items():
        node = tree
        *dirs, leaf = p.split("/")
        for d in dirs:
            node = node.setdefault(d, {})
        node[leaf] = data
    names, name_off = bytearray(), {}
    blobs, entries = bytearray(), []
    queue = [("", tree, "")]  # breadth first: a directory's children are contiguous
    while queue:
        nm, node, path_ = queue.pop(0)
        if nm not in name_off:
            name_off[nm] = len(names)
            names += struct.pack(">HI", len(nm), 0) + nm.encode("utf-16-be")
        if isinstance(node, dict):
            first = len(entries) + len(queue) + 1
            entries.append(("dir", name_off[nm], len(node), first))
            queue += [(k, v, f"{path_}/{k}") for k, v in sorted(node.items())]
        else:
            payload = node
            flags = 0
            if path_.lstrip("/") in compress:
                payload, flags = struct.pack(">I", len(node)) + zlib.compress(node), 1
            entries.append(("file", name_off[nm], flags, len(blobs)))
            blobs += struct.pack(">I", len(payload)) + payload
    size = 14 if version == 1 else 22
    body = bytearray()
    for kind, noff, a, b in entries:
        if kind == "dir":
            body += struct.pack(">IHII", noff, 2, a, b)
        else:
            body += struct.pack(">IHHHI", noff, a, 0, 0, b)
        body += b"\0" * (size - 14)
    tree_off = 20
    data_off = tree_off + len(body)
    names_off = data_off + len(blobs)
    path.write_bytes(b"qres" + struct.pack(">IIII", version, tree_off, data_off, names_off) + body + blobs + names)


def _photo(w: int, h: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    a = np.full((h, w, 3), (30, 120, 200), np.uint8)
    a[h // 4 : 3 * h // 4, w // 3 : 2 * w // 3] = rng.integers(0, 256, (3 * h // 4 - h // 4, 2 * w // 3 - w // 3, 3))
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")  # the real ones are WebP; any PIL format is read the same way
    return buf.getvalue()


@pytest.mark.parametrize("version", [1, 2, 3])
def test_rcc_roundtrip(tmp_path: Path, version: int) -> None:
    files = {"g/src/a/README": b"hello", "g/src/a/cat.webp": bytes(range(256)) * 3, "g/b/x.txt": b"zz" * 50}
    write_rcc(tmp_path / "r.rcc", files, version, compress=("g/src/a/cat.webp",))
    assert gc.read_rcc(tmp_path / "r.rcc") == {"/" + k: v for k, v in files.items()}


def test_rcc_bad_input(tmp_path: Path) -> None:
    (tmp_path / "x.rcc").write_bytes(b"PK\x03\x04 not a resource")
    with pytest.raises(gc.RccError, match="qres"):
        gc.read_rcc(tmp_path / "x.rcc")
    (tmp_path / "v9.rcc").write_bytes(b"qres" + struct.pack(">IIII", 9, 20, 20, 20))
    with pytest.raises(gc.RccError, match="version 9"):
        gc.read_rcc(tmp_path / "v9.rcc")


def test_parse_credits() -> None:
    c = gc.parse_credits(README)
    assert c["cat.webp"] == gc.Credit("Loliloli", "public-domain", "https://commons.wikimedia.org/wiki/File:Cat.JPG")
    assert c["dog.webp"] == gc.Credit("Someone Else", "CC0-1.0", None)  # any field order, Files on one line
    assert c["cat.svg"].license == "CC-BY-SA-4.0" and c["dog.svg"].author == "Timothee, 2020"


def test_square_crop() -> None:
    im = Image.new("RGB", (400, 200))
    assert gc.square_crop(im, (0.5, 0.5, 1.0)).size == (200, 200)
    box = gc.square_crop(Image.fromarray(np.arange(400)[None].repeat(200, 0).astype(np.uint16)).convert("I"), (0.0, 0.5, 0.5))
    assert box.size == (100, 100) and np.asarray(box)[0, 0] == 0  # pushed back inside the image


def _extra(tmp_path: Path, items: list[dict]) -> Path:
    p = tmp_path / "extra.json"
    p.write_text(json.dumps({"items": items}), "utf-8")
    return p


@pytest.fixture()
def rcc_dir(tmp_path: Path) -> Path:
    d = tmp_path / "usr" / "share" / "gcompris-qt" / "rcc"
    d.mkdir(parents=True)
    res = "gcompris/src/activities/farm/resource/animals"
    write_rcc(d / "farm.rcc", {f"{res}/README": README.encode(), f"{res}/cat.webp": _photo(300, 200, 1),
                               f"{res}/dog.webp": _photo(200, 300, 2), f"{res}/pig.webp": _photo(50, 50, 3)})
    return d


CAT = {"rcc": "farm.rcc", "resource": "/gcompris/src/activities/farm/resource/animals/cat.webp", "id": "gcompris-cat",
       "label": "A kitten", "category": "animals", "subcategory": "mammals/cats"}


def test_build_with_extra(tmp_path: Path, rcc_dir: Path) -> None:
    stamps = tmp_path / "stamps"
    (stamps / "animals").mkdir(parents=True)
    dog = {**CAT, "resource": CAT["resource"].replace("cat", "dog"), "id": "gcompris-dog", "label": "A dog",
           "subcategory": "mammals/dogs", "crop": [0.5, 0.2, 0.5]}
    out = tmp_path / "gallery"
    argv = ["--stamps", str(stamps), "--out", str(out), "--review", str(tmp_path / "none.json"),
            "--extra", str(_extra(tmp_path, [CAT, dog])), "--gcompris", str(rcc_dir), "--no-clipart"]
    assert bg.main(argv) == 0
    meta = json.loads((out / "metadata.json").read_text("utf-8"))
    assert meta["sources"][1] == {"package": gc.PACKAGE, "version": "unknown", "license": "per photo (items)"}
    cat = meta["items"][0]
    assert cat == {"id": "gcompris-cat", "file": "photos/gcompris-cat.jpg", "label": "A kitten", "category": "animals",
                   "subcategory": "mammals/cats", "source_file": "farm.rcc:" + CAT["resource"], "license": "public-domain",
                   "package": gc.PACKAGE, "author": "Loliloli", "url": "https://commons.wikimedia.org/wiki/File:Cat.JPG"}
    assert meta["items"][1]["license"] == "CC0-1.0"
    with Image.open(out / cat["file"]) as im:
        assert im.size == (256, 256) and im.mode == "RGB"
        a = np.asarray(im).astype(int)
    assert abs(a[0, 0] - (30, 120, 200)).max() < 12  # full frame: no white padding to frame the edge map
    assert a[100:156, 100:156].std() > 40  # the textured middle of the 300 x 200 photo is kept, centred
    text = (out / "ATTRIBUTION.md").read_text("utf-8")
    assert "| `gcompris-cat` | A kitten | Loliloli | public-domain | <https://commons.wikimedia.org/wiki/File:Cat.JPG> |" in text
    assert "apt-get download gcompris-qt-data" in text
    first = {p.name: p.read_bytes() for p in sorted((out / "photos").iterdir())}
    assert bg.main(argv) == 0  # deterministic
    assert {p.name: p.read_bytes() for p in sorted((out / "photos").iterdir())} == first
    assert bg.main(argv[:6] + ["--no-extra", "--no-clipart"]) == 0  # the stamps only: the extra photos are removed
    assert list((out / "photos").iterdir()) == []


def test_uncredited_or_missing_is_refused(tmp_path: Path, rcc_dir: Path) -> None:
    pig = {**CAT, "resource": CAT["resource"].replace("cat", "pig"), "id": "gcompris-pig"}
    with pytest.raises(KeyError, match="does not credit pig.webp"):
        gc.collect(rcc_dir, gc.load_extra(_extra(tmp_path, [pig])))
    with pytest.raises(FileNotFoundError, match="missing"):
        gc.collect(rcc_dir, gc.load_extra(_extra(tmp_path, [{**CAT, "rcc": "nope.rcc"}])))
    with pytest.raises(ValueError, match="crop"):
        gc.load_extra(_extra(tmp_path, [{**CAT, "crop": [0.5, 0.5, 2]}]))
    with pytest.raises(ValueError, match="lacks"):
        gc.load_extra(_extra(tmp_path, [{**CAT, "label": ""}]))
    with pytest.raises(SystemExit):  # extra photos asked for, no package: a clear argparse error
        bg.main(["--stamps", str(tmp_path), "--out", str(tmp_path / "g"), "--extra", str(_extra(tmp_path, [CAT])),
                 "--gcompris", str(tmp_path / "absent")])


def test_repo_list_is_valid() -> None:
    photos = gc.load_extra(bg.REPO / "training" / "gallery_extra.json")
    meta = json.loads((bg.REPO / "gallery" / "metadata.json").read_text("utf-8"))
    by_id = {it["id"]: it for it in meta["items"]}
    assert photos and all(by_id[p.id]["package"] == gc.PACKAGE and by_id[p.id]["label"] == p.label for p in photos)
    assert all((bg.REPO / "gallery" / by_id[p.id]["file"]).is_file() for p in photos)
