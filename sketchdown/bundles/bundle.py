"""A weight set as the runtime sees it: one photo encoder (the gallery's embedding space), one or
more sketch encoders that map into that space (teacher = the full network, students), an optional
canvas selector, and the preprocessing they were trained with.

``load_bundle("weights/chairv2")``, ``load_bundle("hf://owner/name@rev")`` or the built-in
``load_bundle("imagenet-lite0")`` (ImageNet EfficientNet-Lite0 features, no training).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sketchdown import config
from sketchdown.bundles.build import EncoderConfig, build_encoder, imagenet_lite_path
from sketchdown.bundles.cascade import CascadeSpec
from sketchdown.bundles.flops import encoder_flops, param_count
from sketchdown.bundles.manifest import (
    CascadeComponent,
    Manifest,
    PhotoComponent,
    SelectorComponent,
    SketchComponent,
    hog_to_dict,
    load_manifest,
)
from sketchdown.bundles.photo import PhotoSpec
from sketchdown.bundles.weights import WeightsError, load_tensors, resolve_weights, sha256_file
from sketchdown.models.modules import CanvasSelector, EmbeddingEncoder
from sketchdown.sketch.hog import HogSpec
from sketchdown.sketch.render import RenderSpec

BUILTIN = ("imagenet-lite0",)


@dataclass
class SketchBranch:
    """A sketch encoder and the canvas sizes it was trained for (index i = CanvasBatchNorm set i)."""

    name: str
    encoder: EmbeddingEncoder
    canvas_sizes: tuple[int, ...]
    default_canvas: int
    is_full: bool = False  # the "full network" every query's FLOPs are compared against
    hog_alpha: float = 0.0  # weight of the HOG similarity fused with this branch's (0: not fused)
    hog_alpha_category: float | None = None  # the weight on category-level galleries (None: hog_alpha)
    _flops: dict[int, int] = field(default_factory=dict, repr=False)
    _params: int | None = field(default=None, repr=False)

    def alpha_for(self, granularity: str) -> float:
        """HOG weight on a gallery of this granularity ("instance" or "category")."""
        if granularity == "category" and self.hog_alpha_category is not None:
            return self.hog_alpha_category
        return self.hog_alpha

    def canvas_index(self, canvas: int) -> int:
        if canvas in self.canvas_sizes:
            return self.canvas_sizes.index(canvas)
        if len(self.canvas_sizes) == 1:
            return 0  # a single-canvas model can run at any size (its BN was trained at one)
        raise ValueError(f"model '{self.name}' runs at canvas {list(self.canvas_sizes)}, not {canvas}")

    def flops(self, canvas: int) -> int:
        """Sketch-branch FLOPs of one query at ``canvas`` (cached)."""
        if canvas not in self._flops:
            self._flops[canvas] = encoder_flops(self.encoder, canvas, self.canvas_index(canvas))
        return self._flops[canvas]

    def params(self) -> int:
        """Parameters used by one query (one canvas' BN set), cached: it is read on every stroke."""
        if self._params is None:
            self._params = param_count(self.encoder, 0 if len(self.canvas_sizes) > 1 else None)
        return self._params


@dataclass
class SelectorSpec:
    policy: CanvasSelector
    model: str  # the sketch branch whose canvas it picks
    lams: tuple[float, ...]  # the lambda_F values offered (the policy is conditioned on lambda_F)
    default_lam: float

    def params(self) -> int:
        return param_count(self.policy)


@dataclass
class ModelBundle:
    name: str
    photo_encoder: EmbeddingEncoder
    photo_spec: PhotoSpec
    photo_id: str  # identity of the photo encoder: a gallery index built with another is stale
    render: RenderSpec
    sketch: dict[str, SketchBranch]
    selector: SelectorSpec | None = None
    classes: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    hog: HogSpec | None = None  # when set, gallery vectors are [photo embedding, HOG of the edge map]
    cascade: CascadeSpec | None = None  # the confidence cascade (Retriever.retrieve(canvas="cascade"))
    # compiled per-canvas runners (sketchdown.retrieval.accel), shared by every Retriever over this bundle
    runners: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def full(self) -> SketchBranch:
        return next((b for b in self.sketch.values() if b.is_full), next(iter(self.sketch.values())))

    @property
    def default_model(self) -> str:
        return self.selector.model if self.selector else next(iter(self.sketch))

    @property
    def embed_dim(self) -> int:
        with torch.inference_mode():
            n = self.photo_spec.size
            return int(self.photo_encoder(torch.zeros(1, 3, n, n)).shape[1]) + (self.hog.dim if self.hog else 0)


def _builtin_lite0() -> ModelBundle:
    enc = build_encoder(EncoderConfig("lite0", embed_dim=0), weights="imagenet")
    digest = sha256_file(imagenet_lite_path("lite0"))
    branch = SketchBranch("imagenet-lite0", enc, (224,), 224, is_full=True)
    return ModelBundle(
        # binarised edges and thin lines: measured best zero-shot (ChairV2 test Acc@1 20.4 vs 9.0 raw soft edges)
        "imagenet-lite0", enc, PhotoSpec("hed", 224, 0.5), f"imagenet-lite0:{digest}:t0.5", RenderSpec(line_width=2.0),
        {"imagenet-lite0": branch},
        source="builtin",
    )


def _encoder(folder: Path, m: Manifest, file: str, cfg: EncoderConfig) -> EmbeddingEncoder:
    """One encoder of the set from its sha256-checked file; weights that do not fit ``cfg`` name the file."""
    try:
        return build_encoder(cfg, weights=load_tensors(folder, file, m.files))
    except ValueError as e:  # build_encoder: missing/unexpected keys or wrong shapes
        raise WeightsError(f"{folder / file}: {e} (manifest: {cfg})") from None


def _branch(folder: Path, m: Manifest, name: str, c: SketchComponent) -> SketchBranch:
    sizes = c.canvas_sizes
    return SketchBranch(name, _encoder(folder, m, c.file, c.encoder), sizes,
                        c.default_canvas if c.default_canvas is not None else sizes[-1], bool(c.full),
                        c.hog_alpha if c.hog_alpha is not None else 0.0, c.hog_alpha_category)


def _selector(folder: Path, m: Manifest, c: SelectorComponent) -> SelectorSpec:
    try:
        if c.costs is None:
            raise ValueError("no costs: selectors that take lambda_F as a head input are no longer supported")
        pol = CanvasSelector(c.num_canvases, c.hidden, costs=c.costs)
        pol.load_state_dict(load_tensors(folder, c.file, m.files), strict=True)
    except (RuntimeError, ValueError) as e:  # load_state_dict's key/shape mismatch; costs of the wrong length
        raise WeightsError(f"{folder / c.file}: weights do not fit the manifest's selector: {str(e).splitlines()[0]}") from None
    return SelectorSpec(pol.eval(), c.model, c.lams, c.start_lam)


def _cascade(folder: Path, m: Manifest, c: CascadeComponent) -> CascadeSpec:
    if c.model not in m.sketch:
        raise WeightsError(f"{folder}: cascade refers to unknown model {c.model!r}")
    sizes = m.sketch[c.model].canvas_sizes
    if len(sizes) > 1 and not set(c.stages) <= set(sizes):
        raise WeightsError(f"{folder}: cascade stages {list(c.stages)} are not all canvases of {c.model!r} {list(sizes)}")
    try:
        return CascadeSpec(c.model, c.stages, c.lams, c.fused, c.alone, c.default_lam if c.default_lam is not None else c.lams[0])
    except (ValueError, IndexError) as e:
        raise WeightsError(f"{folder}: cascade: {e}") from None


def photo_id(m: Manifest, photo: PhotoComponent) -> str:
    """Identity of the gallery's vector space: the photo encoder's sha256, its preprocessing and the HOG spec
    (a gallery index built under another id is stale). Hashes the manifest's JSON form of each."""
    key = m.files[photo.file] + repr(sorted(dataclasses.asdict(photo.photo).items()))
    if m.hog is not None:
        key += repr(sorted(hog_to_dict(m.hog).items()))
    return hashlib.sha256(key.encode()).hexdigest()


def load_bundle(ref: str | os.PathLike | None = None) -> ModelBundle:
    """Load a weight set (sha256-checked, strict keys). None: ``$SKETCHDOWN_WEIGHTS_SET`` or weights/default."""
    ref = config.default_weights_ref(ref)
    if str(ref) in BUILTIN:
        return _builtin_lite0()
    folder = resolve_weights(ref)
    m = load_manifest(folder)
    pc = m.photo
    if pc is None:
        raise WeightsError(f"{folder}: manifest has no photo component")
    if not m.sketch:
        raise WeightsError(f"{folder}: manifest has no sketch encoder")
    if m.selector is not None and m.selector.model not in m.sketch:
        raise WeightsError(f"{folder}: selector refers to unknown model {m.selector.model!r}")
    if m.hog is not None and pc.photo.input != "hed":
        raise WeightsError(f"{folder}: HOG fusion needs the photo branch's edge-map input")
    return ModelBundle(
        name=m.name if m.name is not None else Path(folder).name,
        photo_encoder=_encoder(folder, m, pc.file, pc.encoder),
        photo_spec=pc.photo,
        photo_id=photo_id(m, pc),
        render=m.render or RenderSpec(),
        sketch={name: _branch(folder, m, name, c) for name, c in m.sketch.items()},
        selector=None if m.selector is None else _selector(folder, m, m.selector),
        classes=list(m.classes or ()),
        metrics=dict(m.metrics or {}),
        source=str(folder),
        hog=m.hog,
        cascade=None if m.cascade is None else _cascade(folder, m, m.cascade),
    )
