"""kdc_loss: masked means, offsets in units of R, weights only where the targets say so."""
import torch
import torch.nn.functional as F

from kdc_model import ModelConfig
from kdc_model.network.heads import HEAD_CHANNELS, WEIGHT_CHANNELS
from kdc_model.training.losses import kdc_loss


def _batch(h=6, w=5):
    torch.manual_seed(0)
    targets = {}
    for key, channels in HEAD_CHANNELS.items():
        targets[key] = torch.randn(2, channels, h, w) * 10 if key not in ("heatmap", "seg") else \
            (torch.rand(2, channels, h, w) > 0.7).float()
        targets[f"{key}_weight"] = (torch.rand(2, WEIGHT_CHANNELS[key], h, w) > 0.5).float()
    return targets


def test_perfect_offsets_cost_nothing_and_unweighted_pixels_are_ignored():
    config = ModelConfig()
    targets = _batch()
    outputs = {k: targets[k].clone() for k in HEAD_CHANNELS}
    outputs["heatmap"] = outputs["heatmap"] * 40 - 20  # confident, correct logits
    outputs["seg"] = outputs["seg"] * 40 - 20
    for key in ("short", "mid", "embed"):
        outside = (targets[f"{key}_weight"] == 0).repeat_interleave(2, dim=1)
        outputs[key][outside] += 1000.0  # wrong only where the loss must not look
    _, terms = kdc_loss(outputs, targets, config)
    for key, term in terms.items():
        assert term.item() < 1e-6, (key, term)


def test_offset_term_is_mean_l1_over_weighted_vectors_in_units_of_r():
    config = ModelConfig()
    targets = _batch()
    outputs = {k: targets[k].clone() for k in HEAD_CHANNELS}
    outputs["short"] = targets["short"] + 3.0  # |dx| + |dy| = 6 px at every vector
    _, terms = kdc_loss(outputs, targets, config)
    assert abs(terms["short"].item() - 6.0 / config.radius) < 1e-5


def test_bce_term_is_the_mean_over_weighted_pixels_and_total_uses_loss_weights():
    config = ModelConfig()
    targets = _batch()
    outputs = {k: torch.randn_like(targets[k]) for k in HEAD_CHANNELS}
    total, terms = kdc_loss(outputs, targets, config)
    weight = targets["heatmap_weight"].bool()
    expected = F.binary_cross_entropy_with_logits(outputs["heatmap"][weight], targets["heatmap"][weight])
    torch.testing.assert_close(terms["heatmap"], expected)
    torch.testing.assert_close(total, sum(config.loss_weights[k] * t for k, t in terms.items()))
