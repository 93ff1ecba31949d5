"""Fit the learned person score (DecoderConfig.score_weights) of a checkpoint on training photographs.

    python -m kdc_model.training.score_fit --data-root ../shared/data --checkpoint CKPT [--ridge 10]

COCO AP ranks a model's people by their scores, and the decoder's own score (mean keypoint evidence)
ranks them loosely: on coco_val_dev, ranking the same people by their true OKS would lift keypoint AP
from 0.121 to 0.150 (docs/training.md, entry 10). This fits a ridge regression from each decoded
person's features (kdc_model.inference.decode.PERSON_FEATURES) to how right the person is: the mean
of its best OKS with a labelled person and its best mask IoU with an annotated one. It is fitted on
the recipe's training images of sources whose people carry real keypoints and masks (never on
validation images, never on teacher labels), then scored on the recipe's validation groups before
and after. It prints the weights for the recipe's `model.decoder.score_weights`; the packaged
weights take them from there (scripts/package_default_weights.py).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import sys
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils
from tqdm import tqdm

from ..inference.decode import PERSON_FEATURES, person_features
from .coco import decode_segmentation
from .evaluate import evaluate_predictions, result_to_coco
from .pseudo_labels import label_area, oks


def person_quality(result, annotations: list[dict], height: int, width: int) -> np.ndarray:
    """[N]: per person of `result`, the mean of its best OKS with a person whose keypoints are labelled
    and its best mask IoU with an annotated mask (0 where there is none)."""
    people = [a for a in annotations if not a.get("iscrowd")]
    best_oks = np.zeros(len(result))
    for ann in people:
        if ann.get("num_keypoints", 0) > 0:
            label = np.asarray(ann["keypoints"], np.float64).reshape(-1, 3)
            best_oks = np.maximum(best_oks, oks(label, result.keypoints.astype(np.float64), label_area(ann, label)))
    truth = [mask_utils.encode(np.asfortranarray(decode_segmentation(a["segmentation"], height, width).astype(np.uint8)))
             for a in people if a.get("segmentation")]
    best_iou = np.zeros(len(result))
    if truth and len(result):
        found = [mask_utils.encode(np.asfortranarray(m.astype(np.uint8))) for m in result.masks()]
        best_iou = np.asarray(mask_utils.iou(found, truth, [0] * len(truth))).max(axis=1)
    return (best_oks + best_iou) / 2


def fit(features: np.ndarray, quality: np.ndarray, ridge: float) -> np.ndarray:
    """Ridge regression weights [F] from features [N, F] to quality [N]."""
    return np.linalg.solve(features.T @ features + ridge * np.eye(features.shape[1]), features.T @ quality)


def fitting_records(train: dict, sources) -> list:
    """Training records whose people carry real keypoints and masks: the sources that label every
    person (not one_person), with masks; images with at least one labelled skeleton."""
    usable = {s.name for s in sources if s.masks and not s.one_person and s.weight > 0}
    return [r for name, records in train.items() if name in usable for r in records
            if any(a.get("num_keypoints", 0) > 0 and not a.get("iscrowd") for a in r.annotations)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kdc_model.training.score_fit", description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True, type=Path)
    parser.add_argument("--checkpoint", default="default", help="checkpoint path, or 'default'")
    parser.add_argument("--recipe", default="kdc_model/configs/default.yaml")
    parser.add_argument("--input-size", type=int, default=None, help="letterbox side (default: the model's own)")
    parser.add_argument("--ridge", type=float, default=10.0, help="ridge penalty (default 10)")
    args = parser.parse_args(argv)
    from ..inference.predictor import load_model
    from .data import load_sources, read_rgb, validation_coco
    from .recipe import Recipe, load_recipe

    recipe = Recipe.from_dict(load_recipe(args.recipe))
    train, val = load_sources(recipe.sources, args.data_root)
    predictor = load_model(args.checkpoint, input_size=args.input_size, multi_scale=(), backend="auto")
    base = dataclasses.replace(predictor.decoder, score_weights=())
    predictor.decoder = base
    records = fitting_records(train, recipe.sources)
    features, quality = [], []
    for record in tqdm(records, desc="fitting images", unit="image"):
        image = read_rgb(record.path)
        result = predictor(image)
        features.append(person_features(result))
        quality.append(person_quality(result, record.annotations, *image.shape[:2]))
    features, quality = np.concatenate(features), np.concatenate(quality)
    weights = fit(features, quality, args.ridge)
    print(f"fitted on {len(records)} training images, {len(quality)} people (mean quality {quality.mean():.3f})")

    groups = {}
    for record in val:
        groups.setdefault(record.source.val_group, []).append(record)
    for group, records in groups.items():
        gt, paths = validation_coco(records)
        scored = {}
        for name, decoder in (("decoder score", base), ("learned score", dataclasses.replace(base, score_weights=tuple(weights)))):
            predictor.decoder = decoder
            results = [entry for image in gt["images"]
                       for entry in result_to_coco(predictor(read_rgb(paths[image["id"]])), image["id"])]
            with contextlib.redirect_stdout(io.StringIO()):
                scored[name] = evaluate_predictions(gt, results)
        print(f"{group} ({len(gt['images'])} images): " + "; ".join(
            f"{name} keypoint AP {m['keypoints_ap']:.3f} mask AP {m['segm_ap']:.3f}" for name, m in scored.items()))
    print("model.decoder.score_weights for the recipe (features: kdc_model.inference.decode.PERSON_FEATURES):")
    print("    score_weights: [" + ", ".join(f"{w:.6g}" for w in weights) + "]")
    assert len(weights) == len(PERSON_FEATURES)
    return 0


if __name__ == "__main__":
    sys.exit(main())
