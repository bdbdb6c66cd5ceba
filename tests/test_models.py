"""sketchdown/models.py and sketchdown/build.py: every encoder builds and embeds; per-canvas BN;
pruned students; strict weight loading."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from sketchdown.bundles.build import ARCHS, EncoderConfig, build_encoder, imagenet_lite_path
from sketchdown.bundles.flops import param_count
from sketchdown.models.modules import CanvasBatchNorm, EmbeddingEncoder


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_every_arch_embeds(arch: str) -> None:
    torch.manual_seed(0)
    enc = build_encoder(EncoderConfig(arch, embed_dim=24), weights=None)
    assert isinstance(enc, EmbeddingEncoder) and not enc.training
    with torch.inference_mode():
        for canvas in (32, 128):
            x = torch.rand(2, 3, canvas, canvas) * 2 - 1
            e = enc(x)
            assert e.shape == (2, 24) and e.dtype == torch.float32
            torch.testing.assert_close(e.norm(dim=1), torch.ones(2))


def test_imagenet_lite0_loads_the_shipped_backbone() -> None:
    enc = build_encoder("lite0", weights="imagenet")
    state = torch.load(imagenet_lite_path("lite0"), map_location="cpu", weights_only=True)
    bb = enc.backbone
    torch.testing.assert_close(bb.conv_stem.weight, state["_conv_stem.weight"])
    torch.testing.assert_close(bb.conv_head.weight, state["_conv_head.weight"])
    torch.testing.assert_close(bb.bn1.running_var, state["_bn1.running_var"])
    for canvas in (32, 128):
        x = torch.ones(2, 3, canvas, canvas)
        x[1, :, canvas // 4 : canvas // 2, canvas // 4 :] = -1.0  # paper vs a block of ink
        with torch.inference_mode():
            e = enc(x)
        assert e.shape == (2, 256)
        torch.testing.assert_close(e.norm(dim=1), torch.ones(2))
        assert (e[0] - e[1]).abs().max() > 1e-2  # trained features tell the two canvases apart


def test_builder_errors() -> None:
    with pytest.raises(ValueError, match="unknown encoder"):
        build_encoder("vgg99")
    with pytest.raises(ValueError, match="no ImageNet weights"):
        build_encoder("mobilenet_v2", weights="imagenet")
    with pytest.raises(ValueError, match="no ImageNet weights ship"):
        imagenet_lite_path("resnet18")


def test_no_projection_and_classifier_head() -> None:
    enc = build_encoder(EncoderConfig("lite0", embed_dim=0, num_classes=4), weights=None)
    with torch.inference_mode():
        e, logits = enc.forward_with_logits(torch.zeros(3, 3, 32, 32))
    assert e.shape == (3, 1280) and logits.shape == (3, 4)  # pooled features are the embedding
    plain = build_encoder(EncoderConfig("lite0", embed_dim=8), weights=None)
    with torch.inference_mode():
        assert plain.forward_with_logits(torch.zeros(1, 3, 32, 32))[1] is None


def test_canvas_batchnorm_sets_are_independent() -> None:
    torch.manual_seed(0)
    # ImageNet weights: a random-init trunk in eval mode washes out small changes in early layers
    enc = build_encoder(EncoderConfig("lite0", embed_dim=16, num_canvases=2), weights="imagenet")
    cbns = [m for m in enc.modules() if isinstance(m, CanvasBatchNorm)]
    assert cbns and all(len(m.bns) == 2 for m in cbns)
    # every BatchNorm was converted: each one left sits inside a CanvasBatchNorm (which holds 2)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in enc.modules()) == 2 * len(cbns)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.inference_mode():
        a0, a1 = enc(x, 0), enc(x, 1)
    torch.testing.assert_close(a0, a1)  # both sets start as copies of the same BN
    with torch.no_grad():
        cbns[0].bns[1].running_mean += 1.0  # change canvas 1's statistics in one layer (the stem)
    with torch.inference_mode():
        b0, b1 = enc(x, 0), enc(x, 1)
    torch.testing.assert_close(b0, a0)  # canvas 0 untouched
    assert (b1 - a1).abs().max() > 1e-3  # canvas 1 changed


def test_param_count_counts_one_bn_set() -> None:
    one = build_encoder(EncoderConfig("mobilenet_v2_prune2", embed_dim=16), weights=None)
    four = build_encoder(EncoderConfig("mobilenet_v2_prune2", embed_dim=16, num_canvases=4), weights=None)
    assert param_count(four, canvas_index=2) == param_count(one) < param_count(four)


def _channels(model: nn.Module) -> set[int]:
    return {m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)}


def test_pruned_mobilenets() -> None:
    full = build_encoder(EncoderConfig("mobilenet_v2", embed_dim=16), weights=None)
    p1 = build_encoder(EncoderConfig("mobilenet_v2_prune1", embed_dim=16), weights=None)
    p2 = build_encoder(EncoderConfig("mobilenet_v2_prune2", embed_dim=16), weights=None)
    assert param_count(p1) < param_count(full) and param_count(p2) < param_count(full)
    assert {160, 320} <= _channels(full)
    assert not ({160, 320} & _channels(p2))  # the stride-32 blocks are gone
    blocks = lambda m: len(m.backbone.trunk)  # noqa: E731
    assert blocks(p1) < blocks(full) and blocks(p2) < blocks(full)


def test_build_with_state_dict_round_trip() -> None:
    torch.manual_seed(1)
    a = build_encoder(EncoderConfig("lite0", embed_dim=16, num_canvases=2, num_classes=3), weights=None)
    b = build_encoder(EncoderConfig("lite0", embed_dim=16, num_canvases=2, num_classes=3), weights=a.state_dict())
    x = torch.rand(1, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(a(x, 1), b(x, 1))


def test_wrong_state_dict_keys_raise_value_error() -> None:
    good = build_encoder(EncoderConfig("lite0", embed_dim=16), weights=None).state_dict()
    missing = {k: v for k, v in good.items() if not k.startswith("proj.")}
    with pytest.raises(ValueError, match="missing"):
        build_encoder(EncoderConfig("lite0", embed_dim=16), weights=missing)
    other_arch = build_encoder(EncoderConfig("mobilenet_v2_prune2", embed_dim=16), weights=None).state_dict()
    with pytest.raises(ValueError, match="do not fit lite0"):
        build_encoder(EncoderConfig("lite0", embed_dim=16), weights=other_arch)
    with pytest.raises(ValueError, match="unexpected"):  # per-canvas BN weights into a single-canvas model
        build_encoder(
            EncoderConfig("lite0", embed_dim=16),
            weights=build_encoder(EncoderConfig("lite0", embed_dim=16, num_canvases=2), weights=None).state_dict(),
        )


def test_wrong_state_dict_shapes_raise_value_error() -> None:
    other_dim = build_encoder(EncoderConfig("lite0", embed_dim=32), weights=None).state_dict()
    with pytest.raises(ValueError, match="do not fit"):
        build_encoder(EncoderConfig("lite0", embed_dim=16), weights=other_dim)


def test_tradeoff_selector_logits_mirror_the_reward() -> None:
    """costs set: logits = (1 - lambda_F) * head(h) + lambda_F * tau * costs, by hand from the parts;
    lambda_F = 1 picks the cheapest canvas and lambda_F = 0 ignores the costs."""
    from sketchdown.models.modules import CanvasSelector

    torch.manual_seed(0)
    costs = [0.0, -0.2, -0.5, -1.0]
    sel = CanvasSelector(4, hidden=8, costs=costs).eval()
    seq, lens = torch.randn(3, 6, 5), torch.tensor([6, 4, 2])
    lam = torch.tensor([0.0, 0.3, 1.0])
    with torch.inference_mode():
        _, h = sel.gru(torch.nn.utils.rnn.pack_padded_sequence(seq, lens, batch_first=True, enforce_sorted=False))
        head = h[-1] @ sel.head.weight.T + sel.head.bias
        want = (1 - lam[:, None]) * head + lam[:, None] * math.exp(3.0) * torch.tensor(costs)
        got = sel(seq, lens, lam)
    torch.testing.assert_close(got, want)
    assert int(got[2].argmax()) == 0
    torch.testing.assert_close(got[0], head[0])
    # the cost vector travels in the state dict, so a loader must build the same kind of selector
    assert "costs" in sel.state_dict() and "log_tau" in sel.state_dict()
    with pytest.raises(ValueError, match="one value per canvas"):
        CanvasSelector(3, hidden=8, costs=costs)
    # negative lambda_F is clamped to 0 (the Retriever validates the range; this keeps the logits defined)
    with torch.inference_mode():
        torch.testing.assert_close(sel(seq, lens, torch.tensor([-0.1, -1.0, 0.0])), sel(seq, lens, torch.zeros(3)))


def test_vgg16_trunk_is_heds_and_takes_the_library_input() -> None:
    """The VGG-16 backbone loads HED's trunk by name and, fed the library's [-1, 1] RGB, computes exactly what
    HED's own trunk computes on HED's Caffe-style input (BGR, 0..255, mean removed) of the same image."""
    import numpy as np

    from sketchdown.bundles.photo import load_hed
    from sketchdown.models.hed import hed_preprocess

    enc = build_encoder(EncoderConfig("vgg16", embed_dim=8), weights="imagenet")
    hed = load_hed()
    for i in range(1, 6):
        for a, b in zip(getattr(enc.backbone, f"block{i}").state_dict().values(),
                        getattr(hed, f"block{i}").state_dict().values(), strict=True):
            assert torch.equal(a, b)
    img = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    ours = torch.from_numpy(img.astype(np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
    with torch.inference_mode():
        x = hed_preprocess(img)
        ref = hed.block5(hed.block4(hed.block3(hed.block2(hed.block1(x)))))
        got = enc.backbone(ours)
    assert got.shape == (1, 512, 3, 3)
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-3)
