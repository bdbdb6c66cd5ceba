"""Fast single-sketch inference: each (sketch branch, canvas) exported once to ONNX, run by ONNX Runtime.

Why: a small canvas makes the network cheap in FLOPs but eager PyTorch still pays ~30 us of Python and
dispatch overhead per layer (Lite0 has ~100), plus the dynamic 'same' padding computed on every call.
At 32 px that overhead is most of the time. The ONNX export fixes the canvas (padding becomes a
constant) and ONNX Runtime folds BatchNorm into the convolutions and runs the graph without Python.
``python -m sketchdown bench`` measures eager vs ONNX side by side; the FLOP counter always counts the
eager module, whose arithmetic the export keeps (BN folding removes no convolution or matmul).

The export runs in memory (about 1.5 s per canvas, done by ``Retriever.warmup``); nothing is written.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch
from torch import nn

from sketchdown import config

BACKENDS = ("onnx", "eager")


def onnx_available() -> bool:
    try:
        import onnx  # noqa: F401  (torch.onnx.export needs it)
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_backend(backend: str | None = None) -> str:
    """``onnx`` or ``eager``: the argument, else ``$SKETCHDOWN_BACKEND``, else ``onnx`` when installed."""
    b = config.backend(backend)
    if b == "auto":
        return "onnx" if onnx_available() else "eager"
    if b not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS} or auto, got {b!r}")
    if b == "onnx" and not onnx_available():
        raise ValueError("backend 'onnx' needs the onnx and onnxruntime packages (pip install -r requirements.txt)")
    return b


class _AtCanvas(nn.Module):
    """An EmbeddingEncoder pinned to one canvas' BatchNorm set: x -> (embedding, logits)."""

    def __init__(self, encoder: nn.Module, canvas_index: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.canvas_index = canvas_index

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.encoder.forward_features(x, self.canvas_index)
        e = self.encoder.forward_head(f)
        clf = self.encoder.classifier
        # ONNX outputs cannot be None: an empty (B, 0) tensor stands for "no category head"
        return e, clf(f) if clf is not None else f[:, :0]


def onnx_bytes(model: nn.Module, args: tuple[torch.Tensor, ...], names: list[str], outputs: list[str],
               dynamic: dict[str, dict[int, str]]) -> bytes:
    """``model`` traced on ``args`` and exported to ONNX (opset 17) in memory, with the given input and output
    names and dynamic axes."""
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter warns about its own deprecation
        torch.onnx.export(model, args, buf, dynamo=False, input_names=names, output_names=outputs,
                          dynamic_axes=dynamic, opset_version=17)
    return buf.getvalue()


def _session(model: nn.Module, args: tuple[torch.Tensor, ...], names: list[str], outputs: list[str],
             dynamic: dict[str, dict[int, str]], threads: int | None):
    import onnxruntime as ort

    data = onnx_bytes(model, args, names, outputs, dynamic)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads or torch.get_num_threads()
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    # no busy-waiting between runs: the process also runs PyTorch and serves several users
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


class OnnxBranch:
    """One sketch encoder at one canvas in ONNX Runtime.

    __call__(x: float32 (B, 3, S, S) in [-1, 1]) -> (embedding (B, D) unit norm, logits (B, C) or None).
    """

    def __init__(self, encoder: nn.Module, canvas: int, canvas_index: int, threads: int | None = None) -> None:
        self.canvas = canvas
        was = encoder.training
        encoder.eval()
        self.session = _session(_AtCanvas(encoder, canvas_index), (torch.zeros(1, 3, canvas, canvas),), ["x"],
                                ["embedding", "logits"], {"x": {0: "b"}}, threads)
        encoder.train(was)

    def __call__(self, x: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
        xn = x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x, np.float32)
        if xn.shape[1:] != (3, self.canvas, self.canvas):
            raise ValueError(f"expected (B, 3, {self.canvas}, {self.canvas}), got {xn.shape}")
        e, logits = self.session.run(None, {"x": np.ascontiguousarray(xn, np.float32)})
        return torch.from_numpy(e), (torch.from_numpy(logits) if logits.shape[1] else None)


class OneSequence(nn.Module):
    """The selector on one unpadded sequence (no packing, which ONNX cannot express)."""

    def __init__(self, selector: nn.Module) -> None:
        super().__init__()
        self.selector = selector

    def forward(self, seq: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
        _, h = self.selector.gru(seq)
        return self.selector.decide(h[-1], lam)


class OnnxSelector:
    """The canvas selector in ONNX Runtime for one sketch at a time.

    __call__(seq: float32 (L, 5) stroke-5, lam: float) -> (K,) logits, as ``CanvasSelector``.
    """

    def __init__(self, selector: nn.Module, threads: int | None = None) -> None:
        selector.eval()
        self.session = _session(OneSequence(selector), (torch.zeros(1, 8, 5), torch.zeros(1)), ["seq", "lam"],
                                ["logits"], {"seq": {1: "len"}}, threads or 1)

    def __call__(self, seq: np.ndarray, lam: float) -> np.ndarray:
        if seq.ndim != 2 or seq.shape[1] != 5 or len(seq) == 0:
            raise ValueError(f"expected a (L, 5) stroke-5 sequence, got {seq.shape}")
        x = np.ascontiguousarray(seq[None], np.float32)
        return self.session.run(None, {"seq": x, "lam": np.array([lam], np.float32)})[0][0]
