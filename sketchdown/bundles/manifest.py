"""The one typed view of ``weights/<name>/manifest.json``: frozen dataclasses read with
:meth:`Manifest.from_dict` (every field type-checked; a wrong one raises :class:`WeightsError` naming the
file and the field, e.g. ``weights/x/manifest.json: components.selector.hidden: expected int, got 'a'``)
and written with :meth:`Manifest.to_dict`, which gives back exactly the JSON it was read from for every
manifest this code writes (optional keys that were absent stay absent; ``None`` fields are not written).

``metrics`` (make_results' measured rows) and ``provenance`` (the training configs and histories as they
were recorded) are free-form records: they are kept as plain JSON and never steer loading.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sketchdown.bundles.build import EncoderConfig
from sketchdown.bundles.photo import PhotoSpec
from sketchdown.bundles.weights import FORMAT, MANIFEST, WeightsError, read_manifest
from sketchdown.sketch.hog import HogSpec
from sketchdown.sketch.render import RenderSpec


class _Fields:
    """Typed access to one JSON object of a manifest; errors name the file and the dotted field path."""

    def __init__(self, d: Any, source: str, path: str) -> None:
        self.source, self.path = source, path
        if not isinstance(d, Mapping):
            raise self.error("", f"expected an object, got {_show(d)}")
        self.d = d

    def error(self, key: str, msg: str) -> WeightsError:
        where = ".".join(p for p in (self.path, key) if p)
        return WeightsError(f"{self.source}: {where or '(top level)'}: {msg}")

    def only(self, *keys: str) -> None:
        """Reject keys this version does not know (a typo would otherwise be silently ignored)."""
        unknown = sorted(set(self.d) - set(keys))
        if unknown:
            raise self.error(unknown[0], "unknown field")

    def get(self, key: str, check: Callable[[Any], Any], name: str, required: bool = True) -> Any:
        if key not in self.d:
            if required:
                raise self.error(key, "missing")
            return None
        try:
            return check(self.d[key])
        except (TypeError, ValueError):
            raise self.error(key, f"expected {name}, got {_show(self.d[key])}") from None

    def int(self, key: str, required: bool = True) -> int | None:
        return self.get(key, _int, "int", required)

    def float(self, key: str, required: bool = True) -> float | None:
        return self.get(key, _float, "number", required)

    def str(self, key: str, required: bool = True) -> str | None:
        return self.get(key, _str, "string", required)

    def bool(self, key: str, required: bool = True) -> bool | None:
        return self.get(key, _bool, "true or false", required)

    def ints(self, key: str, required: bool = True) -> tuple[int, ...] | None:
        return self.get(key, lambda v: tuple(_int(x) for x in _list(v)), "a list of ints", required)

    def floats(self, key: str, required: bool = True) -> tuple[float, ...] | None:
        return self.get(key, lambda v: tuple(_float(x) for x in _list(v)), "a list of numbers", required)

    def obj(self, key: str, required: bool = True) -> _Fields | None:
        if key not in self.d and not required:
            return None
        if key not in self.d:
            raise self.error(key, "missing")
        return _Fields(self.d[key], self.source, ".".join(p for p in (self.path, key) if p))


def _show(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 60 else s[:57] + "..."


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError
    return v


def _float(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError
    return float(v)


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError
    return v


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise TypeError
    return v


def _list(v: Any) -> list:
    if not isinstance(v, list):
        raise TypeError
    return v


def _optional(**fields: Any) -> dict[str, Any]:
    """The fields that are set (None: the key was absent and stays absent)."""
    return {k: v for k, v in fields.items() if v is not None}


def _encoder(f: _Fields) -> EncoderConfig:
    e = f.obj("encoder")
    e.only("arch", "embed_dim", "num_canvases", "num_classes")
    return EncoderConfig(e.str("arch"), e.int("embed_dim"), e.int("num_canvases"), e.int("num_classes"))


@dataclass(frozen=True)
class PhotoComponent:
    """The photo encoder (the gallery's embedding space) and how a photo becomes its input."""

    file: str
    encoder: EncoderConfig
    photo: PhotoSpec

    @classmethod
    def from_fields(cls, f: _Fields) -> PhotoComponent:
        f.only("file", "encoder", "photo")
        p = f.obj("photo")
        p.only("input", "size", "edge_threshold")
        threshold = p.get("edge_threshold", lambda v: None if v is None else _float(v), "a number or null")
        return cls(f.str("file"), _encoder(f), PhotoSpec(p.str("input"), p.int("size"), threshold))

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "encoder": self.encoder.to_dict(), "photo": dataclasses.asdict(self.photo)}


@dataclass(frozen=True)
class SketchComponent:
    """A sketch encoder into the photo space. Optional fields are None where the manifest does not record them."""

    file: str
    encoder: EncoderConfig
    canvas_sizes: tuple[int, ...]  # index i = CanvasBatchNorm set i
    default_canvas: int | None = None  # the canvas it runs at without the selector (None: the largest)
    full: bool | None = None  # True: the full network every query's FLOPs are compared against
    hog_alpha: float | None = None  # weight of the fused HOG similarity (None: not fused)
    hog_alpha_category: float | None = None  # the weight on category-level galleries (None: hog_alpha)
    kd_weight: float | None = None  # recorded for reference: the distillation weight it was trained with
    kd_loss: str | None = None  # recorded for reference: the distillation term ("structure", "embed", "gallery")

    @classmethod
    def from_fields(cls, f: _Fields) -> SketchComponent:
        f.only("file", "role", "encoder", "canvas_sizes", "default_canvas", "full", "hog_alpha", "hog_alpha_category",
               "kd_weight", "kd_loss")
        sizes = f.ints("canvas_sizes")
        if not sizes:
            raise f.error("canvas_sizes", "expected at least one canvas size")
        return cls(f.str("file"), _encoder(f), sizes, f.int("default_canvas", False), f.bool("full", False),
                   f.float("hog_alpha", False), f.float("hog_alpha_category", False), f.float("kd_weight", False),
                   f.str("kd_loss", False))

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "role": "sketch", "encoder": self.encoder.to_dict(), "canvas_sizes": list(self.canvas_sizes),
                **_optional(default_canvas=self.default_canvas, full=self.full, hog_alpha=self.hog_alpha,
                            hog_alpha_category=self.hog_alpha_category, kd_weight=self.kd_weight, kd_loss=self.kd_loss)}


@dataclass(frozen=True)
class SelectorComponent:
    """The RL canvas selector (:class:`sketchdown.models.modules.CanvasSelector`) of one sketch branch."""

    file: str
    model: str  # the sketch branch whose canvas it picks
    num_canvases: int
    hidden: int
    lams: tuple[float, ...]  # the lambda_F values offered
    conditioned: bool | None = None  # None: True
    lam_power: float | None = None  # None: 1.0
    default_lam: float | None = None  # None: the middle of ``lams``
    costs: tuple[float, ...] | None = None  # (K,) R_comp in [-1, 0] of a trade-off selector; None: lambda_F as an input

    @classmethod
    def from_fields(cls, f: _Fields) -> SelectorComponent:
        f.only("file", "role", "model", "num_canvases", "hidden", "lams", "conditioned", "lam_power", "default_lam", "costs")
        lams = f.floats("lams")
        if not lams:
            raise f.error("lams", "expected at least one lambda_F")
        return cls(f.str("file"), f.str("model"), f.int("num_canvases"), f.int("hidden"), lams, f.bool("conditioned", False),
                   f.float("lam_power", False), f.float("default_lam", False), f.floats("costs", False))

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "role": "selector", "model": self.model, "num_canvases": self.num_canvases,
                "hidden": self.hidden, "lams": list(self.lams),
                **_optional(conditioned=self.conditioned, lam_power=self.lam_power, default_lam=self.default_lam,
                            costs=None if self.costs is None else list(self.costs))}

    @property
    def start_lam(self) -> float:
        """The lambda_F the app starts at."""
        return self.default_lam if self.default_lam is not None else self.lams[len(self.lams) // 2]


def _thresholds(v: Any) -> tuple[tuple[float, ...], ...]:
    """Rows of margins; JSON null is inf (never stop at that stage)."""
    return tuple(tuple(float("inf") if x is None else _float(x) for x in _list(row)) for row in _list(v))


def thresholds_json(table: tuple[tuple[float, ...], ...] | None) -> list | None:
    """Rows of margins as JSON stores them (inf, never stop, as null); None stays None."""
    return None if table is None else [[None if x == float("inf") else x for x in row] for row in table]


@dataclass(frozen=True)
class CascadeComponent:
    """The confidence cascade of one sketch branch (:class:`sketchdown.bundles.cascade.CascadeSpec`):
    numbers only, no weights file. ``fused``/``alone``: per lambda_F, the stop margins of every stage but
    the last (null: never stop there)."""

    model: str
    stages: tuple[int, ...]
    lams: tuple[float, ...]
    fused: tuple[tuple[float, ...], ...]
    alone: tuple[tuple[float, ...], ...] | None = None
    default_lam: float | None = None  # None: the first of ``lams``

    @classmethod
    def from_fields(cls, f: _Fields) -> CascadeComponent:
        f.only("role", "model", "stages", "lams", "fused", "alone", "default_lam")
        table = "a list of lists of numbers or null"
        return cls(f.str("model"), f.ints("stages"), f.floats("lams"), f.get("fused", _thresholds, table),
                   f.get("alone", _thresholds, table, False), f.float("default_lam", False))

    def to_dict(self) -> dict[str, Any]:
        return {"role": "cascade", "model": self.model, "stages": list(self.stages), "lams": list(self.lams),
                "fused": thresholds_json(self.fused),
                **_optional(alone=thresholds_json(self.alone), default_lam=self.default_lam)}


@dataclass(frozen=True)
class FileComponent:
    """A weights file described in words only (``weights/hed``: the HED edge detector): file + text fields."""

    file: str
    info: dict[str, str] = field(default_factory=dict)  # e.g. arch, input, source

    @classmethod
    def from_fields(cls, f: _Fields) -> FileComponent:
        return cls(f.str("file"), {k: f.str(k) for k in f.d if k != "file"})

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, **self.info}


Component = PhotoComponent | SketchComponent | SelectorComponent | CascadeComponent | FileComponent


def _component(f: _Fields, name: str) -> Component:
    role = f.str("role", False)
    if role == "sketch":
        return SketchComponent.from_fields(f)
    if role == "selector":
        return SelectorComponent.from_fields(f)
    if role == "cascade":
        return CascadeComponent.from_fields(f)
    if role is not None:
        raise f.error("role", f"unknown role {role!r} (expected 'sketch', 'selector' or 'cascade')")
    return PhotoComponent.from_fields(f) if name == "photo" else FileComponent.from_fields(f)


def _hog(f: _Fields) -> HogSpec:
    f.only("size", "cells", "blurs", "bins")
    try:
        return HogSpec(f.int("size"), f.ints("cells"), f.floats("blurs"), f.int("bins"))
    except ValueError as e:
        raise f.error("", str(e)) from None


def hog_to_dict(spec: HogSpec) -> dict[str, Any]:
    """A HOG spec as the manifest stores it (lists, not tuples: the gallery's photo id hashes this form)."""
    return {"bins": spec.bins, "blurs": list(spec.blurs), "cells": list(spec.cells), "size": spec.size}


def _render(f: _Fields) -> RenderSpec:
    f.only("line_width", "margin", "ink_threshold")
    return RenderSpec(f.float("line_width"), f.float("margin"), f.float("ink_threshold"))


@dataclass(frozen=True)
class Manifest:
    """One weight set's manifest. ``files``: file name -> sha256 (hex) of every weights file."""

    files: dict[str, str]
    components: dict[str, Component]
    name: str | None = None  # None: the folder's name
    classes: tuple[str, ...] | None = None  # the category heads' classes
    hog: HogSpec | None = None  # set: gallery vectors are [photo embedding, HOG of the edge map]
    render: RenderSpec | None = None  # None: RenderSpec()
    metrics: dict[str, Any] | None = None  # dataset -> {"rows": [...]} (training/make_results)
    provenance: dict[str, Any] | None = None  # git sha, training configs and histories as recorded
    format: str = FORMAT

    @classmethod
    def from_dict(cls, d: Any, source: str) -> Manifest:
        """Parse a manifest's JSON object; ``source`` (the file) prefixes every error message."""
        f = _Fields(d, source, "")
        f.only("format", "name", "files", "components", "classes", "hog", "render", "metrics", "provenance")
        if f.str("format") != FORMAT:
            raise f.error("format", f"unknown format {f.d['format']!r} (expected {FORMAT})")
        files = f.obj("files")
        comps = f.obj("components")
        metrics, provenance = f.obj("metrics", False), f.obj("provenance", False)
        hog, render = f.obj("hog", False), f.obj("render", False)
        classes = f.get("classes", lambda v: tuple(_str(x) for x in _list(v)), "a list of strings", False)
        return cls(
            files={k: files.str(k) for k in files.d},
            components={k: _component(comps.obj(k), k) for k in comps.d},
            name=f.str("name", False), classes=classes,
            hog=None if hog is None else _hog(hog), render=None if render is None else _render(render),
            metrics=None if metrics is None else dict(metrics.d), provenance=None if provenance is None else dict(provenance.d),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "files": dict(self.files), "components": {k: c.to_dict() for k, c in self.components.items()},
                **_optional(name=self.name, classes=None if self.classes is None else list(self.classes),
                            hog=None if self.hog is None else hog_to_dict(self.hog),
                            render=None if self.render is None else dataclasses.asdict(self.render),
                            metrics=self.metrics, provenance=self.provenance)}

    @property
    def photo(self) -> PhotoComponent | None:
        c = self.components.get("photo")
        return c if isinstance(c, PhotoComponent) else None

    @property
    def sketch(self) -> dict[str, SketchComponent]:
        """The sketch branches, in manifest order."""
        return {k: c for k, c in self.components.items() if isinstance(c, SketchComponent)}

    @property
    def selector(self) -> SelectorComponent | None:
        return next((c for c in self.components.values() if isinstance(c, SelectorComponent)), None)

    @property
    def cascade(self) -> CascadeComponent | None:
        return next((c for c in self.components.values() if isinstance(c, CascadeComponent)), None)

    def recorded(self, branch: str) -> dict[str, Any]:
        """``provenance[branch]`` (its training config and history as recorded); {} when absent."""
        rec = (self.provenance or {}).get(branch, {})
        return rec if isinstance(rec, dict) else {}


def load_manifest(folder: str | os.PathLike) -> Manifest:
    """Read and parse ``folder/manifest.json`` (:class:`WeightsError` naming the file and field when malformed)."""
    return Manifest.from_dict(read_manifest(folder), str(Path(folder) / MANIFEST))
