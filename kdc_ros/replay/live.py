"""Live replay: play a bag's images through rclpy into a running kdc node, record what it publishes.

Frames are published at their recorded spacing (divided by `rate`) to a kdc node, by default one
started in this process with the same model (warmed up on the first frame first, as a running node
would be); with `node_namespace` an already running node is targeted instead. Every PoseSeg the
node publishes is matched to its input by header stamp:
  end_to_end latency = time received here - time its input was published here;
  drop rate = share of published frames without an output (the node keeps only the newest frame);
  output rate = outputs per second between the first and the last output.
overlay.mp4 shows the overlay topic as a viewer saw it: at each input period, the newest overlay
received so far (a dropped frame repeats the previous overlay).

Outputs are streamed: each PoseSeg and overlay goes to the output bag (and the video) as it arrives,
and only running figures are kept for the report, so memory stays flat over a long bag.
"""
from __future__ import annotations

import queue
import threading
import time
from array import array
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from kdc_msgs.msg import PoseSeg
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from tqdm import tqdm

from ..bags.image_bag import ImageBag
from ..harness import NodeHarness
from ..node.image_io import ImageError, image_to_rgb
from .tracking_metrics import TrackingStats
from .annotations import FrameEvaluation
from .latency import summarize
from .offline import message_rgb
from .outputs import ReplayOutputs
from .pose_seg_result import result_from_pose_seg
from .report import people_fields, tracking_fields

# Like `ros2 bag play`: reliable, a short queue (the node's best-effort input matches it too).
PLAYER_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
# The node's outputs are reliable; a deep queue so the recorder never loses one while busy.
RECORDER_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE)
DISCOVERY_TIMEOUT_S = 20.0
FRAME_BUFFER = 16          # frames read ahead of playback
MIN_DRAIN_S = 2.0          # after the last frame, wait at least this long without output before stopping
MAX_DRAIN_S = 60.0


@dataclass
class Received:
    topic: str
    msg: object
    monotonic: float


@dataclass
class LiveRun:
    """What happened during playback, as running figures (nothing kept per output but numbers).

    The node answers frames in the order they were published and drops the ones it skipped for good
    (it keeps only the newest), so when the output of a frame arrives, every frame published before
    it is settled: only frames still waiting for an output are remembered.
    """

    waiting: OrderedDict = field(default_factory=OrderedDict)   # stamp -> (monotonic publish time, frame index)
    matched: int = 0                                            # outputs matched to a published frame
    foreign_outputs: int = 0                                    # PoseSeg whose stamp we never published (or settled)
    latencies_ms: array = field(default_factory=lambda: array("d"))
    people: array = field(default_factory=lambda: array("I"))   # people per output, in frame order
    first_output: float | None = None
    last_output: float | None = None
    max_latency_s: float = 0.0
    tracking: TrackingStats = field(default_factory=TrackingStats)
    evaluation: FrameEvaluation | None = None

    def published(self, stamp: tuple[int, int], monotonic: float, frame_index: int) -> None:
        self.waiting[stamp] = (monotonic, frame_index)
        self.waiting.move_to_end(stamp)  # a repeated stamp: the later frame is the one answered

    def output(self, msg, received: float) -> bool:
        """Account one PoseSeg received at monotonic time `received`; False when it matches no frame."""
        key = stamp_key(msg.header)
        if key not in self.waiting:
            self.foreign_outputs += 1
            return False
        while True:  # frames published before this one were skipped by the node: settled
            stamp, (published, frame_index) = self.waiting.popitem(last=False)
            if stamp == key:
                break
        latency = received - published
        self.matched += 1
        self.latencies_ms.append(latency * 1e3)
        self.max_latency_s = max(self.max_latency_s, latency)
        self.first_output = received if self.first_output is None else self.first_output
        self.last_output = received
        self.people.append(len(msg.people))
        self.tracking.add_pose_seg(msg)
        if self.evaluation is not None and self.evaluation.wants(frame_index):
            self.evaluation.add(frame_index, result_from_pose_seg(msg))
        return True


def stamp_key(header) -> tuple[int, int]:
    return header.stamp.sec, header.stamp.nanosec


def node_topics(topic: str, compressed: bool) -> tuple[str, str]:
    """(topic to publish on, the node's image_topic parameter): compressed images go on
    <image_topic>/compressed, image_transport's convention the node follows."""
    if not compressed:
        return topic, topic
    base = topic.removesuffix("/compressed")
    return base + "/compressed", base


def replay_live(bag_path: str | Path, topic: str, out_dir: str | Path, predictor=None, *, rate: float = 1.0,
                overlay: bool = True, annotations: str | Path | None = None, node_namespace: str | None = None,
                node_parameters: dict | None = None, progress: bool = True) -> dict:
    """Play `topic` of the bag into a kdc node; returns the report (also written to out_dir)."""
    if rate <= 0:
        raise ValueError(f"rate must be positive, not {rate}")
    with ImageBag(bag_path, topic) as bag:
        # Annotations first: a bad file fails before the replay, and outputs are scored as they come.
        evaluation = FrameEvaluation(annotations, bag.frame_names()) if annotations is not None else None
        publish_topic, image_topic = node_topics(topic, bag.compressed)
        period = 1.0 / ((bag.rate_hz or 30.0) * rate)
        outputs = ReplayOutputs(out_dir, 1.0 / period, overlay)
        try:
            if node_namespace is None:
                warm_up(predictor, bag)
                harness = NodeHarness(predictor, driver_name="kdc_replay", parameters={
                    "image_topic": image_topic, "compressed": bag.compressed, **(node_parameters or {})})
            else:
                harness = NodeHarness(namespace=node_namespace, running=True, driver_name="kdc_replay")
            with harness:
                arrivals: queue.Queue[Received] = queue.Queue()
                publisher = harness.publisher(publish_topic, bag.message_class, PLAYER_QOS)
                wanted = {"pose_seg": PoseSeg, **({"overlay": Image} if overlay else {})}
                for name, message_type in wanted.items():
                    harness.record(harness.output(name), message_type, keep=0, qos=RECORDER_QOS,
                                   on_message=lambda msg, arrived, name=name: arrivals.put(Received(name, msg, arrived)))
                harness.connected([publisher], [harness.output(name) for name in wanted], DISCOVERY_TIMEOUT_S)
                recorder = Recorder(arrivals, outputs, LiveRun(evaluation=evaluation))
                frames, playback_s = recorder.play(bag, topic, publisher, rate, progress)
                recorder.drain(frames, period)
        finally:
            outputs.close()
        report = _report(recorder.run, frames, playback_s, bag, topic, rate, outputs, overlay, node_namespace,
                         predictor)
        if evaluation is not None:
            report["evaluation"] = evaluation.report(frames)
        outputs.write_report(report)
    return report


def warm_up(predictor, bag: ImageBag) -> None:
    """Run the model once on the bag's first frame: a running node has seen frames before."""
    first = next(iter(bag.frames()), None)
    if predictor is not None and first is not None:
        try:
            predictor(message_rgb(first.msg))
        except ImageError:
            pass  # a bad first frame: the node will reject it too; no warm-up then


class Recorder:
    """Plays frames and stores what the node sends back: PoseSeg and overlays into the output bag,
    the overlay stream into overlay.mp4 at the input period."""

    def __init__(self, arrivals: queue.Queue, outputs: ReplayOutputs, run: LiveRun | None = None) -> None:
        self.arrivals, self.outputs = arrivals, outputs
        self.run = run if run is not None else LiveRun()
        self._overlay = None  # newest overlay received, RGB

    def play(self, bag: ImageBag, topic: str, publisher, rate: float, progress: bool) -> tuple[int, float]:
        """Publish every frame at its slot, storing arrivals in between; (frames, seconds of playback)."""
        frames_queue: queue.Queue = queue.Queue(maxsize=FRAME_BUFFER)
        reader = threading.Thread(target=_read_ahead, args=(bag, frames_queue), daemon=True)
        reader.start()
        count, first_log_ns, start = 0, None, time.monotonic()
        with tqdm(total=bag.count, unit="frame", desc="live replay", disable=not progress) as bar:
            while (frame := frames_queue.get()) is not None:
                if first_log_ns is None:
                    first_log_ns, start = frame.log_time_ns, time.monotonic()
                self.store_arrivals(until=start + (frame.log_time_ns - first_log_ns) / 1e9 / rate)
                self._show_overlay()
                self.run.published(stamp_key(frame.msg.header), time.monotonic(), frame.index)
                publisher.publish(frame.msg)
                self.outputs.write_input(topic, frame.msg, frame.log_time_ns)
                count += 1
                bar.update()
        reader.join()
        if count == 0:
            raise ValueError(f"{bag.path}: no frames on {topic}" + (f" ({bag.damage})" if bag.damage else ""))
        return count, time.monotonic() - start

    def drain(self, frames: int, period: float) -> None:
        """Keep recording after the last frame until every frame has an output or the node went quiet."""
        run = self.run
        quiet = max(MIN_DRAIN_S, 3 * run.max_latency_s)
        deadline, last_count, last_change = time.monotonic() + MAX_DRAIN_S, -1, time.monotonic()
        while run.matched < frames and run.waiting and time.monotonic() < deadline:
            if run.matched != last_count:
                last_count, last_change = run.matched, time.monotonic()
            elif time.monotonic() - last_change > quiet:
                break
            self.store_arrivals(until=time.monotonic() + period)
            self._show_overlay()
        # The overlay of the last frame may trail its PoseSeg by a moment.
        self.store_arrivals(until=time.monotonic() + 0.2)
        self._show_overlay()

    def store_arrivals(self, until: float) -> None:
        """Write everything that arrives until monotonic time `until` into the output bag."""
        while True:
            remaining = until - time.monotonic()
            try:
                received = self.arrivals.get(timeout=remaining) if remaining > 0 else self.arrivals.get_nowait()
            except queue.Empty:
                return
            if received.topic == "overlay":
                self.outputs.write_overlay(received.msg)
                self._overlay = image_to_rgb(received.msg)
            elif self.run.output(received.msg, received.monotonic):
                self.outputs.write_pose_seg(received.msg)

    def _show_overlay(self) -> None:
        if self._overlay is not None and self.outputs.video is not None:
            self.outputs.video.write(self._overlay)


def _read_ahead(bag: ImageBag, frames_queue: queue.Queue) -> None:
    try:
        for frame in bag.frames():
            frames_queue.put(frame)
    finally:
        frames_queue.put(None)


def _report(run: LiveRun, frames: int, playback_s: float, bag: ImageBag, topic: str, rate: float,
            outputs: ReplayOutputs, overlay: bool, node_namespace, predictor) -> dict:
    output_span = run.last_output - run.first_output if run.matched > 1 else 0.0
    return {
        "mode": "live", "bag": str(bag.path), "topic": topic, "message_type": bag.msgtype,
        "frames": frames, "outputs": run.matched, "foreign_outputs": run.foreign_outputs,
        "drop_rate": round(1 - run.matched / frames, 4),
        "rate": rate, "input_rate_hz": round((frames - 1) / playback_s, 3) if frames > 1 and playback_s > 0 else 0.0,
        "output_rate_hz": round((run.matched - 1) / output_span, 3) if output_span > 0 else 0.0,
        **people_fields(run.people), **tracking_fields(run.tracking),
        "latency_ms": {"end_to_end": summarize(run.latencies_ms)},
        "throughput_fps": round(run.matched / playback_s, 3) if playback_s > 0 else 0.0,
        "node": node_namespace or "in-process", "device": str(getattr(predictor, "device", "?")),
        "bag_damage": bag.damage,
        "files": {"bag": str(outputs.bag_path), "overlay_video": str(outputs.video_path) if overlay else None,
                  "report": str(outputs.report_path)},
    }
