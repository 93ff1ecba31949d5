"""Speed of the decoder and of the whole predict, against the number of people in the image (the model
alone: no ROS; kdc_ros.bench's other rows time whole systems).

    python -m kdc_ros.bench.decoder [--json PATH] [--repeats N] [--device auto|cpu|cuda] [--threads N]

Decode time is measured on maps encoded from synthetic scenes (kdc_model.training.targets), so the people
are really there for the decoder to group and segment. Predict time is the whole Predictor call
(letterbox, network, decode) with a random-init default-size model: weights do not change the cost
of the network, and the decoder's cost on random maps is its floor. The people counts are timed
in turn, so a load that drifts during the run (a shared machine) does not skew their ratios.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numpy as np
import torch

from kdc_model.network.config import ModelConfig
from kdc_model.inference.decode import decode_people
from kdc_model.inference.predictor import load_model
from kdc_model.training.synthetic import make_scene, texture_maps
from kdc_model.training.targets import encode_targets

PEOPLE_COUNTS = (1, 10, 30, 60)
CONFIDENT = 0.3  # person score from which a decoded person counts as confidently found


def interleaved_median_ms(fns: list, repeats: int) -> list[float]:
    """Median wall time in ms of each of `fns`, after one warm-up call each. The calls take turns
    (fns[0], fns[1], ..., fns[0], ...): on a shared machine whose load drifts, every fn meets the same
    load, so their ratios hold even when the absolute times do not."""
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, fn_times in zip(fns, times):
            start = time.perf_counter()
            fn()
            fn_times.append((time.perf_counter() - start) * 1e3)
    return [statistics.median(t) for t in times]


def target_maps(scene, config: ModelConfig, side: int, device: torch.device) -> dict[str, torch.Tensor]:
    """The decoder's input for a scene: its encoded targets, as if the network were perfect."""
    targets = encode_targets(scene.keypoints, scene.masks, scene.ignore, image_size=(side, side),
                             stride=config.output_stride, radius=config.radius)
    return {k: torch.as_tensor(v, dtype=torch.float32, device=device)
            for k, v in targets.items() if not k.endswith("_weight")}


def run_bench(repeats: int = 5, device: str = "auto") -> dict:
    predictor = load_model(ModelConfig(), device=device)
    config, side = predictor.config, predictor.input_side
    decodes, predicts, stage_times, rows = [], [], [], []
    for people in PEOPLE_COUNTS:
        rng = np.random.default_rng(people)
        # One size range for every count, so the counts differ in people only; at 60 many overlap.
        # Every keypoint labelled: a trained network predicts the joints an annotator skipped.
        scene = make_scene(rng, side, side, people, min_height=0.2 * side, max_height=0.45 * side,
                           allow_outside=False, unlabelled_fraction=0.0, crowd_probability=0.0)
        maps = target_maps(scene, config, side, predictor.device)
        decodes.append(lambda maps=maps: decode_people(maps, stride=config.output_stride, radius=config.radius,
                                                       config=predictor.decoder, image_size=(side, side)))
        stage_times.append([])

        def predict(image=scene.image, timings=stage_times[-1]):
            predictor(image)
            timings.append(predictor.last_timing)

        predicts.append(predict)
    # The worst case last: a texture with thousands of strong peaks (bounded by max_peaks/max_candidates).
    texture = texture_maps(config, side, side)
    decodes.append(lambda: decode_people(texture, stride=config.output_stride, radius=config.radius,
                                         config=predictor.decoder, image_size=(side, side)))
    decode_ms = interleaved_median_ms(decodes, repeats)
    texture_ms = decode_ms.pop()
    texture_people = len(decodes.pop()())
    predict_ms = interleaved_median_ms(predicts, repeats)
    for people, decode, decode_time, predict_time, timings in zip(PEOPLE_COUNTS, decodes, decode_ms, predict_ms,
                                                                  stage_times):
        decoded = decode()
        found, confident = len(decoded), int((decoded.scores >= CONFIDENT).sum())
        stages = {k: statistics.median(t[k] for t in timings[1:]) for k in timings[0]}
        rows.append({"people": people, "found": found, "confident": confident, "decode_ms": decode_time,
                     "predict_ms": predict_time, **{f"predict_{k}": v for k, v in stages.items()}})
    by_people = {r["people"]: r for r in rows}
    return {
        "device": str(predictor.device), "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
        "backbone": config.backbone, "input_side": side, "output_stride": config.output_stride,
        "repeats": repeats, "rows": rows,
        "decode_ratio_60_vs_1": by_people[60]["decode_ms"] / by_people[1]["decode_ms"],
        "texture_decode_ms": texture_ms, "texture_people": texture_people,
    }


def format_report(report: dict) -> str:
    lines = [f"KDC bench: {report['backbone']} {report['input_side']}x{report['input_side']}, stride "
             f"{report['output_stride']}, random init, device {report['device']} "
             f"({report['torch_threads']} torch threads), median of {report['repeats']}",
             f"{'people':>6} {'found':>5} {'>=0.3':>5} {'decode ms':>10} {'predict ms':>11} "
             f"{'(pre':>6} {'net':>6} {'decode)':>8}"]
    for r in report["rows"]:
        lines.append(f"{r['people']:>6} {r['found']:>5} {r['confident']:>5} {r['decode_ms']:>10.1f} {r['predict_ms']:>11.1f} "
                     f"{r['predict_preprocess_ms']:>6.1f} {r['predict_network_ms']:>6.1f} "
                     f"{r['predict_decode_ms']:>8.1f}")
    lines.append(f"decode time, 60 people vs 1: x{report['decode_ratio_60_vs_1']:.2f}")
    lines.append(f"texture of thousands of strong peaks (worst case, texture_maps): decode "
                 f"{report['texture_decode_ms']:.1f} ms, {report['texture_people']} people")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kdc_ros.bench.decoder", description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="PATH", help="also write the results to this JSON file")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per measurement (median)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    report = run_bench(repeats=args.repeats, device=args.device)
    print(format_report(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
