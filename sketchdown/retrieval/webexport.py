"""Everything a web page needs to rank a gallery without the server: the sketch branch and the canvas
selector as ONNX files for ONNX Runtime Web, the gallery's search vectors and a manifest.

    export_web(bundle, gallery, "out/")   # -> Path of out/manifest.json

The page (``webapp/static/web/``) draws the strokes, computes the HOG and fuses the scores itself, so the
manifest carries every number that decides those (render and HOG specs, the measured line profile, the
HOG weight for this gallery) and every number the FLOP counter shows (the branch's FLOPs per canvas,
the selector's per step, the full network's). One ONNX file serves every canvas: its input size is
dynamic and the per-canvas BatchNorm sets become a table indexed by an input, so the page downloads the
convolutions once. Weights that are exactly representable in float16 (all of a shipped set's, which is
stored in float16) are stored so and cast back when the session loads: half the download, same numbers.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sketchdown.bundles.bundle import ModelBundle, SketchBranch
from sketchdown.bundles.manifest import thresholds_json
from sketchdown.models.modules import CanvasBatchNorm, gru_flops
from sketchdown.retrieval.accel import OneSequence, onnx_bytes
from sketchdown.retrieval.gallery import GalleryIndex
from sketchdown.sketch.hog import hog_flops
from sketchdown.sketch.lineprofile import fit_line_profile
from sketchdown.sketch.render import REF_SIZE
from sketchdown.sketch.strokes import MAX_POINTS

FORMAT = "sketchdown-web/1"
MANIFEST = "manifest.json"


class _Index:
    """The canvas index of the running forward pass, read by every :class:`_TableBatchNorm`."""

    value: torch.Tensor


class _TableBatchNorm(nn.Module):
    """A :class:`CanvasBatchNorm` in inference form: per-canvas scale and shift ``(K, C)`` gathered by a
    tensor index, so one exported graph serves every canvas."""

    def __init__(self, bn: CanvasBatchNorm, index: _Index) -> None:
        super().__init__()
        scale = torch.stack([b.weight / torch.sqrt(b.running_var + b.eps) for b in bn.bns]).detach()
        shift = torch.stack([b.bias - b.running_mean * s for b, s in zip(bn.bns, scale, strict=True)]).detach()
        self.register_buffer("scale", scale)
        self.register_buffer("shift", shift)
        self.index = index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        i = self.index.value
        return x * self.scale.index_select(0, i).view(1, -1, 1, 1) + self.shift.index_select(0, i).view(1, -1, 1, 1)


class _PaddedConv(nn.Module):
    """A 'same'-padded convolution with its padding fixed: the traced graph cannot recompute it per size."""

    def __init__(self, conv: nn.Conv2d, pads: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.conv, self.pads = conv, list(pads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv
        return F.conv2d(F.pad(x, self.pads), c.weight, c.bias, c.stride, c.padding, c.dilation, c.groups)


def _same_pads(conv: nn.Conv2d, h: int, w: int) -> tuple[int, int, int, int]:
    """Conv2dDynamicSamePadding's padding (left, right, top, bottom) for an (h, w) input."""
    (kh, kw), (sh, sw), (dh, dw) = conv.weight.shape[-2:], conv.stride, conv.dilation
    ph = max((math.ceil(h / sh) - 1) * sh + (kh - 1) * dh + 1 - h, 0)
    pw = max((math.ceil(w / sw) - 1) * sw + (kw - 1) * dw + 1 - w, 0)
    return pw // 2, pw - pw // 2, ph // 2, ph - ph // 2


def _fix_padding(encoder: nn.Module, canvases: tuple[int, ...], canvas_index: Callable[[int], int]) -> None:
    """Replace every dynamically padded convolution by a :class:`_PaddedConv`; the padding must be the same
    at every canvas (true for sizes divisible by the network's stride), else one graph cannot serve them."""
    convs = {n: m for n, m in encoder.named_modules() if type(m).__name__ == "Conv2dDynamicSamePadding"}
    pads: dict[str, set] = {n: set() for n in convs}
    hooks = [m.register_forward_pre_hook(lambda _m, a, n=n: pads[n].add(_same_pads(_m, *a[0].shape[-2:])))
             for n, m in convs.items()]
    with torch.no_grad():
        for c in canvases:
            encoder(torch.zeros(1, 3, c, c), canvas_index(c))
    for h in hooks:
        h.remove()
    for name, conv in convs.items():
        if len(pads[name]) != 1:
            raise ValueError(f"{name} pads differently across canvases {canvases}: {sorted(pads[name])}")
        parent, _, attr = name.rpartition(".")
        setattr(encoder.get_submodule(parent) if parent else encoder, attr, _PaddedConv(conv, pads[name].pop()))


class _AnyCanvas(nn.Module):
    """(x float32 (1, 3, S, S) in [-1, 1], canvas index int64 (1,)) -> (embedding (1, D), logits (1, C))."""

    def __init__(self, encoder: nn.Module, canvases: tuple[int, ...], canvas_index: Callable[[int], int]) -> None:
        super().__init__()
        self.encoder = copy.deepcopy(encoder).eval()
        _fix_padding(self.encoder, canvases, canvas_index)
        self.index = _Index()
        _swap_bns(self.encoder, self.index)

    def forward(self, x: torch.Tensor, canvas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.index.value = canvas
        f = self.encoder.backbone(x).mean((2, 3))
        clf = self.encoder.classifier
        return self.encoder.forward_head(f), clf(f) if clf is not None else f[:, :0]


def _swap_bns(module: nn.Module, index: _Index) -> None:
    for name, child in module.named_children():
        if isinstance(child, CanvasBatchNorm):
            setattr(module, name, _TableBatchNorm(child, index))
        else:
            _swap_bns(child, index)


def _onnx_bytes(model: nn.Module, args: tuple[torch.Tensor, ...], inputs: list[str], outputs: list[str],
                dynamic: dict[str, dict[int, str]]) -> bytes:
    return _half_weights(onnx_bytes(model, args, inputs, outputs, dynamic))


def _half_weights(data: bytes) -> bytes:
    """Store float32 initializers that float16 represents exactly as float16 with a Cast back."""
    import onnx
    from onnx import helper, numpy_helper

    m = onnx.load_from_string(data)
    casts = []
    for init in m.graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT:
            continue
        a = numpy_helper.to_array(init)
        h = a.astype(np.float16)
        if a.size < 64 or not np.array_equal(h.astype(np.float32), a):
            continue
        name = init.name
        init.CopyFrom(numpy_helper.from_array(h, name + "__f16"))
        casts.append(helper.make_node("Cast", [name + "__f16"], [name], to=onnx.TensorProto.FLOAT))
    nodes = list(m.graph.node)
    del m.graph.node[:]
    m.graph.node.extend(casts + nodes)
    return m.SerializeToString()


def _encoder_graphs(b: SketchBranch) -> list[tuple[str, tuple[int, ...], nn.Module]]:
    """(file name, canvases, module): one graph for every canvas when their padding agrees (sizes divisible by
    the network's stride), else one per canvas. The canvas input is always the branch's canvas index."""
    try:
        return [("encoder.onnx", b.canvas_sizes, _AnyCanvas(b.encoder, b.canvas_sizes, b.canvas_index))]
    except ValueError:
        return [(f"encoder-{c}.onnx", (c,), _AnyCanvas(b.encoder, (c,), b.canvas_index)) for c in b.canvas_sizes]


def _write(path: Path, data: bytes) -> str:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return hashlib.sha256(data).hexdigest()


def gallery_items(gallery: GalleryIndex) -> list[dict[str, str]]:
    """Per photo: its path under the gallery root, label and category (the page builds URLs from paths)."""
    return [{"path": p, "label": lab, "category": c}
            for p, lab, c in zip(gallery.paths, gallery.labels, gallery.categories, strict=True)]


def export_key(bundle: ModelBundle, gallery: GalleryIndex, model: str | None = None, classes: list[str] | None = None) -> str:
    """A name for the export of these weights, gallery and classes (16 hex digits): it changes when any
    exported tensor, gallery vector, photo or this format does."""
    model = model or bundle.default_model
    h = hashlib.sha256(json.dumps([FORMAT, model, gallery.meta.get("fingerprint"), gallery.meta.get("granularity"),
                                   gallery.paths, bundle.hog.to_dict() if bundle.hog else None, sorted(classes or bundle.classes),
                                   bundle.render.__dict__, _cascade(bundle, model)]).encode())
    modules = [bundle.sketch[model].encoder] + ([bundle.selector.policy] if bundle.selector else [])
    for mod in modules:
        for t in mod.state_dict().values():
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    h.update(np.ascontiguousarray(gallery.embeddings()).tobytes())
    return h.hexdigest()[:16]


def export_web(bundle: ModelBundle, gallery: GalleryIndex, out: str | os.PathLike, model: str | None = None,
               classes: list[str] | None = None) -> Path:
    """Write ``encoder.onnx`` (or ``encoder-<canvas>.onnx`` each, see :func:`_encoder_graphs`), ``selector.onnx`` (when the selector serves ``model``), ``gallery.f32``
    (``(N, D)`` float32 little-endian: the index's vectors) and ``manifest.json`` into ``out``.
    ``model``: the sketch branch (default: the one the selector serves); ``classes``: the recognition
    classes the page may name (default: all the head's). Returns the manifest's path."""
    model = model or bundle.default_model
    b = bundle.sketch[model]
    if max(b.canvas_sizes) > REF_SIZE or (bundle.hog is not None and bundle.hog.size > REF_SIZE):
        raise ValueError(f"the page draws on a {REF_SIZE} px reference canvas only; this weight set needs "
                         f"{max(b.canvas_sizes)} px")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    encoders = []
    for name, canvases, net in _encoder_graphs(b):
        c0 = canvases[0]
        files[name] = _write(out / name, _onnx_bytes(net, (torch.zeros(1, 3, c0, c0), torch.zeros(1, dtype=torch.int64)),
                                                     ["x", "canvas"], ["embedding", "logits"], {"x": {2: "s", 3: "s"}}))
        encoders.append({"file": name, "canvases": list(canvases)})
    sel = bundle.selector if bundle.selector is not None and bundle.selector.model == model else None
    if sel is not None:
        files["selector.onnx"] = _write(out / "selector.onnx", _onnx_bytes(
            OneSequence(copy.deepcopy(sel.policy).eval()), (torch.zeros(1, 8, 5), torch.zeros(1)), ["seq", "lam"], ["logits"], {"seq": {1: "len"}}))
    vectors = np.ascontiguousarray(gallery.embeddings(), "<f4")
    files["gallery.f32"] = _write(out / "gallery.f32", vectors.tobytes())
    manifest = _manifest(bundle, model, gallery, vectors.shape, classes)
    manifest.update(files=files, encoders=encoders)
    (out / MANIFEST).write_text(json.dumps(manifest) + "\n")
    return out / MANIFEST


def _cascade(bundle: ModelBundle, model: str) -> dict[str, Any] | None:
    """The confidence cascade of ``model`` as the page reads it (JSON null: never stop at that stage)."""
    c = bundle.cascade
    if c is None or c.model != model:
        return None
    table = {name: thresholds_json(rows) for name, rows in (("fused", c.fused), ("alone", c.alone)) if rows is not None}
    return {"stages": list(c.stages), "lams": list(c.lams), "default_lam": c.default_lam, **table}


def _manifest(bundle: ModelBundle, model: str, gallery: GalleryIndex, shape: tuple[int, ...],
              classes: list[str] | None) -> dict[str, Any]:
    b, sel, full = bundle.sketch[model], bundle.selector, bundle.full
    granularity = str(gallery.meta.get("granularity", "category"))
    hog = bundle.hog
    return {
        "format": FORMAT,
        "weights": bundle.name,
        "model": model,
        "canvases": list(b.canvas_sizes),
        "default_canvas": b.default_canvas,
        "branch_flops": {str(c): b.flops(c) for c in b.canvas_sizes},
        "params": b.params(),
        "full": {"name": full.name, "canvas": full.default_canvas, "flops": full.flops(full.default_canvas)},
        "selector": None if sel is None or sel.model != model else {
            "lams": list(sel.lams), "default_lam": sel.default_lam, "params": sel.params(),
            # selector_flops(policy, steps) = step_flops * steps + head_flops
            "step_flops": gru_flops(5, sel.policy.hidden, 1),
            "head_flops": 2 * sel.policy.head.in_features * sel.policy.head.out_features,
            "epsilon": 2.0, "max_len": 200, "scale": 64.0,  # sketchdown.sketch.strokes.stroke_sequence
        },
        "cascade": _cascade(bundle, model),
        "render": {"line_width": bundle.render.line_width, "margin": bundle.render.margin, "ref": REF_SIZE,
                   "profile": fit_line_profile(max(1, int(round(bundle.render.line_width)))).to_json()},
        "hog": None if hog is None else {**hog.to_dict(), "dim": hog.dim, "flops": hog_flops(hog)},
        "alpha": b.alpha_for(granularity) if hog is not None else 0.0,
        "granularity": granularity,
        "classes": list(bundle.classes),
        "offered": list(bundle.classes if classes is None else classes),
        "gallery": {"count": int(shape[0]), "dim": int(shape[1]), "items": gallery_items(gallery)},
        "max_points": MAX_POINTS,
    }
