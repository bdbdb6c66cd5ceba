"""Losses shared by training and by the selector's reward (pure functions on tensors)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def triplet_loss(s: torch.Tensor, p: torch.Tensor, margin: float = 0.2, bias: torch.Tensor | None = None) -> torch.Tensor:
    """In-batch triplet loss on unit embeddings: sketch i's positive is photo i, every other
    photo in the batch is a negative (averaged over the violating ones, i.e. batch-all).

    s, p: (B, D) L2-normalised. ``bias`` (B, B), constant: added to the similarities, so the loss is
    on a fused score such as ``cos + alpha * cos(HOG)`` and only the network's part gets gradients.
    Returns a scalar.
    """
    sim = s @ p.T if bias is None else s @ p.T + bias
    d = 2 - 2 * sim  # squared euclidean distance of unit vectors (without bias), (B, B)
    pos = d.diag()[:, None]
    viol = F.relu(pos - d + margin)
    mask = ~torch.eye(len(s), dtype=torch.bool, device=s.device)
    viol = viol[mask]
    n = (viol > 0).sum().clamp(min=1)
    return viol.sum() / n


def info_nce(s: torch.Tensor, p: torch.Tensor, temperature: float = 0.07, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy of sketch i over the batch's photos, target photo i. s, p: (B, D) unit;
    ``bias`` (B, B), constant, added to the similarities (see :func:`triplet_loss`)."""
    sim = s @ p.T if bias is None else s @ p.T + bias
    logits = sim / temperature
    return F.cross_entropy(logits, torch.arange(len(s), device=s.device))


def distance_structure(s: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """For every in-batch triplet (sketch i, photo i, photo j): the distances sketch-positive,
    sketch-negative and positive-negative, as a (B, B, 3) tensor (cosine distance)."""
    dsp = 1 - (s * p).sum(-1)  # (B,)
    dsn = 1 - s @ p.T  # (B, B)
    dpn = 1 - p @ p.T  # (B, B)
    return torch.stack([dsp[:, None].expand_as(dsn), dsn, dpn], -1)


def cross_modal_kd(s_student: torch.Tensor, p_student: torch.Tensor, s_teacher: torch.Tensor, p_teacher: torch.Tensor, delta: float = 0.1) -> torch.Tensor:
    """Cross-modal distillation: Huber loss between the student's and the teacher's triplet
    distance structures (sketch-positive, sketch-negative, positive-negative), off-diagonal pairs."""
    ds = distance_structure(s_student, p_student)
    dt = distance_structure(s_teacher, p_teacher).detach()
    mask = ~torch.eye(len(s_student), dtype=torch.bool, device=s_student.device)
    return F.huber_loss(ds[mask], dt[mask], delta=delta)


def embedding_kd(s_student: torch.Tensor, s_teacher: torch.Tensor) -> torch.Tensor:
    """Feature mimicry: mean cosine distance between the student's and the teacher's sketch embeddings.

    s_student, s_teacher: (B, D) unit. Both live in the teacher's photo space, so matching the teacher's
    sketch embedding asks for its ranking of *every* photo, not only of the batch's. Returns a scalar in [0, 2]."""
    return (1 - (s_student * s_teacher.detach()).sum(-1)).mean()


def gallery_kd(s_student: torch.Tensor, s_teacher: torch.Tensor, photos: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """Ranking distillation over a whole photo set: KL(teacher || student) of the softmax over the
    similarities to ``photos``, at ``temperature`` (InfoNCE's, so the scales match).

    s_student, s_teacher: (B, D) unit; photos: (P, D) unit (every training photo, or per row (B, P, D)).
    Not scaled by T^2: at InfoNCE's temperature its gradients are on InfoNCE's scale already. Returns a scalar."""
    sim_s = torch.einsum("bd,bpd->bp", s_student, photos) if photos.dim() == 3 else s_student @ photos.T
    sim_t = torch.einsum("bd,bpd->bp", s_teacher, photos) if photos.dim() == 3 else s_teacher @ photos.T
    t = temperature
    return F.kl_div(F.log_softmax(sim_s / t, -1), F.softmax(sim_t.detach() / t, -1), reduction="batchmean")


def hinton_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 4.0) -> torch.Tensor:
    """Soft-target distillation (Hinton et al. 2015), scaled by T^2."""
    t = temperature
    return F.kl_div(
        F.log_softmax(student_logits / t, -1), F.softmax(teacher_logits.detach() / t, -1), reduction="batchmean"
    ) * (t * t)
