"""`make demo`: real footage of people -> a rosbag -> LIVE through the kdc node -> demo_out/.

Builds a bag from the first frames of OpenCV's pedestrian video vtest.avi (see demo_footage; a
synthetic clip if it cannot be fetched), plays it at its recorded rate through a kdc node running
the default model, and leaves demo_out/overlay.mp4, demo_out/report.json, demo_out/contact_sheet.png
(and demo_out/bag/). DDS stays on this machine, in a domain of its own.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

# Before rclpy is imported anywhere: loopback only, and a domain the test suite never picks (1-100).
os.environ["ROS_DOMAIN_ID"] = os.environ.get("KDC_DEMO_DOMAIN_ID", "101")
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["ROS_LOCALHOST_ONLY"] = "1"

TOPIC = "/camera/image_raw"
WORK_DIR = Path("build/demo")


def load_demo_model(device: str):
    """The default weights as the node runs them by default (the model's own letterbox sides, 320 and
    640 merged: the footage's pedestrians are ~80 px tall in 768x576 frames, small at 320; backend auto:
    ONNX Runtime on a CPU, its export written on the first run; the node's default threads), or a random-init model (people found
    are noise) only when they are absent. Everything is built here, before the clip starts."""
    import torch

    import kdc_model
    from kdc_model.inference.backends import default_threads
    from kdc_model.network.checkpoint import CheckpointError

    from ..node.params import load_defaults

    # A frame the default thread count of PyTorch (one per core) would cost 0.3-2.7 s on a busy 2-core
    # machine, as the threads wait for each other (kdc_model.inference.backends.default_threads).
    torch.set_num_threads(default_threads())
    try:
        predictor = kdc_model.load_model("default", device=device, backend="auto",
                                         int8="auto" if load_defaults()["int8"] else False)
        name = f"default{' int8' if predictor.int8 else ''}, input {'+'.join(map(str, predictor.input_sides))}"
    except CheckpointError as err:
        banner = "!" * 100
        print(f"\n{banner}\nWARNING: {err}\nWARNING: the demo runs a RANDOMLY INITIALISED model: latency and "
              f"throughput are real, the people it finds are NOT.\n{banner}\n", file=sys.stderr)
        predictor = kdc_model.load_model(kdc_model.ModelConfig(), device=device, backend="auto")
        name = "random-init (default weights absent)"
    return predictor, f"{name}, {predictor.backend} on {predictor.device}, {torch.get_num_threads()} threads"


def warm_up(predictor, bag: Path, topic: str, frames: int = 3) -> None:
    """Run the model on the clip's first frames: ONNX Runtime and PyTorch plan memory and pick kernels
    on their first calls at an input shape, which must not make the first frames of the clip late."""
    from ..bags.image_bag import ImageBag
    from ..replay.offline import message_rgb

    with ImageBag(bag, topic) as images:
        for frame, _ in zip(images.frames(), range(frames)):
            predictor(message_rgb(frame.msg))


def footage(frames: int, video: Path | None = None) -> tuple[Path, str]:
    from .footage import fetch_vtest, write_synthetic_clip

    if video is not None:
        return video, f"{video} (given with --video)"
    video = fetch_vtest()
    if video is not None:
        return video, f"{video} (OpenCV sample video, real pedestrians)"
    print("\n*** vtest.avi is unavailable: falling back to a SYNTHETIC clip of drawn people ***\n", file=sys.stderr)
    folder = write_synthetic_clip(WORK_DIR / "synthetic_frames", frames=min(frames, 60))
    return folder, f"{folder} (synthetic people from kdc_model.training.synthetic: real footage could not be fetched)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kdc_ros.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default demo_out)")
    parser.add_argument("--frames", type=int, default=150, help="frames of footage to replay (default 150)")
    parser.add_argument("--device", default="auto", help="model device (default auto)")
    parser.add_argument("--video", type=Path, default=None,
                        help="footage to replay (default: vtest.avi, fetched once into ~/.cache/kdc_ros)")
    args = parser.parse_args(argv)
    if args.video is not None and not args.video.is_file():
        parser.error(f"--video {args.video}: no such file")
    started = time.monotonic()

    from ..bags.make_bag import write_image_bag
    from ..replay.contact_sheet import write_contact_sheet
    from ..replay.live import replay_live
    from ..replay.report import headline

    source, source_text = footage(args.frames, args.video)
    bag = WORK_DIR / "bag"
    shutil.rmtree(bag, ignore_errors=True)
    summary = write_image_bag(source, bag, TOPIC, max_frames=args.frames)
    print(f"bag: {summary.frames} frames at {summary.fps:g} fps from {source_text} -> {bag}")
    predictor, model_name = load_demo_model(args.device)
    warm_up(predictor, bag, TOPIC)
    print(f"model: {model_name}, warmed up; playing the bag live through the kdc node ...")
    report = replay_live(bag, TOPIC, args.out, predictor)
    sheet = write_contact_sheet(report["files"]["bag"], args.out / "contact_sheet.png")

    print()
    print(headline(report))
    print(f"model: {model_name}")
    print(f"overlay video:  {Path(report['files']['overlay_video']).resolve()}")
    print(f"report:         {Path(report['files']['report']).resolve()}")
    print(f"contact sheet:  {sheet.resolve()}")
    print(f"replay bag:     {Path(report['files']['bag']).resolve()}")
    print(f"demo took {time.monotonic() - started:.0f} s")
    return 0

