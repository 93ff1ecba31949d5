"""COCO annotations of replayed frames: which COCO image is which bag frame, and the AP of the outputs.

Mapping rule (first that applies, per COCO image):
  1. a "frame_index" field in the image entry: the index of the message on the image topic, from 0;
  2. the base name of its file_name equals a frame name recorded by kdc-bag (an image folder's file
     names in sorted order, or "<video stem>_<index:06d>" for a video);
  3. the stem of its file_name is an integer ("000042.jpg"): that frame index.
Images that match no replayed frame are left out of the evaluation (and counted in the report).
A replayed frame with no output (a live drop) counts as a frame where nothing was found.
"""
from __future__ import annotations

from pathlib import PurePath

from kdc_model import PoseSegResult
from kdc_model.coco import load_annotations


def frame_to_image(coco: dict, frame_names: list[str] | None) -> dict[int, int]:
    """{frame index: COCO image id} by the mapping rule above."""
    by_name = {name: index for index, name in enumerate(frame_names or [])}
    mapping = {}
    for image in coco["images"]:
        file_name = PurePath(str(image["file_name"]))
        if isinstance(image.get("frame_index"), int):
            index = image["frame_index"]
        elif file_name.name in by_name:
            index = by_name[file_name.name]
        elif file_name.stem.isdigit():
            index = int(file_name.stem)
        else:
            continue
        mapping[index] = image["id"]
    return mapping


def evaluate_frames(annotations_path, frame_names: list[str] | None, replayed_frames: int,
                    results: dict[int, PoseSegResult]) -> dict:
    """COCO keypoint and mask AP of `results` ({frame index: published result}) over the annotated
    frames among the first `replayed_frames`, with kdc_model.evaluate."""
    from kdc_model.evaluate import evaluate_predictions, result_to_coco  # pycocotools only when asked

    coco = load_annotations(annotations_path)
    mapping = {f: i for f, i in frame_to_image(coco, frame_names).items() if 0 <= f < replayed_frames}
    image_ids = set(mapping.values())
    ground_truth = dict(coco, images=[im for im in coco["images"] if im["id"] in image_ids],
                        annotations=[a for a in coco.get("annotations", []) if a["image_id"] in image_ids])
    predictions = [entry for frame, image_id in mapping.items() if frame in results
                   for entry in result_to_coco(results[frame], image_id)]
    metrics = evaluate_predictions(ground_truth, predictions) if image_ids else {}
    return {"annotations": str(annotations_path), "matched_images": len(image_ids),
            "unmatched_images": len(coco["images"]) - len(image_ids), **metrics}
