"""The VGG-16 teacher's cached early blocks: the split trunk computes what the whole one does, batches pair
each sketch with its own photo mirrored the same way, and the training script runs in smoke mode."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sketchdown.bundles.build import EncoderConfig, build_encoder


def test_prefix_then_cached_head_equals_the_whole_encoder() -> None:
    from training.teacher_cache import embed_cached, prefix, vgg_trunk

    torch.manual_seed(0)
    enc = build_encoder(EncoderConfig("vgg16", 16, 1, 3), weights=None).eval()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        ref_e, ref_l = enc.forward_with_logits(x)
        for n in (1, 4):
            e, lg = embed_cached(enc, prefix(vgg_trunk(enc), x, n), n)
            torch.testing.assert_close(e, ref_e, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(lg, ref_l, rtol=1e-4, atol=1e-4)


def test_cached_batches_pair_sketches_with_their_photos_mirrored_alike() -> None:
    from training.synthetic import synthetic_source
    from training.teacher_cache import build_cache, sample_cached, vgg_trunk

    torch.manual_seed(0)
    enc = build_encoder(EncoderConfig("vgg16", 16, 1, 0), weights=None)
    src = synthetic_source(5, sketches_per_photo=2, seed=3)
    cache = build_cache(vgg_trunk(enc), src, 2, 32, 32, variants=3, photo_variants=2, seed=0)
    assert cache.sketch.shape[0] == 10 * 3 and cache.photo.shape[0] == 5 * 2 * 2
    assert cache.sketch.dtype == torch.float16 and cache.sketch_flips[1::3].all() and not cache.sketch_flips[0::3].any()
    # a mirrored photo's features are not the plain one's: the flag reaches the cached input
    assert not torch.equal(cache.photo[cache.photo_row(0, False, 0)], cache.photo[cache.photo_row(0, True, 0)])
    rng = np.random.default_rng(0)
    for _ in range(20):
        b = sample_cached(cache, src, 4, rng, {})
        assert b["fs"].shape[0] == b["fp"].shape[0] == 4 and (b["labels"] == -1).all()
    # the pairing rule, replayed with the same draws
    rng, check = np.random.default_rng(1), np.random.default_rng(1)
    b = sample_cached(cache, src, 4, rng, {})
    photos = check.choice(5, size=4, replace=False)
    for j, p in enumerate(photos):
        i = int(check.choice(src.sketches_by_photo[int(p)]))
        assert src.data.sketches[i].photo == int(p)
        r = i * 3 + int(check.integers(3))
        a = int(check.integers(2))
        torch.testing.assert_close(b["fs"][j], cache.sketch[r].float())
        torch.testing.assert_close(b["fp"][j], cache.photo[cache.photo_row(int(p), bool(cache.sketch_flips[r]), a)].float())


def test_train_teacher_from_cached_features_smoke(tmp_path: Path) -> None:
    from training import train_teacher

    r = train_teacher.main(["--smoke", "--arch", "vgg16", "--canvas", "32", "--photo-size", "32", "--share-trunk",
                            "--cls-weight", "0", "--freeze-blocks", "4", "--cache-blocks", "4", "--workers", "0",
                            "--out", str(tmp_path / "t")])
    assert r["steps"] == 4 and (tmp_path / "t" / "best.pt").is_file()
    assert json.loads((tmp_path / "t" / "run.json").read_text())["config"]["cache_blocks"] == 4
    with pytest.raises(SystemExit, match="share-trunk"):
        train_teacher.main(["--smoke", "--arch", "vgg16", "--canvas", "32", "--photo-size", "32", "--cls-weight", "0",
                            "--freeze-blocks", "4", "--cache-blocks", "4", "--out", str(tmp_path / "u")])
