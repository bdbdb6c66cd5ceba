"""Shared fixtures for the core-library and web-app tests.

Puts the repo root on ``sys.path`` (so ``sketchdown`` and ``training`` import without installing),
pins torch to the machine's 2 cores, and provides small generated inputs: photos, a hand-built
RGB model bundle (no HED), once per session real tiny weights made by the training smoke runs, and
the web app built over them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

torch.set_num_threads(2)

SHARED_DATA = REPO.parent / "shared" / "data"


def write_photo(path: Path, seed: int, size: tuple[int, int] = (96, 72)) -> Path:
    """A product-photo-like image: one filled, outlined shape on a white background."""
    rng = np.random.default_rng(seed)
    w, h = size
    im = Image.new("RGB", size, (255, 255, 255))
    d = ImageDraw.Draw(im)
    x0, y0 = int(rng.integers(4, w // 3)), int(rng.integers(4, h // 3))
    x1, y1 = int(rng.integers(2 * w // 3, w - 4)), int(rng.integers(2 * h // 3, h - 4))
    fill = tuple(int(v) for v in rng.integers(0, 200, 3))
    if seed % 3 == 0:
        d.ellipse([x0, y0, x1, y1], fill=fill, outline=(0, 0, 0), width=2)
    elif seed % 3 == 1:
        d.rectangle([x0, y0, x1, y1], fill=fill, outline=(0, 0, 0), width=2)
    else:
        d.polygon([(x0, y1), ((x0 + x1) // 2, y0), (x1, y1)], fill=fill, outline=(0, 0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, quality=95)  # quality is ignored by PNG
    return path


@pytest.fixture(scope="session")
def photo_writer() -> Callable[..., Path]:
    return write_photo


@pytest.fixture()
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point SketchDown's per-user cache (indexes, edge maps) at a temporary folder."""
    cache = tmp_path / "sketchdown-cache"
    monkeypatch.setenv("SKETCHDOWN_CACHE", str(cache))
    return cache


@pytest.fixture(scope="session")
def rgb_bundle():
    """A ModelBundle built by hand: RGB photo branch at 64 px, lite0 encoders with a random 32-d
    projection (ImageNet trunks: a random-init trunk maps every photo to nearly the same vector)."""
    from sketchdown.bundles.build import EncoderConfig, build_encoder
    from sketchdown.bundles.bundle import ModelBundle, SketchBranch
    from sketchdown.bundles.photo import PhotoSpec
    from sketchdown.sketch.render import RenderSpec

    torch.manual_seed(0)
    photo = build_encoder(EncoderConfig("lite0", embed_dim=32), weights="imagenet")
    sketch = build_encoder(EncoderConfig("lite0", embed_dim=32), weights="imagenet")
    return ModelBundle(
        name="tiny-rgb",
        photo_encoder=photo,
        photo_spec=PhotoSpec(input="rgb", size=64),
        photo_id="tiny-rgb-photo-v1",
        render=RenderSpec(),
        sketch={"sketch": SketchBranch("sketch", sketch, (64,), 64, is_full=True)},
    )


@pytest.fixture(scope="session")
def smoke_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real (tiny, barely trained) weights: teacher -> distilled student -> HOG fusion -> RL selector -> export.

    Runs the training scripts' ``--smoke`` modes in-process (~30 s on 2 cores). The photo branch
    uses HED edges (PhotoSpec input "hed", 64 px), so indexing runs the HED detector in weights/hed.
    """
    if not (REPO / "weights" / "hed" / "hed.safetensors").is_file():
        pytest.skip("weights/hed is missing (python -m training.convert_hed)")
    from training import distill, export, fit_fusion, train_selector, train_teacher

    d = tmp_path_factory.mktemp("smoke")
    state = torch.random.get_rng_state()
    threads = torch.get_num_threads()
    try:
        train_teacher.main(["--smoke", "--out", str(d / "T")])
        distill.main(["--smoke", "--teacher", str(d / "T" / "best.pt"), "--out", str(d / "S")])
        fit_fusion.main(["--smoke", "--teacher", str(d / "T" / "best.pt"), "--student", f"student={d / 'S' / 'best.pt'}",
                         "--doodle-val", "--out", str(d / "F")])
        train_selector.main(["--smoke", "--student", str(d / "S" / "best.pt"), "--fusion", str(d / "F" / "fusion.json"),
                             "--out", str(d / "SEL")])
        out = export.main(
            [
                "--name",
                "smoke",
                "--teacher",
                str(d / "T" / "best.pt"),
                "--student",
                f"student={d / 'S' / 'best.pt'}",
                "--selector",
                str(d / "SEL" / "selector.pt"),
                "--fusion",
                str(d / "F" / "fusion.json"),
                "--out",
                str(d / "W" / "smoke"),
            ]
        )
    finally:
        torch.random.set_rng_state(state)
        torch.set_num_threads(threads)
    return Path(out)


# ---- the web app ------------------------------------------------------------------------------------
APP_PHOTOS = ["animals-clownfish.jpg", "animals-lionfish.jpg", "animals-mammals-cats-lion.jpg",
              "hobbies-guitar-classical.jpg", "household-kettle.jpg", "food-carrot.jpg"]


@pytest.fixture(scope="session")
def web_app(smoke_weights: Path, tmp_path_factory: pytest.TempPathFactory):
    """The web app over the tiny weights and a 6-photo gallery (``APP_PHOTOS``), built once per test
    session: ``.config`` (AppConfig), ``.model`` (AppModel), ``.handlers`` (Handlers over that model)
    and ``.demo`` (the gr.Blocks). The gallery's index goes to a temporary folder."""
    import shutil
    from types import SimpleNamespace

    from webapp.config import AppConfig
    from webapp.demo import create_demo
    from webapp.handlers import Handlers
    from webapp.model import load_model

    gallery = tmp_path_factory.mktemp("app-gallery")
    for f in APP_PHOTOS:
        shutil.copy(REPO / "gallery" / "photos" / f, gallery / f)
    cfg = AppConfig(weights=str(smoke_weights), gallery=gallery, index_dir=tmp_path_factory.mktemp("app-index"))
    model = load_model(cfg)
    assert model.bundle is not None, model.error
    return SimpleNamespace(config=cfg, model=model, handlers=Handlers(model), demo=create_demo(cfg, model))
