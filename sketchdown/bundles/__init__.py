"""Weight sets: the safetensors format and its strict loader, the builders, photo preprocessing, FLOP
counting, and :class:`ModelBundle` (one photo encoder, sketch encoders, an optional selector)."""

from sketchdown.bundles.build import EncoderConfig, build_encoder
from sketchdown.bundles.bundle import ModelBundle, SelectorSpec, SketchBranch, load_bundle
from sketchdown.bundles.flops import count_flops, encoder_flops, param_count, selector_flops
from sketchdown.bundles.manifest import Manifest, load_manifest
from sketchdown.bundles.photo import PhotoSpec
from sketchdown.bundles.weights import WeightsError

__all__ = ["EncoderConfig", "Manifest", "ModelBundle", "PhotoSpec", "SelectorSpec", "SketchBranch", "WeightsError", "build_encoder",
           "count_flops", "encoder_flops", "load_bundle", "load_manifest", "param_count", "selector_flops"]
