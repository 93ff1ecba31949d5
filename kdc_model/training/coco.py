"""COCO-format person annotations: reading a file with errors that name it, and turning one image's
annotations into arrays (keypoints, instance masks, crowd ignore region).

Shared by training (kdc_model.training.data) and evaluation (kdc_model.training.evaluate), so both read files the
same way and reject the same malformed ones.
"""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from ..skeleton import NUM_KEYPOINTS

PERSON_CATEGORY_ID = 1


class AnnotationError(ValueError):
    """An annotation file is missing, not JSON, or not COCO-shaped; the message names the file."""


def load_annotations(path: str | Path) -> dict:
    """The parsed COCO dict of `path`, checked for the fields training and evaluation rely on."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise AnnotationError(f"{path}: annotation file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise AnnotationError(f"{path}: not a JSON file ({err})") from None
    check_annotations(data, path)
    return data


def check_annotations(data, source: str | Path = "<annotations>") -> None:
    """Raise AnnotationError (naming `source`) unless `data` is a usable COCO person dict."""
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise AnnotationError(f"{source}: not a COCO annotation file (no 'images' list)")
    annotations = data.get("annotations", [])
    if not isinstance(annotations, list):
        raise AnnotationError(f"{source}: 'annotations' must be a list")
    image_ids = set()
    for i, image in enumerate(data["images"]):
        if not isinstance(image, dict) or not all(k in image for k in ("id", "file_name", "height", "width")):
            raise AnnotationError(f"{source}: images[{i}] needs id, file_name, height and width")
        image_ids.add(image["id"])
    for i, ann in enumerate(annotations):
        if not isinstance(ann, dict) or "image_id" not in ann:
            raise AnnotationError(f"{source}: annotations[{i}] has no image_id")
        if ann["image_id"] not in image_ids:
            raise AnnotationError(f"{source}: annotations[{i}] refers to unknown image_id {ann['image_id']!r}")
        keypoints = ann.get("keypoints")
        if keypoints is not None and len(keypoints) != 3 * NUM_KEYPOINTS:
            raise AnnotationError(f"{source}: annotations[{i}] has {len(keypoints)} keypoint values, "
                                  f"expected {3 * NUM_KEYPOINTS} (COCO-17 x, y, v)")
        segmentation = ann.get("segmentation")
        if segmentation is not None and not isinstance(segmentation, (list, dict)):
            raise AnnotationError(f"{source}: annotations[{i}] segmentation must be polygons or RLE")


def coco_api(data: dict) -> COCO:
    """A pycocotools COCO index over an in-memory dict (COCO() itself only reads files, noisily)."""
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def person_annotations(annotations: list[dict]) -> tuple[list[dict], list[dict]]:
    """(people, crowd regions) among one image's annotations; other categories are dropped."""
    people, crowds = [], []
    for ann in annotations:
        if ann.get("category_id", PERSON_CATEGORY_ID) != PERSON_CATEGORY_ID:
            continue
        (crowds if ann.get("iscrowd", 0) else people).append(ann)
    return people, crowds


def keypoint_array(ann: dict) -> np.ndarray:
    """[17, 3] float32 (x, y, v) of one annotation; zeros when it has no keypoints."""
    values = ann.get("keypoints")
    if not values:
        return np.zeros((NUM_KEYPOINTS, 3), np.float32)
    return np.asarray(values, np.float32).reshape(NUM_KEYPOINTS, 3)


def decode_segmentation(segmentation, height: int, width: int) -> np.ndarray:
    """[H, W] bool mask of polygons, an uncompressed RLE (counts list) or a compressed RLE."""
    if isinstance(segmentation, list):
        polygons = [p for p in segmentation if len(p) >= 6]  # COCO has a few degenerate polygons
        if not polygons:
            return np.zeros((height, width), bool)
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    elif isinstance(segmentation.get("counts"), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    mask = mask_utils.decode(rle).astype(bool)
    if mask.shape != (height, width):  # an RLE of another size than the image: fit it, do not crash
        fitted = np.zeros((height, width), bool)
        h, w = min(height, mask.shape[0]), min(width, mask.shape[1])
        fitted[:h, :w] = mask[:h, :w]
        mask = fitted
    return mask


def encode_mask(mask: np.ndarray) -> dict:
    """Compressed RLE of a bool [H, W] mask with a JSON-ready (str) counts field."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def image_people(annotations: list[dict], height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(keypoints [N, 17, 3] float32, masks [N, H, W] bool, has_mask [N] bool, ignore [H, W] bool).

    Crowd regions become the ignore mask; a person without a segmentation gets an empty mask and
    has_mask False, so the caller knows its pixels are unlabelled rather than background.
    """
    people, crowds = person_annotations(annotations)
    keypoints = np.stack([keypoint_array(a) for a in people]) if people else np.zeros((0, NUM_KEYPOINTS, 3), np.float32)
    masks = np.zeros((len(people), height, width), bool)
    has_mask = np.zeros(len(people), bool)
    for i, ann in enumerate(people):
        if ann.get("segmentation"):
            masks[i] = decode_segmentation(ann["segmentation"], height, width)
            has_mask[i] = masks[i].any()
    ignore = np.zeros((height, width), bool)
    for ann in crowds:
        if ann.get("segmentation"):
            ignore |= decode_segmentation(ann["segmentation"], height, width)
        elif ann.get("bbox"):
            x, y, w, h = (int(round(v)) for v in ann["bbox"])
            ignore[max(y, 0):y + h, max(x, 0):x + w] = True
    return keypoints, masks, has_mask, ignore
