"""KDCNet: a torchvision backbone, a light FPN-style neck down to the output stride, one head per map.

The layout of the outputs is kdc_model.network.heads. Logit heads (heatmap, seg) return logits; offset heads
(short, mid, embed) return input pixels, because their last conv is scaled by the disk radius: the
raw conv then works in units of R, which keeps the regression targets near [-1, 1].

forward() has no data-dependent Python control flow, so it traces/exports as is; every op works in
channels-last memory format.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models._utils import IntermediateLayerGetter

from .config import ModelConfig
from .heads import HEAD_CHANNELS, LOGIT_HEADS

# What an input image is normalised with, per RGB channel of [0, 1] pixels: the statistics of the
# backbones' ImageNet pretraining, which every KDCNet expects (the predictor and the training data
# both normalise with these).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Per backbone: the module that holds the feature stages, the stage ending at each stride
# (4, 8, 16, 32), the channels there, and the prefix its ImageNet state dict puts before those stages.
_MOBILENET_STAGES = {"3": 4, "6": 8, "13": 16, "17": 32}
_MOBILENET_CHANNELS = {4: 24, 8: 32, 16: 96, 32: 320}
_RESNET_STAGES = {"layer1": 4, "layer2": 8, "layer3": 16, "layer4": 32}
_RESNET_CHANNELS = {4: 256, 8: 512, 16: 1024, 32: 2048}

# Prior probability of a positive heatmap/seg cell at initialisation (RetinaNet's bias trick):
# starting near the true positive rate keeps the early BCE gradients from swamping the offsets.
_LOGIT_PRIOR = 0.01


class Backbone(nn.Module):
    """A torchvision classifier cut into stages; forward returns {stride: features} for 4, 8, 16, 32."""

    def __init__(self, name: str) -> None:
        super().__init__()
        if name == "mobilenet_v2":
            trunk = torchvision.models.mobilenet_v2(weights=None).features
            stages, self.channels, self.imagenet_prefix = _MOBILENET_STAGES, _MOBILENET_CHANNELS, "features."
        else:
            trunk = getattr(torchvision.models, name)(weights=None)
            stages, self.channels, self.imagenet_prefix = _RESNET_STAGES, _RESNET_CHANNELS, ""
        # Keeps torchvision's module names, so ImageNet weights load key for key (minus the prefix).
        self.body = IntermediateLayerGetter(trunk, return_layers={k: str(v) for k, v in stages.items()})

    def forward(self, images: torch.Tensor) -> dict[int, torch.Tensor]:
        return {int(k): v for k, v in self.body(images).items()}


def _separable_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Depthwise 3x3 + pointwise 1x1, each with BN + ReLU: a cheap 3x3 receptive field."""
    return nn.Sequential(
        nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels, bias=False),
        nn.BatchNorm2d(in_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(in_channels, out_channels, 1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class UpsamplingNeck(nn.Module):
    """FPN-style top-down merge from stride 32 down to `output_stride`: upsample, add lateral, smooth."""

    def __init__(self, in_channels: dict[int, int], output_stride: int, channels: int) -> None:
        super().__init__()
        self.strides = [s for s in (32, 16, 8, 4) if s >= output_stride]
        self.lateral = nn.ModuleDict({
            str(s): nn.Sequential(nn.Conv2d(in_channels[s], channels, 1, bias=False),
                                  nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
            for s in self.strides})
        self.smooth = nn.ModuleDict({str(s): _separable_block(channels, channels) for s in self.strides[1:]})

    def forward(self, features: dict[int, torch.Tensor]) -> torch.Tensor:
        x = self.lateral["32"](features[32])
        for s in self.strides[1:]:
            lateral = self.lateral[str(s)](features[s])
            x = F.interpolate(x, size=lateral.shape[-2:], mode="bilinear", align_corners=False)
            x = self.smooth[str(s)](x + lateral)
        return x


class _ResidualBlock(nn.Module):
    """x + a separable block (dilated: a wider view at no extra cost) that ends at its BatchNorm (a
    ReLU after a zero output would pass no gradient), the BatchNorm starting at zero, so adding one
    to a trained network starts from the same function."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.body = _separable_block(channels, channels)[:-1]
        self.body[0] = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, groups=channels, bias=False)
        nn.init.zeros_(self.body[4].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Head(nn.Module):
    """One output map: a separable 3x3 block (then depth - 1 residual ones, dilated 2, 4, 2, ...) and a
    1x1 conv to the map's channels, times `scale`."""

    def __init__(self, in_channels: int, channels: int, out_channels: int, scale: float, bias_init: float,
                 depth: int = 1) -> None:
        super().__init__()
        self.block = _separable_block(in_channels, channels)
        self.more = nn.Sequential(*(_ResidualBlock(channels, dilation=(2, 4)[i % 2]) for i in range(depth - 1)))
        self.out = nn.Conv2d(channels, out_channels, 1)
        nn.init.normal_(self.out.weight, std=0.01)
        nn.init.constant_(self.out.bias, bias_init)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.more(self.block(x))) * self.scale


class KDCNet(nn.Module):
    """The KDC network: images [B, 3, H, W] (ImageNet-normalised, H and W multiples of 32) ->
    {head: [B, C, H / s, W / s]} raw outputs (logits / input-pixel offsets), s = config.output_stride."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = Backbone(config.backbone)
        self.neck = UpsamplingNeck(self.backbone.channels, config.output_stride, config.neck_channels)
        logit_bias = -math.log((1 - _LOGIT_PRIOR) / _LOGIT_PRIOR)
        self.heads = nn.ModuleDict({
            key: Head(config.neck_channels, config.head_channels, channels,
                      scale=1.0 if key in LOGIT_HEADS else config.radius,
                      bias_init=logit_bias if key in LOGIT_HEADS else 0.0, depth=config.head_depth)
            for key, channels in HEAD_CHANNELS.items()})

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.neck(self.backbone(images))
        return {key: head(x) for key, head in self.heads.items()}
