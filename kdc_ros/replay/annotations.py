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
from kdc_model.training.coco import load_annotations


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


class FrameEvaluation:
    """COCO keypoint and mask AP of the published results, gathered frame by frame: each annotated
    frame's result becomes its COCO entries when it comes (RLE masks, kdc_model.training.evaluate), so a
    replay keeps no label maps and nothing at all of frames without annotations."""

    def __init__(self, annotations_path, frame_names: list[str] | None) -> None:
        self.path = annotations_path
        self.coco = load_annotations(annotations_path)
        self.mapping = frame_to_image(self.coco, frame_names)
        self.predictions: list[dict] = []

    def wants(self, frame_index: int) -> bool:
        return frame_index in self.mapping

    def add(self, frame_index: int, result: PoseSegResult) -> None:
        """The published result of frame `frame_index` (ignored unless it is annotated)."""
        from kdc_model.training.evaluate import result_to_coco  # pycocotools only when asked

        if frame_index in self.mapping:
            self.predictions += result_to_coco(result, self.mapping[frame_index])

    def report(self, replayed_frames: int) -> dict:
        """The metrics over the annotated frames among the first `replayed_frames` (a frame without a
        result there counts as one where nothing was found)."""
        from kdc_model.training.evaluate import evaluate_predictions

        image_ids = {i for f, i in self.mapping.items() if 0 <= f < replayed_frames}
        coco = self.coco
        ground_truth = dict(coco, images=[im for im in coco["images"] if im["id"] in image_ids],
                            annotations=[a for a in coco.get("annotations", []) if a["image_id"] in image_ids])
        predictions = [p for p in self.predictions if p["image_id"] in image_ids]
        metrics = evaluate_predictions(ground_truth, predictions) if image_ids else {}
        return {"annotations": str(self.path), "matched_images": len(image_ids),
                "unmatched_images": len(coco["images"]) - len(image_ids), **metrics}


def evaluate_frames(annotations_path, frame_names: list[str] | None, replayed_frames: int,
                    results: dict[int, PoseSegResult]) -> dict:
    """COCO keypoint and mask AP of `results` ({frame index: published result}) over the annotated
    frames among the first `replayed_frames`, with kdc_model.training.evaluate."""
    evaluation = FrameEvaluation(annotations_path, frame_names)
    for frame, result in results.items():
        evaluation.add(frame, result)
    return evaluation.report(replayed_frames)
