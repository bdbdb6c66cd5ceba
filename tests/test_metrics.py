"""sketchdown/metrics.py on hand-computed cases and against a loop reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sketchdown.eval.metrics import acc_at, early_retrieval, prefix_fractions, rank_of_true, summary


def test_rank_of_true_hand_case_with_ties() -> None:
    sims = np.array([[0.9, 0.5, 0.1], [0.2, 0.2, 0.2], [0.1, 0.3, 0.3], [0.4, 0.8, 0.6]])
    true = np.array([0, 1, 1, 0])
    ranks = rank_of_true(sims, true)
    # best; three-way tie -> last (pessimistic); two-way tie -> 2nd; two better -> 3rd
    np.testing.assert_array_equal(ranks, [1, 3, 2, 3])
    assert ranks.dtype == np.int64


def test_rank_of_true_matches_loop_reference() -> None:
    rng = np.random.default_rng(0)
    sims = rng.integers(0, 5, (50, 12)).astype(np.float32)  # small integers: many ties
    true = rng.integers(0, 12, 50)
    ref = []
    for q in range(50):
        t = sims[q, true[q]]
        better = sum(1 for g in range(12) if sims[q, g] > t)
        tied_others = sum(1 for g in range(12) if g != true[q] and sims[q, g] == t)
        ref.append(1 + better + tied_others)
    np.testing.assert_array_equal(rank_of_true(sims, true), ref)


def test_acc_at_and_summary() -> None:
    ranks = np.array([1, 3, 2, 10])
    assert acc_at(ranks, 1) == 25.0
    assert acc_at(ranks, 2) == 50.0
    assert acc_at(ranks, 5) == 75.0
    assert acc_at(ranks, 10) == 100.0
    assert math.isnan(acc_at(np.array([], int), 1))
    s = summary(ranks)
    assert s == {"acc@1": 25.0, "acc@5": 75.0, "acc@10": 100.0, "mean_rank": 4.0, "median_rank": 2.5}


def test_early_retrieval_hand_cases() -> None:
    # G = 10: one sketch always first, one always last
    m = early_retrieval(np.array([[1, 1], [10, 10]]), 10)
    assert m["m@A"] == pytest.approx(50.0)  # percentiles 1, 1, 0, 0
    assert m["m@B"] == pytest.approx((1 + 0.1) / 2 * 100)  # 1/rank: 1, 1, 0.1, 0.1 -> 55
    # G = 5, three prefix steps: percentiles (5 - r) / 4
    m = early_retrieval(np.array([[1, 2, 3], [5, 5, 1]]), 5)
    assert m["m@A"] == pytest.approx(100 * (1 + 0.75 + 0.5 + 0 + 0 + 1) / 6)
    assert m["m@B"] == pytest.approx(100 * (1 + 1 / 2 + 1 / 3 + 1 / 5 + 1 / 5 + 1) / 6)
    perfect = early_retrieval(np.ones((3, 4)), 7)
    assert perfect == {"m@A": 100.0, "m@B": 100.0}


def test_prefix_fractions() -> None:
    assert list(prefix_fractions(4)) == [0.25, 0.5, 0.75, 1.0]
    f = prefix_fractions()
    assert len(f) == 20 and f[0] == pytest.approx(0.05) and f[-1] == 1.0
    assert all(b > a for a, b in zip(f, f[1:], strict=False))


def test_classification_report_hand_case():
    from sketchdown.eval.metrics import classification_report

    # classes 0,1,2 in truth; one 0 predicted as 1, one 2 predicted as 3 (a class absent from truth)
    y = np.array([0, 0, 0, 1, 1, 2, 2])
    p = np.array([0, 0, 1, 1, 1, 2, 3])
    r = classification_report(y, p)
    assert r["accuracy"] == pytest.approx(100 * 5 / 7)
    prec = [2 / 2, 2 / 3, 1 / 1]
    rec = [2 / 3, 2 / 2, 1 / 2]
    f1 = [2 * a * b / (a + b) for a, b in zip(prec, rec, strict=True)]
    assert r["precision"] == pytest.approx(100 * np.mean(prec))
    assert r["recall"] == pytest.approx(100 * np.mean(rec))
    assert r["f1"] == pytest.approx(100 * np.mean(f1))
    with pytest.raises(ValueError, match="equal-length"):
        classification_report(y, p[:-1])


def test_fused_losses_equal_the_losses_on_concatenated_vectors() -> None:
    """A constant bias alpha * cos(HOG) added to the similarities is the same loss as on the
    concatenated vectors [s, sqrt(alpha) h_s] . [p, sqrt(alpha) h_p], and only the network's part
    gets a gradient."""
    import torch
    import torch.nn.functional as F

    from sketchdown.models.losses import info_nce, triplet_loss

    g = torch.Generator().manual_seed(0)
    s = F.normalize(torch.randn(6, 8, generator=g), dim=1).requires_grad_()
    p = F.normalize(torch.randn(6, 8, generator=g), dim=1)
    hs, hp = F.normalize(torch.randn(6, 5, generator=g), dim=1), F.normalize(torch.randn(6, 5, generator=g), dim=1)
    alpha = 3.0
    bias = alpha * hs @ hp.T
    cs, cp = torch.cat([s, alpha**0.5 * hs], 1), torch.cat([p, alpha**0.5 * hp], 1)
    assert torch.allclose(info_nce(s, p, 0.1, bias), info_nce(cs, cp, 0.1), atol=1e-5)
    assert torch.allclose(triplet_loss(s, p, 0.2, bias), triplet_loss(cs, cp, 0.2), atol=1e-5)
    assert not torch.allclose(info_nce(s, p, 0.1, bias), info_nce(s, p, 0.1))  # the bias changes the loss
    info_nce(s, p, 0.1, bias).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0


def test_distillation_terms_against_hand_computations() -> None:
    """embedding_kd is the mean cosine distance; gallery_kd is sum_p q log(q / p) over the photo softmaxes,
    the same whether the photos are shared (P, D) or given per row (B, P, D); both vanish when the student
    is the teacher, and only the student gets a gradient."""
    import math

    import torch
    import torch.nn.functional as F

    from sketchdown.models.losses import embedding_kd, gallery_kd

    g = torch.Generator().manual_seed(1)
    s = F.normalize(torch.randn(3, 4, generator=g), dim=1).requires_grad_()
    t = F.normalize(torch.randn(3, 4, generator=g), dim=1).requires_grad_()
    photos = F.normalize(torch.randn(5, 4, generator=g), dim=1)
    cos = [sum(float(s[i, k]) * float(t[i, k]) for k in range(4)) for i in range(3)]
    assert math.isclose(float(embedding_kd(s, t)), sum(1 - c for c in cos) / 3, rel_tol=1e-5)
    tau, kl = 0.5, 0.0
    for i in range(3):
        zs = [sum(float(s[i, k]) * float(photos[j, k]) for k in range(4)) / tau for j in range(5)]
        zt = [sum(float(t[i, k]) * float(photos[j, k]) for k in range(4)) / tau for j in range(5)]
        ps = [math.exp(z) / sum(math.exp(v) for v in zs) for z in zs]
        pt = [math.exp(z) / sum(math.exp(v) for v in zt) for z in zt]
        kl += sum(q * math.log(q / p) for p, q in zip(ps, pt, strict=True)) / 3
    assert math.isclose(float(gallery_kd(s, t, photos, tau)), kl, rel_tol=1e-4)
    per_row = photos[None].expand(3, 5, 4)
    assert torch.allclose(gallery_kd(s, t, per_row, tau), gallery_kd(s, t, photos, tau), atol=1e-6)
    assert float(embedding_kd(t, t)) < 1e-6 and float(gallery_kd(t, t, photos, tau)) < 1e-6
    (embedding_kd(s, t) + gallery_kd(s, t, photos, tau)).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0 and t.grad is None
