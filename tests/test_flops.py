"""sketchdown/flops.py: FLOP counts against hand counts and hand-built reference modules."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sketchdown.bundles.build import EncoderConfig, build_encoder
from sketchdown.bundles.flops import count_flops, encoder_flops, param_count, selector_flops
from sketchdown.models.modules import CanvasSelector, gru_flops


@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_hand_count(bias: bool) -> None:
    """FlopCounterMode counts 2 x MACs of a convolution and ignores the bias add: with or without
    a bias the count is 2 * Cin * Cout * k * k * H_out * W_out."""
    cin, cout, k, h, w = 3, 8, 3, 32, 32
    conv = nn.Conv2d(cin, cout, k, padding=1, bias=bias)
    x = torch.zeros(1, cin, h, w)
    assert conv(x).shape[-2:] == (h, w)
    assert count_flops(lambda: conv(x)) == 2 * cin * cout * k * k * h * w  # 442,368
    # batch and stride scale it as expected
    assert count_flops(lambda: conv(torch.zeros(2, cin, h, w))) == 2 * 2 * cin * cout * k * k * h * w
    s2 = nn.Conv2d(cin, cout, k, stride=2, padding=1, bias=bias)
    assert count_flops(lambda: s2(x)) == 2 * cin * cout * k * k * 16 * 16


def test_linear_hand_count() -> None:
    lin = nn.Linear(10, 7)  # bias add ignored, as for convolutions
    assert count_flops(lambda: lin(torch.zeros(4, 10))) == 2 * 4 * 10 * 7
    assert count_flops(lambda: nn.functional.relu(torch.zeros(4, 10))) == 0  # elementwise ops: not counted


def test_encoder_flops_grow_with_area() -> None:
    enc = build_encoder(EncoderConfig("lite0", embed_dim=32), weights=None).train()
    f = {c: encoder_flops(enc, c) for c in (32, 64, 112, 128, 224)}
    assert enc.training  # mode restored
    assert f[32] < f[64] < f[112] < f[128] < f[224]
    assert 3.3 <= f[224] / f[112] <= 4.5
    assert 3.3 <= f[64] / f[32] <= 4.5
    # the projection head is a tiny part and is included: 2 * feat_dim * embed_dim
    bare = build_encoder(EncoderConfig("lite0", embed_dim=0), weights=None)
    assert f[32] - encoder_flops(bare, 32) == 2 * 1280 * 32


def test_encoder_flops_with_classifier() -> None:
    enc = build_encoder(EncoderConfig("lite0", embed_dim=16, num_classes=5), weights=None)
    assert encoder_flops(enc, 32, with_classifier=True) - encoder_flops(enc, 32) == 2 * 1280 * 5


class HandGRU(nn.Module):
    """A 1-layer GRU unrolled by hand with nn.Linear: W_ih (3h x in) and W_hh (3h x h), gates r, z, n."""

    def __init__(self, input_size: int, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.ih = nn.Linear(input_size, 3 * hidden)
        self.hh = nn.Linear(hidden, 3 * hidden)

    def load_from(self, gru: nn.GRU) -> HandGRU:
        with torch.no_grad():
            self.ih.weight.copy_(gru.weight_ih_l0)
            self.ih.bias.copy_(gru.bias_ih_l0)
            self.hh.weight.copy_(gru.weight_hh_l0)
            self.hh.bias.copy_(gru.bias_hh_l0)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, in) -> (B, h)
        h = x.new_zeros(x.shape[0], self.hidden)
        for t in range(x.shape[1]):
            i_r, i_z, i_n = self.ih(x[:, t]).chunk(3, 1)
            h_r, h_z, h_n = self.hh(h).chunk(3, 1)
            r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
            n = torch.tanh(i_n + r * h_n)
            h = (1 - z) * n + z * h
        return h


@pytest.mark.parametrize(("hidden", "steps"), [(16, 1), (32, 7), (64, 20)])
def test_gru_flops_matches_hand_unrolled_gru(hidden: int, steps: int) -> None:
    torch.manual_seed(0)
    gru = nn.GRU(5, hidden, batch_first=True)
    ref = HandGRU(5, hidden).load_from(gru)
    x = torch.randn(1, steps, 5)
    with torch.no_grad():  # the reference really is that GRU
        torch.testing.assert_close(ref(x), gru(x)[1][0], atol=1e-5, rtol=1e-5)
    assert gru_flops(5, hidden, steps) == count_flops(lambda: ref(x))
    assert gru_flops(5, hidden, steps) == 2 * steps * (3 * hidden * 5 + 3 * hidden * hidden)


def test_selector_flops_is_gru_plus_head() -> None:
    steps = 11
    seq = torch.randn(1, steps, 5)
    trade = CanvasSelector(4, hidden=24, costs=[0.0, -0.1, -0.4, -1.0])  # lambda_F enters by elementwise ops only
    assert selector_flops(trade, steps) == gru_flops(5, 24, steps) + 2 * 24 * 4
    # and it agrees with the counter on the real selector (torch 2.x on CPU decomposes the GRU)
    assert count_flops(lambda: trade(seq, torch.tensor([steps]), torch.tensor([0.3]))) == selector_flops(trade, steps)


def test_param_count_per_canvas() -> None:
    one = build_encoder(EncoderConfig("lite0", embed_dim=16, num_canvases=1), weights=None)
    three = build_encoder(EncoderConfig("lite0", embed_dim=16, num_canvases=3), weights=None)
    bn = sum(m.weight.numel() + m.bias.numel() for m in one.modules() if isinstance(m, nn.BatchNorm2d))
    assert param_count(one) == sum(p.numel() for p in one.parameters())
    assert param_count(three) == param_count(one) + 2 * bn  # every canvas' BN set
    assert param_count(three, canvas_index=0) == param_count(one)  # what one canvas uses
    assert param_count(one, canvas_index=0) == param_count(one)


def test_vgg16_flops_match_the_hand_count() -> None:
    """The full network at 256 px: 13 3x3 convolutions (pools halve the side before blocks 2-5) plus the
    projection, 2 x MACs each: ~40.1 GFLOPs, the paper's 40.18 for VGG-16 at this canvas."""
    enc = build_encoder(EncoderConfig("vgg16", embed_dim=256), weights=None)
    blocks = [(3, 64, 2), (64, 128, 2), (128, 256, 3), (256, 512, 3), (512, 512, 3)]
    hand, side = 0, 256
    for i, (cin, cout, n) in enumerate(blocks):
        side = side if i == 0 else (side + 1) // 2
        for j in range(n):
            hand += 2 * (cin if j == 0 else cout) * cout * 9 * side * side
    hand += 2 * 512 * 256
    assert encoder_flops(enc, 256) == hand
    assert 40.0e9 < hand < 40.2e9
