"""End-to-end tests of training/build_gallery.py on a tiny fake Tux Paint stamps tree."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training import build_gallery as bg

VERSION = "2022.06.04-1"


def _noise_stamp(path: Path, w: int, h: int, seed: int) -> None:
    """A photo-like stamp: noisy texture in a soft-edged ellipse on a transparent ground."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack(
        [120 + 60 * np.sin(xx / 7), 90 + 50 * np.cos(yy / 5), 60 + 0 * xx], -1
    )
    rgb = np.clip(base + rng.normal(0, 25, (h, w, 3)), 0, 255)
    r = ((xx - w / 2) / (w * 0.4)) ** 2 + ((yy - h / 2) / (h * 0.4)) ** 2
    alpha = np.clip((1.15 - r) * 255 / 0.3, 0, 255)
    arr = np.dstack([rgb, alpha]).astype(np.uint8)
    arr[alpha == 0, :3] = rng.integers(
        0, 256, (int((alpha == 0).sum()), 3)
    )  # junk under alpha 0
    Image.fromarray(arr, "RGBA").save(path)


def _flat_stamp(path: Path) -> None:
    """A cartoon-like stamp: three flat colours with a black outline."""
    im = Image.new("RGBA", (100, 80), (0, 0, 0, 0))
    a = np.asarray(im).copy()
    a[10:70, 10:90] = (0, 0, 0, 255)
    a[12:68, 12:88] = (220, 30, 30, 255)
    a[20:40, 20:50] = (255, 255, 255, 255)
    a[50:60, 60:80] = (40, 160, 40, 255)
    Image.fromarray(a, "RGBA").save(path)


@pytest.fixture()
def stamps(tmp_path: Path) -> Path:
    root = tmp_path / "usr" / "share" / "tuxpaint" / "stamps"
    (root / "animals" / "birds").mkdir(parents=True)
    (root / "food" / "fruit" / "cartoon").mkdir(parents=True)
    (root / "vehicles").mkdir(parents=True)
    _noise_stamp(root / "animals" / "birds" / "crow.png", 120, 90, 1)
    (root / "animals" / "birds" / "crow.txt").write_text(
        "A  crow.\nfr.utf8=Une corneille.\nde.utf8=Eine Krähe.\n", "utf-8"
    )
    _noise_stamp(
        root / "animals" / "birds" / "crow_mirror.png", 120, 90, 9
    )  # a variant, not a stamp
    _noise_stamp(root / "food" / "fruit" / "Red_Apple.png", 60, 70, 2)  # no .txt
    _flat_stamp(root / "food" / "fruit" / "plum.png")
    (root / "food" / "fruit" / "plum.txt").write_text("A plum.\n", "utf-8")
    _noise_stamp(
        root / "food" / "fruit" / "cartoon" / "pear.png", 80, 80, 3
    )  # folder rule
    (root / "vehicles" / "car.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', "utf-8"
    )
    (root / "vehicles" / "car.txt").write_text("A car.\n", "utf-8")
    doc = tmp_path / "usr" / "share" / "doc" / bg.PACKAGE
    doc.mkdir(parents=True)
    with gzip.open(doc / "changelog.Debian.gz", "wt", encoding="utf-8") as f:
        f.write(
            f"tuxpaint-stamps ({VERSION}) unstable; urgency=medium\n\n  * New upstream\n"
        )
    return root


def _run(stamps: Path, out: Path, review: Path) -> dict:
    assert (
        bg.main(["--stamps", str(stamps), "--out", str(out), "--review", str(review), "--no-extra", "--no-clipart"])
        == 0
    )
    return json.loads((out / "metadata.json").read_text("utf-8"))


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_end_to_end(stamps: Path, tmp_path: Path) -> None:
    out = tmp_path / "gallery"
    meta = _run(stamps, out, tmp_path / "no_review.json")

    assert meta["sources"] == [{
        "package": bg.PACKAGE,
        "version": VERSION,
        "license": "GPL-2.0",
    }]
    items = meta["items"]
    assert [it["id"] for it in items] == ["animals-crow", "food-red-apple"]
    crow, apple = items
    assert crow == {
        "id": "animals-crow",
        "file": "photos/animals-crow.jpg",
        "label": "A crow",
        "category": "animals",
        "subcategory": "birds",
        "source_file": "animals/birds/crow.png",
        "license": "GPL-2.0",
        "package": bg.PACKAGE,
    }
    assert apple["label"] == "Red Apple"  # no .txt: the stem
    assert apple["subcategory"] == "fruit"
    assert sorted(p.name for p in (out / "photos").iterdir()) == [
        "animals-crow.jpg",
        "food-red-apple.jpg",
    ]
    for it in items:
        with Image.open(out / it["file"]) as im:
            assert im.format == "JPEG" and im.mode == "RGB" and im.size == (256, 256)
            a = np.asarray(im).astype(int)
        for y, x in ((0, 0), (0, 255), (255, 0), (255, 255)):
            assert a[y, x].min() >= 245, (it["id"], y, x, a[y, x])
        assert a[118:138, 118:138].mean() < 200  # the object is in the middle
    text = (out / "ATTRIBUTION.md").read_text("utf-8")
    for needle in (
        bg.PACKAGE,
        VERSION,
        "GNU General Public License",
        "Tux Paint",
        "apt-get download",
    ):
        assert needle in text


def test_deterministic(stamps: Path, tmp_path: Path) -> None:
    _run(stamps, tmp_path / "a", tmp_path / "none.json")
    first = _files(tmp_path / "a")
    _run(stamps, tmp_path / "a", tmp_path / "none.json")
    _run(stamps, tmp_path / "b", tmp_path / "none.json")
    assert _files(tmp_path / "a") == first
    assert _files(tmp_path / "b") == first


def test_review_overrides_rule(stamps: Path, tmp_path: Path) -> None:
    review = tmp_path / "review.json"
    review.write_text(
        json.dumps(
            {
                "include": [
                    {
                        "file": "food/fruit/plum.png",
                        "reason": "a photo of a plum, honest",
                    }
                ],
                "exclude": [
                    {"file": "animals/birds/crow.png", "reason": "actually a drawing"}
                ],
            }
        ),
        "utf-8",
    )
    out = tmp_path / "gallery"
    _run(stamps, out, tmp_path / "none.json")
    assert (out / "photos" / "animals-crow.jpg").is_file()
    meta = _run(stamps, out, review)
    assert [it["id"] for it in meta["items"]] == ["food-plum", "food-red-apple"]
    assert meta["items"][0]["label"] == "A plum"
    assert not (out / "photos" / "animals-crow.jpg").exists()  # stale photo removed


def test_rule_reasons(stamps: Path) -> None:
    found = bg.find_stamps(stamps)
    assert [s.rel for s in found] == [
        "animals/birds/crow.png",
        "food/fruit/Red_Apple.png",
        "food/fruit/cartoon/pear.png",
        "food/fruit/plum.png",
        "vehicles/car.svg",
    ]
    why = {
        d.rel: (d.keep, d.reason.split(":")[0])
        for d in bg.decide(found, bg.Review({}, {}))
    }
    assert why == {
        "animals/birds/crow.png": (True, "photo-like"),
        "food/fruit/Red_Apple.png": (True, "photo-like"),
        "food/fruit/cartoon/pear.png": (False, "folder"),
        "food/fruit/plum.png": (False, "flat colours"),
        "vehicles/car.svg": (False, "svg"),
    }


def test_review_file_validation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"include": [{"file": "a.png"}]}), "utf-8")
    with pytest.raises(ValueError, match="reason"):
        bg.load_review(bad)
    both = {"file": "a.png", "reason": "r"}
    bad.write_text(json.dumps({"include": [both], "exclude": [both]}), "utf-8")
    with pytest.raises(ValueError, match="both"):
        bg.load_review(bad)


def test_ids_and_labels(tmp_path: Path) -> None:
    stamps = [
        bg.Stamp(tmp_path, "animals/mammals/cats/lion.png"),
        bg.Stamp(tmp_path, "animals/mammals/cats/cartoon/lion.png"),
        bg.Stamp(tmp_path, "animals/birds/Crow.png"),
    ]
    assert bg.make_ids(stamps) == {
        "animals/birds/Crow.png": "animals-crow",
        "animals/mammals/cats/cartoon/lion.png": "animals-mammals-cats-cartoon-lion",
        "animals/mammals/cats/lion.png": "animals-mammals-cats-lion",
    }
    assert bg.clean_label("  A  Seville orange.\r") == "A Seville orange"
    assert bg.clean_label("Wait...") == "Wait..."


def _clipart_list(tmp_path: Path, label: str = "A chair (clip art)") -> Path:
    f = tmp_path / "clipart.json"
    f.write_text(json.dumps({"packages": {"ulcc": "1.0.2-3"}, "items": [{
        "package": "ulcc", "file": "usr/share/ulcc/chair.png", "id": "clipart-chair", "label": label,
        "category": "household", "subcategory": None, "kind": "chair", "author": "someone", "license": "CC0-1.0",
    }]}), "utf-8")
    return f


def test_clipart_is_added_with_its_credit(stamps: Path, tmp_path: Path) -> None:
    root = tmp_path / "clipart"
    (root / "ulcc" / "usr" / "share" / "ulcc").mkdir(parents=True)
    _flat_stamp(root / "ulcc" / "usr" / "share" / "ulcc" / "chair.png")
    out = tmp_path / "gallery"
    argv = ["--stamps", str(stamps), "--out", str(out), "--review", str(tmp_path / "none.json"), "--no-extra",
            "--clipart", str(_clipart_list(tmp_path)), "--clipart-root", str(root)]
    assert bg.main(argv) == 0
    meta = json.loads((out / "metadata.json").read_text("utf-8"))
    assert meta["sources"][-1] == {"package": "ulcc", "version": "1.0.2-3", "license": "per image (items)"}
    chair = next(it for it in meta["items"] if it["id"] == "clipart-chair")
    assert chair["medium"] == "clip art" and chair["kind"] == "chair" and chair["license"] == "CC0-1.0"
    assert chair["source_file"] == "usr/share/ulcc/chair.png" and chair["author"] == "someone"
    with Image.open(out / chair["file"]) as im:
        assert im.size == (256, 256) and im.getpixel((0, 0)) == (255, 255, 255)  # drawn on white, with a margin
    text = (out / "ATTRIBUTION.md").read_text("utf-8")
    assert "## Clip art" in text and "| `clipart-chair` | A chair (clip art) | someone | CC0-1.0 |" in text
    with pytest.raises(SystemExit):  # no clip-art folder: a clear argparse error
        bg.main([*argv[:-1], str(tmp_path / "elsewhere")])
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(FileNotFoundError, match="extract ulcc"):  # a package not extracted: said, not skipped
        bg.main([*argv[:-1], str(tmp_path / "elsewhere")])


def test_clipart_list_validation(tmp_path: Path) -> None:
    from training import gallery_clipart

    with pytest.raises(ValueError, match="must end in"):  # a drawing is never passed off as a photograph
        gallery_clipart.load_clipart(_clipart_list(tmp_path, "A chair"))
    versions, arts = gallery_clipart.load_clipart(_clipart_list(tmp_path))
    assert versions == {"ulcc": "1.0.2-3"} and arts[0].kind == "chair"
