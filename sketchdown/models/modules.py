"""nn.Modules only: backbones, the embedding encoder and the canvas selector policy.

No file I/O, no downloads, no device globals: builders in :mod:`sketchdown.bundles.build` assemble these and
load weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sketchdown.models.hed import HED_MEAN_BGR, add_vgg_blocks


class CanvasBatchNorm(nn.Module):
    """BatchNorm with one set of statistics and affine parameters per canvas size.

    Sketches rendered at 32 px and at 224 px have very different activation statistics; sharing
    the convolutions but not the BN lets one network serve every canvas (a few KB per canvas).
    """

    def __init__(self, bn: nn.BatchNorm2d, num_canvases: int) -> None:
        super().__init__()
        self.bns = nn.ModuleList()
        for _ in range(num_canvases):
            b = nn.BatchNorm2d(bn.num_features, eps=bn.eps, momentum=bn.momentum)
            b.load_state_dict(bn.state_dict())
            self.bns.append(b)
        self.index = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bns[self.index](x)


def convert_canvas_bn(module: nn.Module, num_canvases: int) -> nn.Module:
    """Replace every BatchNorm2d in ``module`` (in place) by a :class:`CanvasBatchNorm`."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, CanvasBatchNorm(child, num_canvases))
        else:
            convert_canvas_bn(child, num_canvases)
    return module


class EmbeddingEncoder(nn.Module):
    """Backbone -> global average pool -> linear projection -> L2-normalised embedding.

    forward(x: float32 (B, 3, S, S) in [-1, 1], canvas_index) -> (B, embed_dim), unit norm.
    An optional category head reads the pooled features (sketch recognition).
    """

    def __init__(
        self, backbone: nn.Module, feat_dim: int, embed_dim: int = 256, num_classes: int = 0
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.proj = nn.Linear(feat_dim, embed_dim) if embed_dim > 0 else nn.Identity()
        self.classifier = nn.Linear(feat_dim, num_classes) if num_classes > 0 else None
        self._canvas_bns = [m for m in self.modules() if isinstance(m, CanvasBatchNorm)]

    def set_canvas_index(self, index: int) -> None:
        for m in self._canvas_bns:
            m.index = index

    def forward_features(self, x: torch.Tensor, canvas_index: int = 0) -> torch.Tensor:
        """(B, 3, S, S) -> pooled features (B, feat_dim)."""
        if self._canvas_bns:
            self.set_canvas_index(canvas_index)
        return self.backbone(x).mean((2, 3))

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.proj(feats), dim=-1)

    def forward(self, x: torch.Tensor, canvas_index: int = 0) -> torch.Tensor:
        return self.forward_head(self.forward_features(x, canvas_index))

    def forward_with_logits(
        self, x: torch.Tensor, canvas_index: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Embedding and category logits (None without a classifier) from one backbone pass."""
        f = self.forward_features(x, canvas_index)
        logits = self.classifier(f) if self.classifier is not None else None
        return self.forward_head(f), logits


class LiteFeatures(nn.Module):
    """EfficientNet-Lite trunk (stem, blocks, 1x1 head conv), from ``efficientnet_lite_pytorch``.

    Keeps only what feature extraction uses (drops the 1000-class FC), and builds its
    convolutions with dynamic 'same' padding so any canvas size works.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.conv_stem, self.bn0 = net._conv_stem, net._bn0
        self.blocks = net._blocks
        self.conv_head, self.bn1 = net._conv_head, net._bn1
        self.act = nn.ReLU6()
        self.drop_connect_rate = float(net._global_params.drop_connect_rate or 0.0)

    def early_modules(self, n: int) -> list[nn.Module]:
        """Stem and the first ``n`` blocks (what :func:`training.common.freeze_early` freezes); none for n <= 0."""
        return [self.conv_stem, self.bn0, *list(self.blocks)[:n]] if n > 0 else []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn0(self.conv_stem(x)))
        n = len(self.blocks)
        for i, block in enumerate(self.blocks):
            rate = self.drop_connect_rate * i / n if self.training else None
            x = block(x, drop_connect_rate=rate)
        return self.act(self.bn1(self.conv_head(x)))


class VGGFeatures(nn.Module):
    """VGG-16 convolutional trunk (13 3x3 convs in 5 blocks, 2x2 max pools between them), laid out like
    :class:`sketchdown.models.hed.HED`'s trunk (``block{1..5}.convs.{i}``) so HED's weights load by name.

    Takes the library's convention, float (B, 3, S, S) in [-1, 1] (paper = +1), and maps it to the
    Caffe convention the HED/ImageNet weights were trained on (0..255, BGR, per-channel mean removed)
    inside the module: the rest of the pipeline never special-cases VGG. Returns (B, 512, ~S/16, ~S/16).
    """

    def __init__(self) -> None:
        super().__init__()
        add_vgg_blocks(self)
        # x in [-1, 1] RGB -> 127.5 * (x + 1) - mean, channels reversed (BGR): a fixed affine per channel
        self.register_buffer("in_mean", torch.tensor(HED_MEAN_BGR[::-1]).view(1, 3, 1, 1) - 127.5, persistent=False)

    @property
    def blocks(self) -> list[nn.Module]:
        return [self.block1, self.block2, self.block3, self.block4, self.block5]

    def early_modules(self, n: int) -> list[nn.Module]:
        """The first ``n`` blocks (what :func:`training.common.freeze_early` freezes)."""
        return self.blocks[:n]

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """[-1, 1] RGB -> the Caffe input the first block reads."""
        return (127.5 * x - self.in_mean.to(x.dtype)).flip(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prepare(x)
        for block in self.blocks:
            x = block(x)
        return x


class TorchvisionFeatures(nn.Module):
    """Wrap a torchvision classifier's convolutional trunk (everything before pooling)."""

    def __init__(self, trunk: nn.Module) -> None:
        super().__init__()
        self.trunk = trunk

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)


class CanvasSelector(nn.Module):
    """RL canvas-size policy: 1-layer GRU over the RDP-simplified stroke-5 sequence -> K logits.

    forward(seq: float32 (B, L, 5), lengths: int64 (B,), lam: float32 (B,) or None) -> (B, K) logits.
    ``costs`` (K,) are the canvases' compute reward R_comp in [-1, 0]. The policy is conditioned on the
    accuracy-vs-FLOPs weight lambda_F in [0, 1], so one policy serves every setting of the app's knob:
    the logits mirror the reward, ``(1 - lambda_F) * head(h) + lambda_F * tau * costs`` with a learned
    temperature tau. The head only has to learn which canvas the sketch needs; lambda_F trades it against
    FLOPs exactly as the reward does, so the knob cannot be ignored (lambda_F as one more head input was
    tried: its single weight lost to the GRU features and the policy saturated onto one canvas).
    """

    def __init__(self, num_canvases: int, hidden: int = 64, *, costs: tuple[float, ...] | list[float]) -> None:
        super().__init__()
        if len(costs) != num_canvases:
            raise ValueError(f"costs need one value per canvas ({num_canvases}), got {len(costs)}")
        self.hidden = hidden
        self.gru = nn.GRU(5, hidden, num_layers=1, batch_first=True)
        self.head = nn.Linear(hidden, num_canvases)
        self.register_buffer("costs", torch.tensor([float(c) for c in costs]))
        self.log_tau = nn.Parameter(torch.tensor(3.0))  # tau = e^3 ~ 20 at the start

    def forward(
        self, seq: torch.Tensor, lengths: torch.Tensor, lam: torch.Tensor | None = None
    ) -> torch.Tensor:
        packed = nn.utils.rnn.pack_padded_sequence(
            seq, lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        _, h = self.gru(packed)
        return self.decide(h[-1], lam)

    def decide(self, z: torch.Tensor, lam: torch.Tensor | None) -> torch.Tensor:
        """Logits (B, K) from the GRU's last hidden state ``z`` (B, hidden) and lambda_F (B,)."""
        if lam is None:
            raise ValueError("this selector is conditioned on lambda_F: pass lam")
        lam = lam.view(-1, 1).to(z).clamp(0.0, 1.0)  # the Retriever validates the range; clamping keeps it defined
        return (1 - lam) * self.head(z) + lam * self.log_tau.exp() * self.costs


def gru_flops(input_size: int, hidden: int, steps: int) -> int:
    """FLOPs (2 x MACs) of a 1-layer GRU over ``steps`` inputs: 3 gates x (W_ih x + W_hh h).

    Elementwise gate arithmetic is left out, as FlopCounterMode leaves it out of convolutions.
    """
    return 2 * 3 * hidden * (input_size + hidden) * steps
