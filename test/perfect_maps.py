"""Scenes of people and networks that would find them perfectly, shared by the predictor, ONNX,
cache and fusion tests: the decoder and the un-letterboxing then have known people to recover."""
from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import nn

from kdc_model import KDCNet, ModelConfig, Predictor
from kdc_model.network.heads import HEAD_CHANNELS, LOGIT_HEADS
from kdc_model.training.synthetic import make_scene
from kdc_model.training.targets import encode_targets

SMALL = ModelConfig(input_size=160, output_stride=4, neck_channels=16, head_channels=16)
SIDE = 160  # the letterbox side SMALL gives (160 is a multiple of 32)


class LookupNetwork(nn.Module):
    """Returns the stored raw outputs of the stored input nearest each input: a 'perfect' network."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.anchor = nn.Parameter(torch.zeros(()))  # gives .to()/.eval() a parameter to act on
        self.inputs, self.outputs = [], []

    def add(self, network_input, raw_outputs):
        self.inputs.append(network_input)
        self.outputs.append(raw_outputs)

    def forward(self, images):
        def distance(i, x):  # stored inputs of another letterbox shape never match
            stored = self.inputs[i]
            return float((stored - x).abs().max()) if stored.shape == x.shape else float("inf")

        picks = [min(range(len(self.inputs)), key=lambda i: distance(i, x))
                 for x in images]
        return {k: torch.stack([self.outputs[i][k] for i in picks]) for k in HEAD_CHANNELS}


def to_network_input(scene, box, input_size):
    """The scene's annotation moved into the letterboxed network input of size (H, W)."""
    keypoints = scene.keypoints.copy()
    scale = np.array([box.width / box.original_width, box.height / box.original_height])
    labelled = keypoints[..., 2] > 0
    keypoints[..., :2] = np.where(labelled[..., None], (keypoints[..., :2] + 0.5) * scale - 0.5, 0)

    def place(mask):
        resized = cv2.resize(mask.astype(np.uint8), (box.width, box.height), interpolation=cv2.INTER_NEAREST)
        out = np.zeros(input_size, bool)
        out[:box.height, :box.width] = resized > 0
        return out

    masks = np.stack([place(m) for m in scene.masks]) if len(scene.masks) else np.zeros((0, *input_size), bool)
    return keypoints, masks, place(scene.ignore)


def people_scene(seed, height, width, people=2):
    """1-3 large, fully labelled people, none cut off: each one the decoder must find."""
    rng = np.random.default_rng(seed)
    size = min(height, width)
    return make_scene(rng, height, width, people, min_height=0.7 * size, max_height=0.95 * size,
                      allow_outside=False, unlabelled_fraction=0.0, crowd_probability=0.0)


class SceneNet(nn.Module):
    """KDCNet(SMALL) whose raw outputs have one scene's encoded targets added (broadcast over the batch)."""

    def __init__(self, scene):
        super().__init__()
        torch.manual_seed(0)
        self.net = KDCNet(SMALL)
        self.config = SMALL
        box = Predictor(self.net, device="cpu").preprocess([scene.image])[1][0]
        # Targets on a SIDE x SIDE canvas (the letterbox is anchored top-left); forward crops them to
        # the input it gets, so the exported graph keeps free height and width axes.
        keypoints, masks, ignore = to_network_input(scene, box, (SIDE, SIDE))
        targets = encode_targets(keypoints, masks, ignore, image_size=(SIDE, SIDE), stride=SMALL.output_stride,
                                 radius=SMALL.radius)
        for key in HEAD_CHANNELS:
            target = torch.as_tensor(targets[key], dtype=torch.float32)[None]
            self.register_buffer(key, (target * 2 - 1) * 12.0 if key in LOGIT_HEADS else target)

    def forward(self, images):
        raw = self.net(images)
        return {key: raw[key] + getattr(self, key)[..., :raw[key].shape[-2], :raw[key].shape[-1]] for key in HEAD_CHANNELS}
