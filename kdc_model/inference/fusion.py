"""An inference copy of a network with every BatchNorm folded into the convolution before it.

In eval mode a BatchNorm2d is a fixed per-channel scale and shift, which the preceding Conv2d can
absorb (its weights scaled, its bias shifted): one op less per layer and the same outputs up to
float rounding. Together with the channels-last memory format it takes about a third off the
PyTorch CPU time of the default network on one thread (docs/bench.md). The trained model and its
checkpoints are never changed: the folding happens on a copy.
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights


def _conv_bn_pairs(model: nn.Module) -> list[tuple[nn.Module, str, str]]:
    """(parent, conv name, bn name) for each BatchNorm2d that directly follows a Conv2d in a parent's
    children: the Conv-BN(-ReLU) sequences of torchvision backbones and of kdc_model.network.kdcnet."""
    pairs = []
    for parent in model.modules():
        names = list(parent._modules)
        for conv, bn in zip(names, names[1:]):
            first, second = parent._modules[conv], parent._modules[bn]
            if (isinstance(first, nn.Conv2d) and isinstance(second, nn.BatchNorm2d)
                    and second.running_mean is not None and second.num_features == first.out_channels):
                pairs.append((parent, conv, bn))
    return pairs


def fused_for_inference(model: nn.Module) -> nn.Module:
    """An eval-mode copy of `model` with each Conv2d + BatchNorm2d pair folded into one Conv2d (the
    BatchNorm replaced by Identity), or `model` itself when it has no such pair. The folding runs in
    float32 whatever the model's dtype, so half-precision weights lose nothing extra."""
    if not _conv_bn_pairs(model):
        return model
    fused = copy.deepcopy(model).eval()
    for parent, conv_name, bn_name in _conv_bn_pairs(fused):
        conv, bn = parent._modules[conv_name], parent._modules[bn_name]
        weight, bias = fuse_conv_bn_weights(
            conv.weight.float(), None if conv.bias is None else conv.bias.float(), bn.running_mean.float(),
            bn.running_var.float(), bn.eps, None if bn.weight is None else bn.weight.float(),
            None if bn.bias is None else bn.bias.float())
        folded = copy.deepcopy(conv)
        folded.weight = nn.Parameter(weight.to(conv.weight.dtype), requires_grad=False)
        folded.bias = nn.Parameter(bias.to(conv.weight.dtype), requires_grad=False)
        parent._modules[conv_name], parent._modules[bn_name] = folded, nn.Identity()
    return fused
