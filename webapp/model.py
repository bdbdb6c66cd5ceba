"""The shared, read-only model: weights and the default gallery's index, loaded once per process.

Everything user-specific lives in :class:`webapp.session.Session`; an :class:`AppModel` is only read
by the handlers, so concurrent requests may share it.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sketchdown import config
from sketchdown.bundles.bundle import ModelBundle, SelectorSpec, SketchBranch, load_bundle
from sketchdown.bundles.cascade import CascadeSpec
from sketchdown.eval.data import class_photo_counts
from sketchdown.retrieval.gallery import GalleryError, GalleryIndex, gallery_metadata
from sketchdown.retrieval.retriever import Retriever
from sketchdown.retrieval.webexport import MANIFEST, export_key, export_web
from sketchdown.sketch.imageio import ImageError
from webapp.config import AppConfig
from webapp.replay import Traced, load_traced

log = logging.getLogger("sketchdown.app")

HEAVY_GFLOPS = 5.0  # a full network above this is labelled as on-demand in the model picker


def arch_name(branch: SketchBranch) -> str:
    """A reader's name for a branch's backbone: "VGG-16", "EfficientNet-Lite", "MobileNetV2"/torchvision trunks."""
    kind = type(branch.encoder.backbone).__name__
    return {"VGGFeatures": "VGG-16", "LiteFeatures": "EfficientNet-Lite"}.get(kind, "CNN")


@dataclass
class AppModel:
    """Loaded weights and the default gallery's retriever; ``error`` holds one line per load problem
    (shown as a banner: the app keeps serving without weights or without a default gallery)."""

    weights_ref: str
    gallery_dir: Path
    bundle: ModelBundle | None = None
    retriever: Retriever | None = None  # over the default gallery (gallery None when it failed)
    error: str = ""
    load_seconds: float = 0.0
    class_photos: dict[str, int] | None = None  # recognition class -> default-gallery photos of it (None: all offered)
    traced: list[Traced] = field(default_factory=list)  # traced examples with their target photo (rank-per-stroke view)
    web_dir: Path | None = None  # the in-page export (student, selector, default gallery vectors); None: server only

    def offered_classes(self) -> list[str] | None:
        """The recognition classes the app may name: those the default gallery has photos of."""
        return None if self.class_photos is None else [c for c, n in self.class_photos.items() if n > 0]

    def parse_choice(self, choice: str | None) -> tuple[str, str | None]:
        """Model radio value (None: the default) -> (sketch branch, what picks its canvas: "cascade",
        "selector" or None). ValueError for a branch the weight set lacks."""
        b = self.bundle
        assert b is not None
        choice = choice or self.default_choice or b.default_model
        for policy in ("selector", "cascade"):
            if choice.endswith("+" + policy):
                name = choice[: -len(policy) - 1]
                spec = self.policy(policy)
                return name, policy if spec is not None and spec.model == name else None
        if choice in b.sketch:
            return choice, None
        raise ValueError(f"unknown model {choice!r}; this weight set has {sorted(b.sketch)}")

    def policy(self, policy: str | None) -> CascadeSpec | SelectorSpec | None:
        """The weight set's canvas policy of that name (its ``lams`` and ``default_lam``), None without one."""
        b = self.bundle
        if b is None or policy is None:
            return None
        return b.cascade if policy == "cascade" else b.selector if policy == "selector" else None

    @property
    def choices(self) -> list[tuple[str, str]]:
        """Model radio: (label, value); value "<branch>+cascade", "<branch>+selector" or "<branch>"."""
        b = self.bundle
        if b is None:
            return []
        out = []
        if b.selector:
            out.append((f"{b.selector.model} + RL canvas selector (GRU)", f"{b.selector.model}+selector"))
        if b.cascade:
            out.append((f"{b.cascade.model} + confidence cascade", f"{b.cascade.model}+cascade"))
        full = b.full.name
        for name in b.sketch:
            if name != full:
                out.append((f"{name} alone (no selector)", name))
        gf = b.full.flops(b.full.default_canvas) / 1e9
        # a VGG-16 full network costs ~40 GFLOPs (~0.2-0.5 s a stroke on a 2-core CPU): it runs only when picked
        slow = f", {gf:.0f} GFLOPs a query: runs only while picked, slow on a CPU" if gf > HEAVY_GFLOPS else ""
        out.append((f"{full} — full network ({arch_name(b.full)}{slow})", full))
        return out

    @property
    def default_choice(self) -> str | None:
        c = self.choices
        return c[0][1] if c else None


def _print_progress(what: str) -> Callable[[int, int], None]:
    """An indexing progress callback ``(done, total)`` printing to stderr every 10%."""
    last = [-1]

    def cb(i: int, n: int) -> None:
        pct = int(100 * i / max(1, n))
        if pct // 10 != last[0] // 10 or i == n:
            last[0] = pct
            print(f"[sketchdown] {what}: {i}/{n} photos", file=sys.stderr, flush=True)

    return cb


def load_model(cfg: AppConfig) -> AppModel:
    """Load the weights and the default gallery's index (building it when missing or stale).
    Never raises: a problem is recorded in ``AppModel.error``."""
    t0 = time.perf_counter()
    m = AppModel(cfg.weights, Path(cfg.gallery))
    try:
        m.bundle = load_bundle(cfg.weights)
    except Exception as e:  # WeightsError, or anything else: the app still starts and says why
        m.error = f"Could not load weights {cfg.weights!r}: {e}"
        log.error(m.error)
        return m
    m.traced = load_traced(cfg.examples_dir)
    _, items = gallery_metadata(cfg.gallery)
    if items and m.bundle.classes:  # a gallery with metadata says which kinds it has photos of
        m.class_photos = class_photo_counts(m.bundle.classes, items)
    try:
        m.retriever = Retriever.from_folder(m.bundle, cfg.gallery, cfg.index_dir, classes=m.offered_classes(),
                                            progress=_print_progress(f"indexing {cfg.gallery}"), granularity=cfg.granularity)
    except (GalleryError, ImageError, OSError) as e:
        m.error = f"Default gallery unavailable ({e}); upload your own photos below."
        log.error(m.error)
        m.retriever = Retriever(m.bundle, None, classes=m.offered_classes())
    if cfg.in_page and m.retriever.gallery is not None:
        m.web_dir = web_export(m.bundle, m.retriever.gallery, m.offered_classes())
    if cfg.warmup:
        m.retriever.warmup()
    m.load_seconds = time.perf_counter() - t0
    return m


def web_export(bundle: ModelBundle, gallery: GalleryIndex, classes: list[str] | None) -> Path | None:
    """The in-page export of ``bundle``'s default branch and ``gallery`` in the cache (made once per weights,
    gallery and format: about 4 s); None, logged, when it cannot be made (the page then searches on the server)."""
    out = config.cache_dir() / "web" / export_key(bundle, gallery, classes=classes)
    try:
        if not (out / MANIFEST).is_file():
            t0 = time.perf_counter()
            export_web(bundle, gallery, out, classes=classes)
            log.info("in-page export written to %s in %.1f s", out, time.perf_counter() - t0)
        return out
    except Exception as e:  # the server path still works: say why the page cannot search by itself
        log.error("no in-page search: exporting the models for the page failed (%s)", e)
        return None


def configure_logging() -> None:
    """Send the app's log lines to stderr with a ``[sketchdown]`` prefix (once per process)."""
    if not log.handlers:
        h = logging.StreamHandler()
        h.setFormatter(logging.Formatter("[sketchdown] %(levelname)s %(message)s"))
        log.addHandler(h)
        log.setLevel(logging.INFO)
