"""sketchdown/data.py: the pairs CSV loader on generated files, its errors, the data root, and the
ChairV2 / Sketchy loaders on the research data when it is present next to the repo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from sketchdown.eval.data import (
    DatasetError,
    PairedDataset,
    data_root,
    get_sketch,
    load_chairv2,
    load_dataset,
    load_pairs_csv,
    load_photo_rgb,
    load_sketchy,
)
from sketchdown.sketch.strokes import Sketch

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="needs ../shared/data (research data, not shipped)")


def _drawing(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    im = Image.new("L", (48, 48), 255)
    ImageDraw.Draw(im).line([tuple(int(v) for v in rng.integers(4, 44, 2)) for _ in range(4)], fill=0, width=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)


@pytest.fixture()
def pairs(tmp_path: Path, photo_writer) -> Path:
    for i in range(3):
        _drawing(tmp_path / "sketches" / f"s{i}.png", i)
    photo_writer(tmp_path / "photos" / "p0.jpg", seed=0)
    photo_writer(tmp_path / "photos" / "p1.png", seed=1)
    csv = tmp_path / "mine.csv"
    csv.write_text(
        "sketch,photo,label\n"
        "sketches/s0.png,photos/p0.jpg,chair\n"
        "sketches/s1.png,photos/p0.jpg,chair\n"
        "sketches/s2.png,photos/p1.png,table\n"
    )
    return csv


def test_load_pairs_csv(pairs: Path) -> None:
    d = load_pairs_csv(pairs)
    assert isinstance(d, PairedDataset) and d.name == "mine"
    assert [s.name for s in d.sketches] == ["sketches/s0.png", "sketches/s1.png", "sketches/s2.png"]
    assert [s.photo for s in d.sketches] == [0, 0, 1]
    assert d.photos == [pairs.parent / "photos" / "p0.jpg", pairs.parent / "photos" / "p1.png"]
    assert d.photo_labels == ["chair", "table"] and d.classes == ["chair", "table"]
    sk = get_sketch(d.sketches[2])  # loaded lazily, on use
    assert isinstance(sk, Sketch) and sk.is_raster and sk.raster.shape == (48, 48) and sk.raster.max() == 255
    assert not d.is_vector
    rgb = load_photo_rgb(d.photos[1])
    assert rgb.dtype == np.uint8 and rgb.shape == (72, 96, 3)
    sub = d.subset([1])
    assert [s.name for s in sub.sketches] == ["sketches/s2.png"] and sub.sketches[0].photo == 0
    assert sub.photos == [d.photos[1]] and sub.photo_labels == ["table"]
    same = load_dataset("pairs", pairs=str(pairs))
    assert [s.photo for s in same.sketches] == [0, 0, 1] and same.photos == d.photos


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sketch,image\nsketches/s0.png,photos/p0.jpg\n", "needs a header with 'sketch' and 'photo'"),
        ("", "needs a header"),
        ("sketch,photo\n", "needs a header"),  # a header and no rows
        ("sketch,photo\nsketches/nope.png,photos/p0.jpg\n", "sketch file not found: sketches/nope.png"),
        ("sketch,photo\nsketches/s0.png,photos/nope.jpg\n", "photo file not found: photos/nope.jpg"),
        ("sketch,photo\nsketches/s0.png\n", "sketch file not found|photo file not found"),  # a short row
    ],
)
def test_pairs_csv_errors(pairs: Path, text: str, message: str) -> None:
    bad = pairs.parent / "bad.csv"
    bad.write_text(text)
    with pytest.raises(DatasetError, match=message):
        load_pairs_csv(bad)


def test_dataset_name_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="pairs CSV not found"):
        load_pairs_csv(tmp_path / "none.csv")
    with pytest.raises(DatasetError, match="needs --pairs"):
        load_dataset("pairs")
    with pytest.raises(DatasetError, match="unknown dataset 'imagenet'"):
        load_dataset("imagenet")


def test_data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SKETCHDOWN_DATA", raising=False)
    with pytest.raises(DatasetError, match="data root not found") as e:
        data_root(tmp_path / "nope")
    assert "--data-root" in str(e.value) and "SKETCHDOWN_DATA" in str(e.value)
    assert data_root(tmp_path) == tmp_path
    monkeypatch.setenv("SKETCHDOWN_DATA", str(tmp_path))
    assert data_root() == tmp_path
    with pytest.raises(DatasetError, match="missing"):  # a root without the dataset folders
        load_chairv2(tmp_path)
    with pytest.raises(DatasetError, match="missing list file"):
        load_sketchy(tmp_path)


@needs_data
def test_chairv2_test_split() -> None:
    d = load_chairv2(SHARED_DATA, "test")
    assert (len(d.sketches), len(d.photos)) == (323, 100)
    assert d.is_vector and d.classes == ["chair"]
    assert all(d.photos[s.photo].is_file() for s in d.sketches)
    assert len({s.photo for s in d.sketches}) == 100  # every photo has a sketch
    pts = [s.sketch.num_points for s in d.sketches]
    assert min(pts) >= 1 and 50 < np.mean(pts) < 300
    with pytest.raises(DatasetError, match="train or test"):
        load_chairv2(SHARED_DATA, "val")


@needs_data
def test_sketchy_test_split() -> None:
    d = load_sketchy(SHARED_DATA, "test")
    assert (len(d.sketches), len(d.photos)) == (1157, 200)
    assert len(d.classes) == 10
    assert all(d.photos[s.photo].is_file() for s in d.sketches)
    assert all(s.sketch.path.is_file() for s in d.sketches)  # the lazily loaded sketch files exist too
    for s in d.sketches[:: len(d.sketches) // 3]:  # sketch and photo come from the same class folder
        assert Path(s.name).parent.name == d.photos[s.photo].parent.name
        assert get_sketch(s).is_raster
