"""KDC's training loss: the paper's Eq. 1 (heatmap BCE), Eq. 4 (KeyCentroid L1), mid-range L1,
segmentation BCE and Eq. 5 (MaskCentroid L1), combined with config.loss_weights.

`outputs` are KDCNet's raw outputs; `targets` are encode_targets dicts stacked on dim 0 (each head
key plus `<key>_weight`). Every term is a mean over the pixels its weight map selects, so it does
not depend on how many people or disks an image holds; offset terms are divided by the disk radius
R so they share the BCE terms' dynamic range (the paper's 1/R normalisation of KeyCentroid).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..network.config import ModelConfig

BCE_HEADS = ("heatmap", "seg")
OFFSET_HEADS = ("short", "mid", "embed")


def kdc_loss(outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor],
             config: ModelConfig) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(weighted total, {head: unweighted term}) for one batch."""
    terms = {}
    for key in BCE_HEADS:
        terms[key] = masked_bce(outputs[key], targets[key], targets[f"{key}_weight"])
    for key in OFFSET_HEADS:
        terms[key] = masked_offset_l1(outputs[key], targets[key], targets[f"{key}_weight"]) / config.radius
    total = sum(config.loss_weights.get(key, 0.0) * term for key, term in terms.items())
    return total, terms


def masked_bce(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy averaged over the pixels where weight > 0 (Eq. 1 with crowd masking)."""
    logits = logits.float()
    weight = weight.to(logits.dtype).expand_as(logits)
    per_pixel = F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype), reduction="none")
    return (per_pixel * weight).sum() / weight.sum().clamp(min=1.0)


def masked_offset_l1(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """||pred - target||_1 of 2-D vectors, averaged over the (pixel, vector) pairs where weight > 0.

    pred/target: [B, 2K, h, w] (channel 2k = x, 2k + 1 = y); weight: [B, K, h, w].
    """
    pred = pred.float()
    b, c, h, w = pred.shape
    error = (pred - target.to(pred.dtype)).abs().view(b, c // 2, 2, h, w).sum(dim=2)
    weight = weight.to(pred.dtype)
    return (error * weight).sum() / weight.sum().clamp(min=1.0)
