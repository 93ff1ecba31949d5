"""kdc-replay: a bag's image topic through KDC, offline (default) or live through the kdc node.

Exit status: 0 done; 1 error, or nothing replayed (no frame on the topic, every frame rejected, no
output from the node: report.json is still written and the reason is on stderr); 2 the bag is
damaged: the frames before the damage were replayed and their outputs written, and the damage is
named on stderr and in report.json.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..bags.image_bag import BagError
from .report import headline, nothing_replayed


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="kdc-replay", description="Replay a rosbag2 image topic through KDC and write DIR/bag (inputs, "
        "kdc_msgs/PoseSeg, overlays), DIR/overlay.mp4 and DIR/report.json.")
    parser.add_argument("bag", type=Path, help="bag folder, or a bare .mcap / .db3 file")
    parser.add_argument("--topic", required=True, help="sensor_msgs/Image or CompressedImage topic in the bag")
    parser.add_argument("--out", required=True, type=Path, help="output folder (its bag/ and video are replaced)")
    parser.add_argument("--live", action="store_true", help="play the bag through rclpy into the kdc node at the "
                        "recorded rate and measure end-to-end latency, drops and output rate")
    parser.add_argument("--rate", type=float, default=1.0, help="live playback speed factor (default 1)")
    parser.add_argument("--node-namespace", help="live: target an already running kdc node in this namespace "
                        "(outputs at <ns>/kdc/...) instead of starting one in this process")
    parser.add_argument("--annotations", type=Path, help="COCO keypoints/instances file of the frames: report "
                        "keypoint AP and mask AP (frames matched by frame_index, kdc-bag frame name, or a "
                        "numeric file name stem; see kdc_ros/replay/annotations.py)")
    parser.add_argument("--checkpoint", default="default", help="model checkpoint path, or 'default'")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default auto)")
    parser.add_argument("--input-size", type=int, default=None, help="letterbox side the network sees "
                        "(default: the model's own sides, 320 and 640 merged for the default weights); larger "
                        "finds smaller people")
    parser.add_argument("--flip-test", action="store_true", help="offline: also run each frame mirrored and "
                        "average the maps (twice the network time, better keypoints; docs/training.md)")
    parser.add_argument("--multi-scale", type=int, nargs="*", default=None, metavar="SIDE",
                        help="offline: also run the network at these letterbox sides and merge the people "
                             "(e.g. 640: small and big people both found, for the sides' summed time; default: "
                             "the model's own sides without --input-size, else none; --multi-scale alone: none)")
    parser.add_argument("--int8", action="store_true", help="run the model's int8 network on ONNX Runtime "
                        "(CPU), as the node does by default there")
    parser.add_argument("--batch-size", type=int, default=4, help="offline: images per model call (default 4)")
    parser.add_argument("--no-overlay", action="store_true", help="no overlay images and no overlay.mp4")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.rate <= 0:
        parser.error("--rate must be positive")
    if args.batch_size <= 0:
        parser.error("--batch-size must be positive")
    if args.node_namespace is not None and not args.live:
        parser.error("--node-namespace needs --live")
    for option, given in (("--flip-test", args.flip_test), ("--multi-scale", args.multi_scale)):
        if given is not None and given is not False and args.live:
            parser.error(f"{option} is for offline replay (live replay measures the node as it runs)")
    return args


def run(args: argparse.Namespace, predictor=None) -> dict:
    """The replay `args` ask for; `predictor` (else loaded from --checkpoint) serves the model."""
    from .offline import replay_offline  # rclpy and the model stack load after argument errors

    if predictor is None and args.node_namespace is None:
        import kdc_model
        predictor = kdc_model.load_model(args.checkpoint, device=args.device, input_size=args.input_size,
                                         flip_test=args.flip_test, multi_scale=args.multi_scale,
                                         **(dict(backend="onnxruntime", int8=True) if args.int8 else {}))
    common = dict(overlay=not args.no_overlay, annotations=args.annotations, progress=not args.no_progress)
    if args.live:
        from .live import replay_live
        return replay_live(args.bag, args.topic, args.out, predictor, rate=args.rate,
                           node_namespace=args.node_namespace, **common)
    return replay_offline(args.bag, args.topic, args.out, predictor, batch_size=args.batch_size, **common)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = run(args)
    except (BagError, ValueError, TimeoutError, OSError) as err:  # CheckpointError is a ValueError
        print(f"kdc-replay: error: {err}", file=sys.stderr)
        return 1
    print(headline(report))
    print(f"wrote {report['files']['report']}")
    if (reason := nothing_replayed(report)) is not None:
        print(f"kdc-replay: error: nothing replayed: {reason}", file=sys.stderr)
        return 1
    if report.get("bag_damage"):
        print(f"kdc-replay: error: damaged bag, replayed the {report['frames']} frames before the damage: "
              f"{report['bag_damage']}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
