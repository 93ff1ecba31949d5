"""Training-time augmentation of one image with its people: a random similarity transform (scale,
rotation, translation) into the square training crop, a horizontal flip that swaps left/right
keypoints, and colour jitter. Copy-paste lives in kdc_model.training.copy_paste.

Every random choice comes from the numpy Generator passed in, so a sample is a pure function of
its seed. Coordinates follow the pixel-centre convention of kdc_model.skeleton (pixel (0, 0) is
centred at x = y = 0), which is also cv2.warpAffine's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..skeleton import FLIP_INDEX, flip_keypoints

# Grey fill for the area outside the source image: close to the ImageNet mean, so padding
# normalises to ~0 like the letterbox the predictor uses.
PAD_VALUE = (124, 116, 104)


@dataclass
class PeopleSample:
    """One training image and its people, in the same pixel frame.

    keypoints [N, 17, 3] (x, y, v; v > 0 = labelled), masks [N, H, W] bool, has_mask [N] bool
    (False: the person's pixels are unknown, not background), ignore [H, W] bool (crowd and
    unlabelled areas), keypoint_labelled [17] bool (channels this image's source labels at all).
    """

    image: np.ndarray
    keypoints: np.ndarray
    masks: np.ndarray
    has_mask: np.ndarray
    ignore: np.ndarray
    keypoint_labelled: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        return self.image.shape[0], self.image.shape[1]


@dataclass
class AugmentConfig:
    """The `augment` section of a training recipe."""

    scale_range: tuple[float, float] = (0.65, 1.4)   # x the scale that letterboxes the image to input_size
    rotation_deg: float = 30.0                       # uniform in +-rotation_deg
    flip_prob: float = 0.5
    brightness: float = 0.3                          # multiplicative, 1 +- brightness
    contrast: float = 0.3
    saturation: float = 0.3
    hue_deg: float = 8.0
    one_person_height: tuple[float, float] = (0.35, 0.8)  # crop fraction of a one-person image's person
    copy_paste_prob: float = 0.5                     # chance that an image gets pasted people at all
    copy_paste_max: int = 3                          # 1..max people pasted then
    paste_height: tuple[float, float] = (0.25, 0.9)  # pasted person's height, fraction of the crop
    paste_min_keypoints: int = 6                     # donors need this many labelled keypoints
    enabled: bool = True                             # False: letterbox only (validation-style)

    @classmethod
    def from_dict(cls, d: dict) -> "AugmentConfig":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"augment: unknown keys {sorted(unknown)}")
        d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**d)


def similarity_matrix(centre_src: tuple[float, float], centre_dst: tuple[float, float],
                      scale: float, angle_deg: float) -> np.ndarray:
    """2x3 matrix mapping source pixels to destination pixels: rotate/scale about centre_src, move it to centre_dst."""
    a = math.radians(angle_deg)
    c, s = scale * math.cos(a), scale * math.sin(a)
    rot = np.array([[c, -s], [s, c]], np.float64)
    shift = np.asarray(centre_dst, np.float64) - rot @ np.asarray(centre_src, np.float64)
    return np.concatenate([rot, shift[:, None]], axis=1)


def sample_image_transform(rng: np.random.Generator, height: int, width: int, crop: int,
                           input_size: int, cfg: AugmentConfig) -> np.ndarray:
    """Random transform of a whole multi-person image into a crop x crop square.

    Base scale letterboxes the image to `input_size` (the inference resolution), so people in
    training crops have the sizes the network sees at inference time.
    """
    scale = input_size / max(height, width)
    angle = 0.0
    if cfg.enabled:
        scale *= rng.uniform(*cfg.scale_range)
        angle = rng.uniform(-cfg.rotation_deg, cfg.rotation_deg)
    # Choose which part of the scaled image lands in the crop: anywhere when it is larger, centred otherwise.
    centre = []
    for extent in (width, height):
        scaled = extent * scale
        slack = max(scaled - crop, 0.0) / 2.0
        offset = rng.uniform(-slack, slack) if cfg.enabled else 0.0
        centre.append((extent - 1) / 2.0 + offset / scale)
    return similarity_matrix(tuple(centre), ((crop - 1) / 2.0, (crop - 1) / 2.0), scale, angle)


def sample_person_transform(rng: np.random.Generator, box: np.ndarray, crop: int, cfg: AugmentConfig) -> np.ndarray:
    """Random transform centring one person's box (x0, y0, x1, y1) in a crop x crop square."""
    x0, y0, x1, y1 = box
    extent = max(x1 - x0, y1 - y0, 1.0)
    if cfg.enabled:
        height_fraction = rng.uniform(*cfg.one_person_height)
        angle = rng.uniform(-cfg.rotation_deg, cfg.rotation_deg)
        jitter = rng.uniform(-0.1, 0.1, size=2) * extent
    else:
        height_fraction, angle, jitter = sum(cfg.one_person_height) / 2, 0.0, np.zeros(2)
    centre = ((x0 + x1) / 2 + jitter[0], (y0 + y1) / 2 + jitter[1])
    return similarity_matrix(centre, ((crop - 1) / 2.0, (crop - 1) / 2.0), height_fraction * crop / extent, angle)


def warp_sample(sample: PeopleSample, matrix: np.ndarray, crop: int) -> PeopleSample:
    """Apply a 2x3 transform to the image, keypoints, masks and ignore region."""
    size = (crop, crop)
    image = cv2.warpAffine(sample.image, matrix, size, flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=PAD_VALUE)
    masks = np.zeros((len(sample.masks), crop, crop), bool)
    for i, mask in enumerate(sample.masks):
        if sample.has_mask[i]:
            masks[i] = cv2.warpAffine(mask.astype(np.uint8), matrix, size, flags=cv2.INTER_NEAREST) > 0
    ignore = cv2.warpAffine(sample.ignore.astype(np.uint8), matrix, size, flags=cv2.INTER_NEAREST) > 0
    keypoints = sample.keypoints.copy()
    if len(keypoints):
        xy = keypoints[..., :2].astype(np.float64)
        keypoints[..., :2] = (xy @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)
        keypoints[keypoints[..., 2] <= 0] = 0.0  # unlabelled points carry no position
    return PeopleSample(image, keypoints, masks, sample.has_mask.copy(), ignore, sample.keypoint_labelled.copy())


def flip_sample(sample: PeopleSample) -> PeopleSample:
    """Mirror horizontally; left/right keypoints swap slots (skeleton.flip_keypoints)."""
    width = sample.image.shape[1]
    keypoints = flip_keypoints(sample.keypoints, width) if len(sample.keypoints) else sample.keypoints.copy()
    keypoints[keypoints[..., 2] <= 0] = 0.0
    labelled = sample.keypoint_labelled[list(FLIP_INDEX)]
    return PeopleSample(np.ascontiguousarray(sample.image[:, ::-1]), keypoints,
                        np.ascontiguousarray(sample.masks[:, :, ::-1]), sample.has_mask.copy(),
                        np.ascontiguousarray(sample.ignore[:, ::-1]), labelled)


def jitter_colour(rng: np.random.Generator, image: np.ndarray, cfg: AugmentConfig) -> np.ndarray:
    """Random brightness, contrast, saturation and hue of an RGB uint8 image."""
    out = image.astype(np.float32)
    out *= rng.uniform(1 - cfg.brightness, 1 + cfg.brightness)
    mean = out.mean()
    out = (out - mean) * rng.uniform(1 - cfg.contrast, 1 + cfg.contrast) + mean
    grey = out.mean(axis=2, keepdims=True)
    out = (out - grey) * rng.uniform(1 - cfg.saturation, 1 + cfg.saturation) + grey
    out = np.clip(out, 0, 255).astype(np.uint8)
    if cfg.hue_deg > 0:
        hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV)
        shift = int(round(rng.uniform(-cfg.hue_deg, cfg.hue_deg) / 2))  # OpenCV hue is 0..179 (2 deg units)
        hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + shift) % 180).astype(np.uint8)
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return out
