"""Offline replay: every image of a bag topic through the model, batched, outputs logged at the input stamps.

Latency per frame and stage, in ms: conversion (message -> RGB), preprocess / network / decode (of
the frame's batch: a frame waits for its whole batch), messages (thresholds, tracking, PoseSeg and
overlay: kdc_ros.node.frame_outputs, what the node publishes), total (their sum). The first frame is run once before timing (model warm-up).
throughput_fps is frames over the wall time of the whole loop, bag reading and writing included.

Outputs are streamed: each frame's PoseSeg and overlay go to the output bag and the video as soon as
they are made, and the report keeps only running figures (stage times and people counts per frame,
track counters, the COCO entries of annotated frames), so memory stays flat over a long bag.
"""
from __future__ import annotations

import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path

from sensor_msgs.msg import CompressedImage
from tqdm import tqdm

from ..node import params
from ..bags.image_bag import BagFrame, ImageBag
from ..node.frame_outputs import CameraMemory, frame_outputs
from ..node.image_io import ImageError, compressed_to_rgb, image_to_rgb
from .tracking_metrics import TrackingStats
from .annotations import FrameEvaluation
from .latency import StageTimes
from .outputs import ReplayOutputs
from .report import Rejections, people_fields, tracking_fields

MODEL_STAGES = ("preprocess", "network", "decode")


def message_rgb(msg):
    return compressed_to_rgb(msg) if isinstance(msg, CompressedImage) else image_to_rgb(msg)


@dataclass
class Tally:
    """What the report needs of the frames replayed so far (nothing per frame but numbers)."""

    times: StageTimes = field(default_factory=StageTimes)
    people: array = field(default_factory=lambda: array("I"))      # people published per frame
    tracking: TrackingStats = field(default_factory=TrackingStats)
    rejected: Rejections = field(default_factory=Rejections)
    evaluation: FrameEvaluation | None = None


def replay_offline(bag_path: str | Path, topic: str, out_dir: str | Path, predictor, *, batch_size: int = 4,
                   overlay: bool = True, annotations: str | Path | None = None, settings: dict | None = None,
                   progress: bool = True) -> dict:
    """Replay `topic` of the bag at `bag_path` through `predictor`; returns the report (also written)."""
    with ImageBag(bag_path, topic) as bag:
        # Annotations first: a bad file fails before the replay, and results are scored as they come.
        evaluation = FrameEvaluation(annotations, bag.frame_names()) if annotations is not None else None
        outputs = ReplayOutputs(out_dir, bag.rate_hz or 30.0, overlay)
        node_outputs = NodeOutputs(settings if settings is not None else params.load_defaults(), overlay)
        tally = Tally(evaluation=evaluation)
        warmed_up, frames_read = False, 0
        start = time.perf_counter()
        try:
            batch: list[tuple[BagFrame, object, float]] = []
            for frame in tqdm(bag.frames(), total=bag.count, unit="frame", desc="replay", disable=not progress):
                outputs.write_input(topic, frame.msg, frame.log_time_ns)
                frames_read = frame.index + 1
                clock = time.perf_counter()
                try:
                    rgb = message_rgb(frame.msg)
                except ImageError as err:
                    tally.rejected.add(frame.index, str(err))
                    continue
                if not warmed_up:
                    predictor(rgb)
                    warmed_up, start = True, time.perf_counter()
                    clock = start
                batch.append((frame, rgb, (time.perf_counter() - clock) * 1e3))
                if len(batch) == batch_size:
                    _run_batch(batch, predictor, node_outputs, outputs, tally)
                    batch = []
            if batch:
                _run_batch(batch, predictor, node_outputs, outputs, tally)
        finally:
            outputs.close()
        wall = time.perf_counter() - start
        frames = len(tally.people)
        report = {
            "mode": "offline", "bag": str(bag_path), "topic": topic, "message_type": bag.msgtype,
            "frames": frames, **tally.rejected.fields(), **people_fields(tally.people),
            **tracking_fields(tally.tracking),
            "latency_ms": tally.times.summary(),
            "throughput_fps": round(frames / wall, 3) if frames and wall > 0 else 0.0,
            "batch_size": batch_size, "device": str(getattr(predictor, "device", "?")),
            "bag_damage": bag.damage,
            "files": {"bag": str(outputs.bag_path), "overlay_video": str(outputs.video_path) if overlay else None,
                      "report": str(outputs.report_path)},
        }
        if evaluation is not None:
            report["evaluation"] = evaluation.report(frames_read)
        outputs.write_report(report)
    return report


@dataclass
class NodeOutputs:
    """The node's outputs of one camera (kdc_ros.node.frame_outputs) with `settings` (the node's parameters),
    made for the output bag: PoseSeg always, overlays when asked for."""

    settings: dict
    overlay: bool
    memory: CameraMemory = field(default_factory=CameraMemory)

    def __call__(self, rgb, result, frame: BagFrame):
        # The recording time stands in for the arrival time of an unstamped frame, as in a live node.
        return frame_outputs(rgb, result, frame.msg.header, self.settings, self.memory,
                             wanted=lambda name: self.overlay and name == "overlay",
                             arrived=frame.log_time_ns * 1e-9)


def _run_batch(batch, predictor, node_outputs: NodeOutputs, outputs: ReplayOutputs, tally: Tally) -> None:
    rgbs = [rgb for _, rgb, _ in batch]
    if hasattr(predictor, "predict_batch"):
        predicted = predictor.predict_batch(rgbs)
    else:
        predicted = [predictor(rgb) for rgb in rgbs]
    timing = getattr(predictor, "last_timing", {})
    times = tally.times
    for (frame, rgb, conversion_ms), result in zip(batch, predicted):
        clock = time.perf_counter()
        made = node_outputs(rgb, result, frame)
        messages_ms = (time.perf_counter() - clock) * 1e3
        outputs.write_pose_seg(made.messages["pose_seg"])
        if made.overlay is not None:
            outputs.write_overlay(made.messages["overlay"])
            outputs.video.write(made.overlay)
        times.add("conversion", conversion_ms)
        for stage in MODEL_STAGES:
            if f"{stage}_ms" in timing:
                times.add(stage, timing[f"{stage}_ms"])
        times.add("messages", messages_ms)
        times.add("total", conversion_ms + timing.get("total_ms", 0.0) + messages_ms)
        tally.people.append(len(made.result))
        tally.tracking.add_pose_seg(made.messages["pose_seg"])
        if tally.evaluation is not None:
            tally.evaluation.add(frame.index, made.result)
