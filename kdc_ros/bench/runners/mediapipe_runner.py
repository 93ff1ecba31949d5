"""MediaPipe Pose (BlazePose, mediapipe 0.10.14 legacy solution, model shipped in the wheel): bench rows.

Runs inside build/bench-venvs/mediapipe (kdc_ros.bench.venvs), never in our .venv:

    python mediapipe_runner.py --frames frames.npy --size 320 [--warmup 3] [--rounds 1]

frames.npy: [N, H, W, 3] uint8 RGB. Prints `BENCH_ROWS <json list of rows>` last on stdout.
BlazePose is single-person with fixed network inputs (person detector 224x224, landmarks 256x256):
it gets the same frames as every other system and resizes them itself, so --size only labels the
row. model_complexity=1 ("full") is the model the wheel ships (lite and heavy are downloaded at run
time, which this bench never does); static_image_mode=True runs detector + landmarks on every frame
(our frames are unrelated scenes, not a video to track through); enable_segmentation=True adds the
person mask, the closest thing to our instance masks.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import failed_row, row, time_calls  # noqa: E402

MARKER = "BENCH_ROWS "


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", required=True)
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        import mediapipe as mp
        import numpy as np

        frames = [np.ascontiguousarray(f) for f in np.load(args.frames)]
        found = []
        with mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1,
                                    enable_segmentation=True) as pose:
            def call(frame):
                result = pose.process(frame)
                found.append(int(result.pose_landmarks is not None))
                return result

            times = time_calls(call, frames, args.warmup, args.rounds)
        timed = found[args.warmup:]
        rows = [row("mediapipe-pose", "tflite", args.size, times,
                    people_per_frame=round(sum(timed) / len(timed), 2),
                    weights="BlazePose full (shipped in the mediapipe wheel)",
                    note="single person; fixed inputs 224 (detector) / 256 (landmarks); + person mask",
                    versions={"mediapipe": mp.__version__, "numpy": np.__version__})]
    except Exception as err:  # noqa: BLE001 - reported as a failed row
        traceback.print_exc()
        rows = [failed_row("mediapipe-pose", "tflite", args.size, f"{type(err).__name__}: {err}")]
    print(MARKER + json.dumps(rows), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
