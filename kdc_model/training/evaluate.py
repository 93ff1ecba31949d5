"""COCO evaluation of KDC: keypoint AP (OKS, COCO sigmas) and person mask AP (segm, RLE from the
label map), with pycocotools' COCOeval.

    python -m kdc_model.training.evaluate --images DIR --annotations FILE [--checkpoint PATH|default] --out DIR

writes DIR/metrics.json (keypoints_ap, keypoints_ap50, keypoints_ap75, keypoints_apm, keypoints_apl,
segm_ap, segm_ap50, segm_ap75, segm_aps, segm_apm, segm_apl, and the image counts) and
DIR/predictions.png (a grid of images with the predictions drawn), and prints the table.

AP is computed over the images that carry the labels in question: keypoint AP over images with
at least one person with labelled keypoints, mask AP over images whose people all have masks (a
person without a mask would make correct masks count as false positives). COCOeval reports -1 for
an area range without ground truth; that is kept.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from .coco import AnnotationError, coco_api, encode_mask, load_annotations
from ..inference.drawing import draw_overlay, image_grid
from ..result import PoseSegResult
from ..skeleton import NUM_KEYPOINTS, OKS_SIGMAS

KEYPOINT_STATS = ("ap", "ap50", "ap75", "apm", "apl")            # COCOeval.stats[0:5], keypoints
SEGM_STATS = ("ap", "ap50", "ap75", "aps", "apm", "apl")         # COCOeval.stats[0:6], segm
METRIC_KEYS = tuple(f"keypoints_{s}" for s in KEYPOINT_STATS) + tuple(f"segm_{s}" for s in SEGM_STATS)


def result_to_coco(result: PoseSegResult, image_id: int) -> list[dict]:
    """COCO result entries (keypoints, segmentation, bbox, score) for the people of one image."""
    entries = []
    masks = result.masks()
    for i in range(len(result)):
        x0, y0, x1, y1 = (float(v) for v in result.boxes[i])
        entries.append({
            "image_id": int(image_id), "category_id": 1, "score": float(result.scores[i]),
            "keypoints": [float(v) for v in result.keypoints[i].reshape(-1)],
            "segmentation": encode_mask(masks[i]),
            "bbox": [x0, y0, x1 - x0, y1 - y0],
        })
    return entries


def evaluate_predictions(coco_gt, results: list[dict]) -> dict[str, float]:
    """COCO keypoint and mask AP of `results` (result_to_coco entries) against `coco_gt` (a COCO
    dict or pycocotools COCO). Returns METRIC_KEYS plus keypoints_images / segm_images (how many
    images each AP covers); an AP without images or predictions is 0."""
    data = coco_gt.dataset if hasattr(coco_gt, "dataset") else coco_gt
    gt = _normalised_ground_truth(data)
    people_by_image: dict[int, list[dict]] = {image["id"]: [] for image in gt["images"]}
    for ann in gt["annotations"]:
        if not ann.get("iscrowd", 0):
            people_by_image.setdefault(ann["image_id"], []).append(ann)
    # Every image counts, as in COCOeval: a person found where nobody is annotated is a false positive,
    # and people annotated without keypoints are COCOeval's "ignore" people (matching them costs nothing).
    keypoint_images = sorted(people_by_image)
    # Masks are scored on the images where no person lacks one (LSPET-like sources have none).
    segm_images = sorted(i for i, anns in people_by_image.items() if all(a.get("segmentation") for a in anns))

    metrics = {"keypoints_images": len(keypoint_images), "segm_images": len(segm_images)}
    keypoint_set, segm_set = set(keypoint_images), set(segm_images)
    keypoint_results = [{k: r[k] for k in ("image_id", "category_id", "keypoints", "score")}
                        for r in results if "keypoints" in r and r["image_id"] in keypoint_set]
    metrics.update(_coco_stats(gt, keypoint_results, keypoint_images, "keypoints", KEYPOINT_STATS))
    segm_gt = dict(gt, annotations=[a for a in gt["annotations"]
                                    if a["image_id"] in segm_set and a.get("segmentation")])
    segm_results = [{k: r[k] for k in ("image_id", "category_id", "segmentation", "score")}
                    for r in results if "segmentation" in r and r["image_id"] in segm_set]
    metrics.update(_coco_stats(segm_gt, segm_results, segm_images, "segm", SEGM_STATS))
    return metrics


def _normalised_ground_truth(data: dict) -> dict:
    """A copy of a COCO dict with what COCOeval needs on every person annotation: keypoints,
    num_keypoints, bbox, area, iscrowd (LSPET-like or mask-only files lack some of them)."""
    annotations = []
    for ann in data.get("annotations", []):
        if ann.get("category_id", 1) != 1:
            continue
        ann = dict(ann)
        kp = np.asarray(ann.get("keypoints") or [0] * (3 * NUM_KEYPOINTS), np.float64).reshape(NUM_KEYPOINTS, 3)
        ann["keypoints"] = kp.reshape(-1).tolist()
        ann["num_keypoints"] = int((kp[:, 2] > 0).sum())
        ann.setdefault("iscrowd", 0)
        if "bbox" not in ann:
            labelled = kp[kp[:, 2] > 0, :2]
            lo, hi = (labelled.min(0), labelled.max(0)) if len(labelled) else (np.zeros(2), np.zeros(2))
            ann["bbox"] = [float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])]
        ann.setdefault("area", float(ann["bbox"][2] * ann["bbox"][3]))
        annotations.append(ann)
    categories = [{"id": 1, "name": "person", "supercategory": "person"}]
    return {"images": data["images"], "annotations": annotations, "categories": categories}


def _coco_stats(gt: dict, results: list[dict], image_ids: list[int], iou_type: str, names) -> dict[str, float]:
    keys = [f"{iou_type}_{n}" for n in names]
    if not image_ids or not results:
        return dict.fromkeys(keys, 0.0)
    from pycocotools.cocoeval import COCOeval

    coco_gt = coco_api(gt)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(results)
        evaluator = COCOeval(coco_gt, coco_dt, iou_type)
        evaluator.params.imgIds = image_ids
        if iou_type == "keypoints":
            evaluator.params.kpt_oks_sigmas = OKS_SIGMAS.astype(np.float64)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {k: float(v) for k, v in zip(keys, evaluator.stats[:len(keys)])}


def format_metrics(metrics: dict[str, float]) -> str:
    """The metrics as a two-row text table (keypoints, segm)."""
    header = f"{'':10s}" + "".join(f"{n.upper():>8s}" for n in ("ap", "ap50", "ap75", "aps", "apm", "apl")) + "  images"
    rows = [header]
    for kind, names in (("keypoints", KEYPOINT_STATS), ("segm", SEGM_STATS)):
        cells = "".join(f"{metrics[f'{kind}_{n}']:8.3f}" if f"{kind}_{n}" in metrics else f"{'-':>8s}"
                        for n in ("ap", "ap50", "ap75", "aps", "apm", "apl"))
        rows.append(f"{kind:10s}{cells}  {metrics.get(f'{kind}_images', 0):6d}")
    return "\n".join(rows)


def evaluate_model(predict, coco_gt: dict, image_paths: dict[int, Path], draw: int = 0,
                   progress: bool = False) -> tuple[dict[str, float], list[dict], list[np.ndarray]]:
    """Run `predict` (RGB uint8 -> PoseSegResult) on every image; (metrics, COCO results, up to
    `draw` images with their predictions drawn)."""
    from .data import read_rgb

    results, drawn = [], []
    ids = [image["id"] for image in coco_gt["images"]]
    if progress:
        from tqdm import tqdm
        ids = tqdm(ids, desc="evaluate", unit="img", dynamic_ncols=True)
    for image_id in ids:
        image = read_rgb(image_paths[image_id])
        result = predict(image)
        results.extend(result_to_coco(result, image_id))
        if len(drawn) < draw:
            drawn.append(draw_overlay(image, result))
    return evaluate_predictions(coco_gt, results), results, drawn


def write_report(out_dir: Path, metrics: dict[str, float], drawn: list[np.ndarray]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if drawn:
        grid = image_grid(drawn, columns=4)
        cv2.imwrite(str(out_dir / "predictions.png"), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kdc_model.training.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", required=True, type=Path, help="folder of the annotated images")
    parser.add_argument("--annotations", required=True, type=Path, help="COCO annotation file (person keypoints/masks)")
    parser.add_argument("--checkpoint", default="default", help="checkpoint path, or 'default' (packaged weights)")
    parser.add_argument("--out", required=True, type=Path, help="folder for metrics.json and predictions.png")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--input-size", type=int, default=None,
                        help="letterbox longer side the network sees (default: the checkpoint's)")
    parser.add_argument("--backend", default="torch", help="torch, onnxruntime, tensorrt or auto")
    parser.add_argument("--flip-test", action="store_true", help="average the maps of the mirrored image too "
                                                                 "(twice the network time, better keypoints)")
    parser.add_argument("--multi-scale", type=int, nargs="*", default=None, metavar="SIDE",
                        help="more letterbox sides run besides --input-size, their people merged (default: "
                             "the model's own sides without --input-size, 640 besides 320 for the default "
                             "weights, else none; --multi-scale alone: none)")
    parser.add_argument("--int8", action="store_true", help="run the checkpoint's int8 model (backend onnxruntime, "
                        "CPU; kdc_model.inference.quantize)")
    parser.add_argument("--max-images", type=int, default=None, help="evaluate only the first N images")
    parser.add_argument("--draw", type=int, default=12, help="images drawn into predictions.png")
    args = parser.parse_args(argv)

    from ..network.checkpoint import CheckpointError
    from ..inference.predictor import load_model

    try:
        data = load_annotations(args.annotations)
        predictor = load_model(args.checkpoint, device=args.device, input_size=args.input_size,
                               backend=args.backend, flip_test=args.flip_test, multi_scale=args.multi_scale,
                               int8=args.int8)
    except (AnnotationError, CheckpointError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.max_images is not None:
        keep = {image["id"] for image in data["images"][:args.max_images]}
        data = dict(data, images=data["images"][:args.max_images],
                    annotations=[a for a in data.get("annotations", []) if a["image_id"] in keep])
    paths = {image["id"]: args.images / image["file_name"] for image in data["images"]}
    metrics, _, drawn = evaluate_model(predictor, data, paths, draw=args.draw, progress=True)
    write_report(args.out, metrics, drawn)
    print(format_metrics(metrics))
    print(f"wrote {args.out / 'metrics.json'} and {args.out / 'predictions.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
