"""nn.Modules only: backbones, the embedding encoder, the canvas selector policy, HED, and the losses.
No file I/O here; :mod:`sketchdown.bundles.build` assembles these and loads their weights."""

from sketchdown.models.hed import HED
from sketchdown.models.modules import CanvasSelector, EmbeddingEncoder, LiteFeatures, TorchvisionFeatures, VGGFeatures

__all__ = ["HED", "CanvasSelector", "EmbeddingEncoder", "LiteFeatures", "TorchvisionFeatures", "VGGFeatures"]
