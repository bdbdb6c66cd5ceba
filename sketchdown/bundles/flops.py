"""FLOPs and parameter counts, measured on what actually runs.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` (which counts 2 x MACs for
convolutions and matmuls) on one forward pass at the given canvas. The GRU selector's cost depends
on the sequence length, so it is counted by formula (:func:`sketchdown.models.modules.gru_flops`), which the
tests check against FlopCounterMode and against a hand-unrolled GRU.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from sketchdown.models.modules import CanvasSelector, EmbeddingEncoder, gru_flops


def count_flops(fn: Callable[[], object]) -> int:
    """Total FLOPs of running ``fn()`` once (no autograd)."""
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def encoder_flops(encoder: EmbeddingEncoder, canvas: int, canvas_index: int = 0, with_classifier: bool = False) -> int:
    """FLOPs of one sketch (batch 1, 3 x canvas x canvas) through ``encoder``."""
    x = torch.zeros(1, 3, canvas, canvas)
    was = encoder.training
    encoder.eval()
    try:
        if with_classifier:
            return count_flops(lambda: encoder.forward_with_logits(x, canvas_index))
        return count_flops(lambda: encoder(x, canvas_index))
    finally:
        encoder.train(was)


def param_count(module: nn.Module, canvas_index: int | None = None) -> int:
    """Parameters used for one canvas: with per-canvas BN, only one canvas' BN set counts."""
    total = sum(p.numel() for p in module.parameters())
    if canvas_index is None:
        return total
    from sketchdown.models.modules import CanvasBatchNorm

    for m in module.modules():
        if isinstance(m, CanvasBatchNorm):
            per = sum(p.numel() for p in m.bns[0].parameters())
            total -= per * (len(m.bns) - 1)
    return total


def selector_flops(selector: CanvasSelector, steps: int) -> int:
    """FLOPs of the selector over a stroke-5 sequence of ``steps`` points (GRU + linear head)."""
    head = 2 * selector.head.in_features * selector.head.out_features
    return gru_flops(5, selector.hidden, steps) + head
