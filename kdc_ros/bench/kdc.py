"""Our rows: the KDC model alone (kdc_model) and the kdc node end to end (kdc_ros.node, real rclpy).

Both time the same Predictor on the same frames with the protocol of runners/timing.py.
- kdc_model: `predictor(rgb)`; the latency is `predictor.last_timing["total_ms"]` (upload,
  letterbox, network, decode, back to image pixels).
- kdc_node: an in-process KdcNode given that predictor; a driver node publishes each frame as a
  sensor_msgs/Image (rgb8, best effort, like a camera driver) and waits for the PoseSeg carrying its
  stamp: latency = publish() -> PoseSeg callback, through DDS both ways, image conversion, model,
  filtering, tracking and message building. One frame in flight at a time. Nobody listens to the
  overlay/markers topics, so the node skips drawing them (as it does in use).
The weights are the packaged default when installed, else a seeded random init of ModelConfig at the
same size: the network's cost does not depend on its weights; the decoder's does, a little, through
how many people it finds (each row says how many).
"""
from __future__ import annotations

import os
import random
import time

import numpy as np

from . import input_sides
from .runners.timing import row, stage_stats, time_calls, with_overhead

BENCH_NAMESPACE = "/kdc_bench"
CAMERA_TOPIC = "camera/image_raw"  # in the bench's namespace, as the node's outputs are


def kdc_predictor(input_size: int | str, weights: str = "auto", device: str = "cpu", backend: str = "torch",
                  int8: bool = False):
    """(Predictor at `input_size`, description of its weights). input_size: a side, or sides merged
    ("320+640": kdc_ros.bench.input_sides). weights: "auto" (the packaged default
    when installed, else random), "default", "random", or a checkpoint path. backend: what runs the
    network (kdc_model.inference.backends: torch, onnxruntime, ...); the export it may need is not timed.
    int8: the network's int8 model where it applies (backend onnxruntime on CPU, weights that have
    one), as the node runs it by default. The network is built as load_model builds it for the node,
    whatever the side."""
    import torch

    from kdc_model import DEFAULT_WEIGHTS, ModelConfig, load_model

    if weights == "auto":
        weights = "default" if DEFAULT_WEIGHTS.installed else "random"
    description = str(weights)
    if weights == "random":
        torch.manual_seed(0)
        weights, description = ModelConfig(), "random init (no packaged weights yet; same compute)"
    # load_model decides where int8 can run ("auto": float32 with the reason otherwise), as for the node.
    first, *more = input_sides(input_size)
    return (load_model(weights, device=device, strict_device=True, backend=backend, input_size=first,
                       multi_scale=tuple(more), int8="auto" if int8 and backend == "onnxruntime" else False), description)


def kdc_model_row(frames, input_size: int, *, predictor=None, weights: str = "auto", device: str = "cpu",
                  warmup: int = 3, rounds: int = 1, backend: str = "torch", int8: bool = False) -> dict:
    """The KDC model alone: Predictor call on each RGB frame, its own total_ms as latency."""
    if predictor is None:
        predictor, weights = kdc_predictor(input_size, weights, device, backend, int8)
    stages, found = [], []

    def call(frame):
        result = predictor(frame)
        stages.append(dict(predictor.last_timing))
        found.append(len(result.scores))
        return result

    times = time_calls(call, frames, warmup, rounds, latency=lambda _, wall: predictor.last_timing["total_ms"])
    stage_ms = stage_stats([model_stages(s) for s in stages[warmup:]])
    import torch

    return row("kdc_model", _backend(predictor), input_size, times, stages_ms=stage_ms, torch_threads=torch.get_num_threads(),
               people_per_frame=round(float(np.mean(found[warmup:])), 2), weights=weights,
               device=str(predictor.device), note="Predictor call: letterbox, network, decode",
               versions=_versions(predictor))


def model_stages(timing: dict) -> dict:
    """A Predictor's last_timing as bench stages: preprocess, network, decode (ms; total left out)."""
    return {stage: timing[f"{stage}_ms"] for stage in ("preprocess", "network", "decode")}


class StageRecorder:
    """A predictor as the node sees it (every attribute passes through), keeping the stage times of
    each call since `clear()`: the bench sends one frame at a time, so one call is one frame."""

    def __init__(self, predictor) -> None:
        self.predictor, self.calls = predictor, []

    def __call__(self, image):
        result = self.predictor(image)
        self.calls.append(model_stages(self.predictor.last_timing))
        return result

    def clear(self) -> None:
        self.calls = []

    def __getattr__(self, name):
        return getattr(self.predictor, name)


def kdc_node_row(frames, input_size: int, *, predictor=None, weights: str = "auto", device: str = "cpu",
                 warmup: int = 3, rounds: int = 1, timeout: float = 30.0) -> dict:
    """The kdc node end to end: sensor_msgs/Image published -> kdc_msgs/PoseSeg received, real rclpy
    (kdc_ros.harness: the node in this process, a driver beside it).

    Discovery stays on loopback and in a ROS domain of this bench's own (ROS_DOMAIN_ID when set,
    else one picked from the process id), with a private rclpy context."""
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_LOCALHOST_ONLY", "1")
    from builtin_interfaces.msg import Time
    from kdc_msgs.msg import PoseSeg
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header

    from ..harness import NodeHarness
    from ..node.image_io import rgb_to_image

    if predictor is None:
        predictor, weights = kdc_predictor(input_size, weights, device)
    recorder = StageRecorder(predictor)
    domain = int(os.environ.get("ROS_DOMAIN_ID") or random.Random(os.getpid()).randint(1, 100))
    # The node's own clock per frame (conversion, tracking, messages, publish; total = arrival to
    # published): what, of the overhead, happens inside the node rather than in transport.
    node_stages: list[dict] = []
    with NodeHarness(recorder, namespace=BENCH_NAMESPACE, domain_id=domain, driver_name="kdc_bench_driver",
                     parameters={"image_topic": CAMERA_TOPIC, "reliability": "best_effort"},
                     on_frame=lambda camera, stage_ms: node_stages.append(dict(stage_ms))) as harness:
        camera_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
        publisher = harness.publisher(CAMERA_TOPIC, Image, camera_qos)
        answers = harness.record(harness.output("pose_seg"), PoseSeg, keep=8)
        harness.connected([publisher], [harness.output("pose_seg")], timeout)

        images = [rgb_to_image(np.ascontiguousarray(f), Header(frame_id="bench")) for f in frames]
        counter = iter(range(1, 1 << 30))
        lost = 0

        def send(frame_index: int, patience: float) -> tuple[float, int] | None:
            """Publish one frame with a fresh stamp and wait for its PoseSeg: (ms, people), or None."""
            stamp = next(counter)
            message = images[frame_index]
            message.header.stamp = Time(sec=stamp, nanosec=0)
            recorder.clear()
            start = time.monotonic()
            publisher.publish(message)
            try:
                received, answer = answers.stamped(stamp, 0, timeout=patience)
            except TimeoutError:
                return None
            return (received - start) * 1e3, len(answer.people)

        for i in range(warmup):  # the first frames after discovery may be dropped (best effort): resend
            for _ in range(20):
                if send(i % len(frames), patience=2.0) is not None:
                    break
            else:
                raise RuntimeError("the kdc node never answered during warm-up")
        times, found, stages = [], [], []
        node_stages.clear()
        for _ in range(rounds):
            for i in range(len(frames)):
                got = send(i, patience=timeout)
                if got is None:
                    lost += 1
                    continue
                times.append(got[0])
                found.append(got[1])
                if len(recorder.calls) == 1:  # this frame's model call (a late one would be ambiguous)
                    stages.append(with_overhead(recorder.calls[0], got[0]))
    return row("kdc_node", _backend(predictor), input_size, times, people_per_frame=round(float(np.mean(found)), 2),
               stages_ms=stage_stats(stages), node_stages_ms=stage_stats(node_stages),
               lost=lost, weights=weights, device=str(getattr(predictor, "device", "?")),
               note="rclpy Image publish -> PoseSeg received (in-process node, loopback DDS, "
                    f"{os.environ.get('RMW_IMPLEMENTATION', 'default rmw')})",
               versions=_versions(predictor))


def kdc_rows(frames, input_size: int, *, weights: str = "auto", device: str = "cpu", warmup: int = 3,
             rounds: int = 1, node: bool = True, backend: str = "torch", int8: bool = False) -> list[dict]:
    """Our rows at `input_size`: the model alone, then the node end to end on the same Predictor."""
    predictor, weights = kdc_predictor(input_size, weights, device, backend, int8)
    rows = [kdc_model_row(frames, input_size, predictor=predictor, weights=weights, warmup=warmup, rounds=rounds)]
    if node:
        rows.append(kdc_node_row(frames, input_size, predictor=predictor, weights=weights, warmup=warmup,
                                 rounds=rounds))
    return rows


def _backend(predictor) -> str:
    """The backend a row names: the predictor's, and "int8" when its network runs quantised."""
    backend = getattr(predictor, "backend", "torch")
    return f"{backend} int8" if getattr(predictor, "int8", False) else backend


def _versions(predictor=None) -> dict:
    import torch
    versions = {"torch": torch.__version__, "numpy": np.__version__}
    if getattr(predictor, "backend", "torch") != "torch":
        import onnxruntime
        versions["onnxruntime"] = onnxruntime.__version__
        versions["providers"] = list(getattr(predictor.runner, "providers", []))
    return versions
