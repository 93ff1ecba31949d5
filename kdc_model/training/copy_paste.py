"""Copy-paste augmentation: masked people cut from other images are pasted onto a training crop, at
other scales and places, overlapping whoever is there; their keypoints and masks come along.

The few hundred COCO people with keypoints are too few to learn crowded scenes from; pasting them
onto other images (and onto each other) multiplies the people and the occlusions the network sees.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .augment import AugmentConfig, PeopleSample
from ..skeleton import FLIP_INDEX, flip_keypoints


@dataclass
class Donor:
    """One person cut out of its image: pixels and mask of its bounding box, keypoints in that box."""

    image: np.ndarray          # [h, w, 3] uint8 RGB
    mask: np.ndarray           # [h, w] bool
    keypoints: np.ndarray      # [17, 3], x/y relative to the box
    keypoint_labelled: np.ndarray  # [17] bool: channels the donor's source labels


def cut_donor(image: np.ndarray, mask: np.ndarray, keypoints: np.ndarray, keypoint_labelled: np.ndarray) -> Donor | None:
    """The Donor for one person of a full image, or None when its mask is empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    kp = keypoints.copy()
    kp[:, 0] -= x0
    kp[:, 1] -= y0
    kp[kp[:, 2] <= 0] = 0.0
    return Donor(image[y0:y1, x0:x1].copy(), mask[y0:y1, x0:x1].copy(), kp, keypoint_labelled.copy())


def paste_donor(rng: np.random.Generator, sample: PeopleSample, donor: Donor, cfg: AugmentConfig) -> PeopleSample:
    """`sample` with `donor` pasted on top at a random scale, position and flip (in place on a copy).

    Pixels the donor covers leave the masks of the people beneath and the ignore region (they are
    known now: donor pixels). Keypoints beneath stay labelled, as COCO labels occluded keypoints.
    """
    height, width = sample.size
    h, w = donor.mask.shape
    scale = rng.uniform(*cfg.paste_height) * height / h
    new_w, new_h = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    pixels = cv2.resize(donor.image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    alpha = cv2.resize(donor.mask.astype(np.float32), (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    keypoints = donor.keypoints.copy()
    keypoints[:, :2] = (keypoints[:, :2] + 0.5) * (new_w / w, new_h / h) - 0.5
    labelled = donor.keypoint_labelled
    if rng.random() < 0.5:
        pixels, alpha = pixels[:, ::-1], alpha[:, ::-1]
        keypoints = flip_keypoints(keypoints, new_w)
        labelled = labelled[list(FLIP_INDEX)]
    # Top-left so that the donor's centre lands inside the crop (it may hang over the border).
    x0 = int(rng.integers(-new_w // 2, width - new_w // 2))
    y0 = int(rng.integers(-new_h // 2, height - new_h // 2))
    # The part of the donor box that lies inside the crop.
    cx0, cy0 = max(x0, 0), max(y0, 0)
    cx1, cy1 = min(x0 + new_w, width), min(y0 + new_h, height)
    if cx1 <= cx0 or cy1 <= cy0:
        return sample
    src = (slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0))
    dst = (slice(cy0, cy1), slice(cx0, cx1))
    # Feather the edge a little so the network cannot find people by their cut-out borders.
    soft = cv2.GaussianBlur(np.ascontiguousarray(alpha[src]), (3, 3), 0)[..., None]
    image = sample.image.copy()
    image[dst] = (soft * pixels[src] + (1 - soft) * image[dst]).astype(np.uint8)
    mask = np.zeros((height, width), bool)
    mask[dst] = alpha[src] >= 0.5
    if not mask.any():
        return sample
    keypoints[:, 0] += x0
    keypoints[:, 1] += y0
    keypoints[keypoints[:, 2] <= 0] = 0.0
    return PeopleSample(
        image=image,
        keypoints=np.concatenate([sample.keypoints, keypoints[None].astype(np.float32)]),
        masks=np.concatenate([sample.masks & ~mask, mask[None]]),
        has_mask=np.append(sample.has_mask, True),
        ignore=sample.ignore & ~mask,
        # A channel counts as labelled for the image only if every source in it labels it.
        keypoint_labelled=sample.keypoint_labelled & labelled,
    )
