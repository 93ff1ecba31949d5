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
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import rclpy
from kdc_msgs.msg import PoseSeg
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from tqdm import tqdm

from ..bags.image_bag import ImageBag
from ..image_io import image_to_rgb
from .annotations import evaluate_frames
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
    """What happened during playback, keyed by input stamp (sec, nanosec)."""

    published_at: dict = field(default_factory=dict)    # stamp -> monotonic publish time
    frame_index: dict = field(default_factory=dict)     # stamp -> index of the frame on the topic
    outputs: dict = field(default_factory=dict)         # stamp -> (PoseSeg, monotonic receive time)
    foreign_outputs: int = 0                            # PoseSeg whose stamp we never published


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
        publish_topic, image_topic = node_topics(topic, bag.compressed)
        period = 1.0 / ((bag.rate_hz or 30.0) * rate)
        outputs = ReplayOutputs(out_dir, 1.0 / period, overlay)
        context = rclpy.Context()
        rclpy.init(context=context)
        executor = SingleThreadedExecutor(context=context)
        nodes, stop, spinner = [], threading.Event(), None
        try:
            if node_namespace is None:
                nodes.append(_start_node(predictor, bag, context, image_topic, node_parameters or {}))
                output_prefix = "/kdc"
            else:
                output_prefix = node_namespace.rstrip("/") + "/kdc"
            player = rclpy.create_node("kdc_replay", context=context)
            nodes.append(player)
            for node in nodes:
                executor.add_node(node)
            arrivals: queue.Queue[Received] = queue.Queue()
            publisher = player.create_publisher(bag.message_class, publish_topic, PLAYER_QOS)
            wanted = {"pose_seg": PoseSeg, **({"overlay": Image} if overlay else {})}
            subscriptions = [player.create_subscription(
                message_type, f"{output_prefix}/{name}",
                lambda msg, name=name: arrivals.put(Received(name, msg, time.monotonic())), RECORDER_QOS)
                for name, message_type in wanted.items()]
            spinner = threading.Thread(target=_spin, args=(executor, stop), daemon=True)
            spinner.start()
            _wait_for_discovery(publisher, subscriptions, output_prefix)
            recorder = Recorder(arrivals, outputs)
            frames, playback_s = recorder.play(bag, topic, publisher, rate, progress)
            recorder.drain(frames, period)
        finally:
            outputs.close()
            stop.set()  # stop spinning before the nodes go away
            if spinner is not None:
                spinner.join()
            for node in nodes:
                executor.remove_node(node)
                node.destroy_node()
            executor.shutdown()
            rclpy.try_shutdown(context=context)
        run = recorder.run
        report = _report(run, frames, playback_s, bag, topic, rate, outputs, overlay, node_namespace, predictor)
        if annotations is not None:
            results = {run.frame_index[stamp]: result_from_pose_seg(msg) for stamp, (msg, _) in run.outputs.items()}
            report["evaluation"] = evaluate_frames(annotations, bag.frame_names(), frames, results)
        outputs.write_report(report)
    return report


def _start_node(predictor, bag: ImageBag, context, image_topic: str, parameters: dict):
    from ..node import KdcNode  # the node pulls in the model stack; only a live replay needs it

    first = next(iter(bag.frames()), None)
    if predictor is not None and first is not None:
        predictor(message_rgb(first.msg))  # warm-up: a running node has seen frames before
    values = {"image_topic": image_topic, "compressed": bag.compressed, **parameters}
    overrides = [Parameter(name, value=value) for name, value in values.items()]
    return KdcNode(predictor, context=context, parameter_overrides=overrides)


def _spin(executor: SingleThreadedExecutor, stop: threading.Event) -> None:
    while not stop.is_set():
        executor.spin_once(timeout_sec=0.05)


def _wait_for_discovery(publisher, subscriptions, output_prefix: str) -> None:
    deadline = time.monotonic() + DISCOVERY_TIMEOUT_S
    while time.monotonic() < deadline:
        if publisher.get_subscription_count() > 0 and all(s.get_publisher_count() > 0 for s in subscriptions):
            time.sleep(0.2)  # let the reliable readers and writers finish matching both ways
            return
        time.sleep(0.05)
    missing = [s.topic_name for s in subscriptions if s.get_publisher_count() == 0]
    if publisher.get_subscription_count() == 0:
        missing.insert(0, f"a subscriber of {publisher.topic_name}")
    raise TimeoutError(f"no kdc node found within {DISCOVERY_TIMEOUT_S:.0f} s (missing: {', '.join(missing)}); "
                       f"is it running under {output_prefix} with the same ROS_DOMAIN_ID?")


class Recorder:
    """Plays frames and stores what the node sends back: PoseSeg and overlays into the output bag,
    the overlay stream into overlay.mp4 at the input period."""

    def __init__(self, arrivals: queue.Queue, outputs: ReplayOutputs) -> None:
        self.arrivals, self.outputs = arrivals, outputs
        self.run = LiveRun()
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
                key = stamp_key(frame.msg.header)
                self.run.published_at[key], self.run.frame_index[key] = time.monotonic(), frame.index
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
        latencies = [t - run.published_at[k] for k, (_, t) in run.outputs.items()]
        quiet = max(MIN_DRAIN_S, 3 * max(latencies, default=0.0))
        deadline, last_count, last_change = time.monotonic() + MAX_DRAIN_S, -1, time.monotonic()
        while len(run.outputs) < frames and time.monotonic() < deadline:
            if len(run.outputs) != last_count:
                last_count, last_change = len(run.outputs), time.monotonic()
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
            key = stamp_key(received.msg.header)
            if received.topic == "overlay":
                self.outputs.write_overlay(received.msg)
                self._overlay = image_to_rgb(received.msg)
            elif key in self.run.published_at:
                self.run.outputs[key] = (received.msg, received.monotonic)
                self.outputs.write_pose_seg(received.msg)
            else:
                self.run.foreign_outputs += 1

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
    matched = sorted(run.outputs.items(), key=lambda item: item[1][1])
    latencies_ms = [(received - run.published_at[key]) * 1e3 for key, (_, received) in matched]
    receive_times = [received for _, (_, received) in matched]
    output_span = receive_times[-1] - receive_times[0] if len(receive_times) > 1 else 0.0
    in_order = [msg for _, (msg, _) in sorted(run.outputs.items(), key=lambda item: run.frame_index[item[0]])]
    people = [len(msg.people) for msg in in_order]
    return {
        "mode": "live", "bag": str(bag.path), "topic": topic, "message_type": bag.msgtype,
        "frames": frames, "outputs": len(matched), "foreign_outputs": run.foreign_outputs,
        "drop_rate": round(1 - len(matched) / frames, 4),
        "rate": rate, "input_rate_hz": round((frames - 1) / playback_s, 3) if frames > 1 and playback_s > 0 else 0.0,
        "output_rate_hz": round((len(matched) - 1) / output_span, 3) if output_span > 0 else 0.0,
        **people_fields(people), **tracking_fields(in_order),
        "latency_ms": {"end_to_end": summarize(latencies_ms)},
        "throughput_fps": round(len(matched) / playback_s, 3) if playback_s > 0 else 0.0,
        "node": node_namespace or "in-process", "device": str(getattr(predictor, "device", "?")),
        "bag_damage": bag.damage,
        "files": {"bag": str(outputs.bag_path), "overlay_video": str(outputs.video_path) if overlay else None,
                  "report": str(outputs.report_path)},
    }
