"""The `kdc` node: camera images in, kdc_msgs/PoseSeg + RViz overlays out. Wiring only: a frame's
messages are made by kdc_ros.node.frame_outputs. KdcRuntime is what the node does, in lifecycle steps;
KdcNode runs them as it is built, KdcLifecycleNode (kdc_ros.node.lifecycle) on transitions.

Subscription callbacks only park the newest frame (kdc_ros.node.latest_frame); one worker thread runs the
shared model on whichever camera waited longest, so inference never blocks the executor and a slow
model skips stale frames. Topic layout (see the README):

  one camera (image_topics empty):   ~/pose_seg, ~/overlay, ~/markers, ~/detections
  several (image_topics non-empty):  ~/<camera_name>/pose_seg, ... where camera_name is the topic's
                                     namespace with / -> _ (/front/image_raw -> front)
  a camera with aligned depth (depth_topic / depth_topics) also gets ~/markers_3d, and its
  Person.keypoints_3d are filled (kdc_ros.node.depth_input).
"""
from __future__ import annotations

import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from kdc_msgs.msg import PoseSeg
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from . import params
from .depth_input import DepthInput
from .diagnostics import FrameStats, one_line
from .faults import is_out_of_memory, release_cached_memory
from .frame_outputs import CameraMemory, frame_outputs
from .image_io import ImageError, compressed_to_rgb, image_to_rgb
from .latest_frame import LatestFrames
from .visualization import import_vision_msgs

# Outputs are reliable (they match reliable and best-effort subscribers alike), keep-last 5.
OUTPUT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE)
OUTPUT_TOPICS = {"pose_seg": PoseSeg, "overlay": Image, "markers": MarkerArray}  # + detections (vision_msgs)
WARN_THROTTLE_S = 5.0


def camera_name(topic: str) -> str:
    """Name of a camera in output topics: its image topic's namespace, / -> _ (/a/b/image_raw -> a_b);
    the topic itself for a topic without namespace (/image -> image)."""
    segments = [s for s in topic.lstrip("~").split("/") if s]
    return "_".join(segments[:-1]) or segments[-1]


@dataclass
class Camera:
    """One input topic and everything published for it."""

    name: str                 # "" in the one-camera layout
    input_topic: str
    publishers: dict = field(default_factory=dict)
    stats: FrameStats = field(default_factory=FrameStats)
    memory: CameraMemory = field(default_factory=CameraMemory)  # tracks and markers across frames
    depth: DepthInput | None = None          # aligned depth of this camera, when configured

    def output(self, topic: str) -> str:
        return f"~/{self.name}/{topic}" if self.name else f"~/{topic}"


class KdcRuntime:
    """What the kdc node does, in the steps of a managed lifecycle, mixed into an rclpy node:
    _declare (parameters, at construction), _configure (the model, the cameras and their publishers),
    _activate (subscriptions, the inference worker, diagnostics), _deactivate (none of those) and
    _cleanup (the model and publishers freed). KdcNode configures and activates as it is built;
    KdcLifecycleNode (kdc_ros.node.lifecycle) on transitions.

    `predictor` (callable RGB uint8 -> PoseSegResult) is built from the model/device/half parameters
    when not given; tests and embedding applications pass their own. `on_frame(camera name, stage
    milliseconds)` is called after each frame is published (benchmarks read the node's clock)."""

    def _declare(self, defaults: dict | None, on_frame: Callable[[str, dict], None] | None) -> None:
        self.frames = LatestFrames()  # before anything can fail: destroy_node() closes it
        self._worker, self._timer, self._service = None, None, None
        self.predictor, self.cameras, self.image_subscriptions, self._camera_subscriptions = None, [], [], []
        self.on_frame = on_frame
        self.settings = params.declare_parameters(self, defaults)
        self.add_on_set_parameters_callback(self._on_set_parameters)

    def _configure(self, predictor=None) -> None:
        self.predictor = predictor if predictor is not None else self._load_predictor()
        self._warn_about_thresholds(self.settings)
        self.vision_msgs = import_vision_msgs()
        if self.vision_msgs is None:
            self.get_logger().info("vision_msgs is not installed: ~/detections (Detection2DArray) is off")
        topics = self.settings["image_topics"] or [self.settings["image_topic"]]
        names = [camera_name(t) for t in topics] if self.settings["image_topics"] else [""]
        if len(set(names)) != len(names):
            raise ValueError(f"image_topics {topics} give the same camera name twice ({names}); "
                             f"put each camera in its own namespace")
        depth = params.depth_sources(self.settings)
        cache = (self.settings["depth_cache_size"], self.settings["depth_cache_mb"] << 20)
        self.cameras = [Camera(name, topic, depth=DepthInput(*source, *cache) if source else None)
                        for name, topic, source in zip(names, topics, depth)]
        for camera in self.cameras:
            self._create_publishers(camera)
        self.diagnostics_publisher = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._create_enable_service()

    def _activate(self) -> None:
        self.frames = LatestFrames()
        for camera in self.cameras:
            self._subscribe(camera)
        self._worker = threading.Thread(target=self._run_worker, name="kdc_inference", daemon=True)
        self._worker.start()
        self._timer = self.create_timer(self.settings["diagnostics_period"], self._publish_diagnostics)
        self.get_logger().info("listening on " + ", ".join(s.topic_name for s in self.image_subscriptions))

    def _deactivate(self) -> None:
        for subscription in self.image_subscriptions + self._camera_subscriptions:
            self.destroy_subscription(subscription)
        self.image_subscriptions, self._camera_subscriptions = [], []
        self.frames.close()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout=5.0)
        self._worker = None
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None

    def _cleanup(self) -> None:
        for camera in self.cameras:
            for publisher in camera.publishers.values():
                self.destroy_publisher(publisher)
        if self.cameras:
            self.destroy_publisher(self.diagnostics_publisher)
        if self._service is not None:
            self.destroy_service(self._service)
            self._service = None
        self.cameras, self.predictor = [], None
        release_cached_memory()  # the model's device memory goes back to the device

    # --- setup -------------------------------------------------------------------------------------
    def _load_predictor(self):
        import torch  # imported only when the node builds its own model

        import kdc_model
        from kdc_model.inference.backends import default_threads

        torch.set_num_threads(self.settings["threads"] or default_threads())
        fallback = self.settings["device_fallback"]
        with warnings.catch_warnings(record=True) as caught:  # e.g. "device cuda is not available"
            warnings.simplefilter("always")
            try:
                predictor = kdc_model.load_model(self.settings["model"], device=self.settings["device"],
                                                 half=self.settings["half"], strict_device=not fallback,
                                                 backend=self.settings["backend"],
                                                 input_size=params.model_input_size(self.settings["input_size"]),
                                                 multi_scale=params.model_multi_scale(self.settings["multi_scale"]),
                                                 int8="auto" if self.settings["int8"] else False)
            except RuntimeError as err:
                if fallback:
                    raise
                raise ValueError(f"{err} (device_fallback is false)") from None
        for warning in caught:
            self.get_logger().warning(str(warning.message))
        backend = getattr(predictor, "backend", "torch") + (" int8" if getattr(predictor, "int8", False) else "")
        if self.settings["backend"] == "auto":
            backend += f", picked by backend auto: {getattr(predictor, 'backend_reason', '?')}"
        sides = "+".join(str(side) for side in predictor.input_sides)
        self.get_logger().info(f"model {self.settings['model']} on {getattr(predictor, 'device', '?')} ({backend}, "
                               f"{torch.get_num_threads()} threads), input {sides}")
        return predictor

    def _create_publishers(self, camera: Camera) -> None:
        for topic, message_type in OUTPUT_TOPICS.items():
            camera.publishers[topic] = self.create_publisher(message_type, camera.output(topic), OUTPUT_QOS)
        if self.vision_msgs is not None:
            camera.publishers["detections"] = self.create_publisher(
                self.vision_msgs.Detection2DArray, camera.output("detections"), OUTPUT_QOS)
        if camera.depth is not None:
            camera.publishers["markers_3d"] = self.create_publisher(MarkerArray, camera.output("markers_3d"),
                                                                    OUTPUT_QOS)

    def _subscribe(self, camera: Camera) -> None:
        reliability = {"best_effort": ReliabilityPolicy.BEST_EFFORT,
                       "reliable": ReliabilityPolicy.RELIABLE}[self.settings["reliability"]]
        input_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=reliability)
        if camera.depth is not None:
            # Depth frames wait in a stamp cache for their colour frame: a few may queue here too.
            depth_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=reliability)
            self._camera_subscriptions += [
                self.create_subscription(Image, camera.depth.depth_topic, lambda msg: self._on_depth(camera, msg),
                                         depth_qos),
                self.create_subscription(CameraInfo, camera.depth.camera_info_topic, camera.depth.on_camera_info,
                                         input_qos)]
        if self.settings["compressed"]:
            message_type, topic = CompressedImage, camera.input_topic.rstrip("/") + "/compressed"
        else:
            message_type, topic = Image, camera.input_topic
        self.image_subscriptions.append(
            self.create_subscription(message_type, topic, lambda msg: self._on_image(camera, msg), input_qos))

    def _create_enable_service(self) -> None:
        try:
            from std_srvs.srv import SetBool
        except ImportError:
            self.get_logger().info("std_srvs is not installed: no ~/enable service; set the enable parameter")
            return
        self._service = self.create_service(SetBool, "~/enable", self._on_enable)

    # --- executor side -----------------------------------------------------------------------------
    def _on_image(self, camera: Camera, msg) -> None:
        if not self.settings["enable"]:
            return
        camera.stats.count_received()
        if self.frames.put(camera.name, msg):
            camera.stats.count_dropped()

    def _on_depth(self, camera: Camera, msg) -> None:
        problem = camera.depth.on_depth(msg, self.settings["max_pixels"])
        if problem is not None:  # refused before its bytes were kept
            camera.stats.count_depth_rejected(problem)
            self.get_logger().warning(f"{camera.depth.depth_topic}: depth frame rejected: {problem}",
                                      throttle_duration_sec=WARN_THROTTLE_S)

    def _on_enable(self, request, response):
        result = self.set_parameters([Parameter("enable", value=bool(request.data))])[0]
        response.success = result.successful
        response.message = ("enabled" if request.data else "paused") if result.successful else result.reason
        return response

    def _on_set_parameters(self, changes: list[Parameter]) -> SetParametersResult:
        for change in changes:
            reason = params.check_value(change.name, change.value)
            if reason is not None:
                return SetParametersResult(successful=False, reason=reason)
        if any(change.name in params.THRESHOLDS for change in changes):
            self._warn_about_thresholds({**self.settings, **{change.name: change.value for change in changes}})
        for change in changes:
            self.settings[change.name] = change.value
            if change.name == "enable" and not change.value:
                self.frames.clear()
            if change.name == "tracking":
                for camera in self.cameras:
                    camera.memory.tracker.reset()
        return SetParametersResult(successful=True)

    def _warn_about_thresholds(self, settings: dict) -> None:
        """The node's thresholds only act above the model decoder's own: say so when one is below."""
        for warning in params.threshold_warnings(settings, getattr(self.predictor, "decoder", None)):
            self.get_logger().warning(warning)

    def _publish_diagnostics(self) -> None:
        prefix = self.get_fully_qualified_name()
        status = [camera.stats.summary(f"{prefix}: {camera.name or 'camera'}", camera.input_topic,
                                       enabled=self.settings["enable"]) for camera in self.cameras]
        self.diagnostics_publisher.publish(DiagnosticArray(header=self._stamp_now(), status=status))

    def _stamp_now(self) -> Header:
        return Header(stamp=self.get_clock().now().to_msg())

    # --- inference worker --------------------------------------------------------------------------
    def _run_worker(self) -> None:
        cameras = {camera.name: camera for camera in self.cameras}
        while (taken := self.frames.take()) is not None:
            name, arrived, msg = taken
            if not self.settings["enable"]:
                continue
            try:
                self._process(cameras[name], msg, arrived)
            except Exception as err:
                if not self.context.ok():
                    return  # shutting down (e.g. Ctrl-C mid-frame): the publishers are gone
                # A bug (not a bad frame, not the model: _process handles those) must cost one frame,
                # not the worker: count it as failed, say it is a bug, and keep serving.
                cameras[name].stats.count_failed(f"bug: {type(err).__name__}: {_first_line(err)}")
                self.get_logger().error(f"{name or 'camera'}: frame failed (a bug): {type(err).__name__}: "
                                        f"{_first_line(err)}", throttle_duration_sec=WARN_THROTTLE_S)

    def _process(self, camera: Camera, msg, arrived: float) -> None:
        """One frame through conversion, model, messages and publishers. A frame that cannot be converted
        and a model error are counted here (rejected, failed/oom); anything it raises is a bug."""
        stage_ms = {}
        clock = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            stage_ms[stage] = (now - clock) * 1e3
            clock = now

        try:
            to_rgb = compressed_to_rgb if isinstance(msg, CompressedImage) else image_to_rgb
            rgb = to_rgb(msg, self.settings["max_pixels"])
        except ImageError as err:
            camera.stats.count_rejected(str(err))
            self.get_logger().warning(f"{camera.input_topic}: frame rejected: {_first_line(err)}",
                                      throttle_duration_sec=WARN_THROTTLE_S)
            return
        lap("conversion")
        try:
            result = self.predictor(rgb)
        except Exception as err:  # e.g. CUDA out of memory: report, skip the frame, keep serving
            if is_out_of_memory(err):
                release_cached_memory()  # the next (smaller) frame must find the memory this one held
                camera.stats.count_oom(f"{type(err).__name__}: {_first_line(err)}")
            else:
                camera.stats.count_failed(f"{type(err).__name__}: {_first_line(err)}")
            self.get_logger().error(f"{camera.input_topic}: inference failed: {type(err).__name__}: "
                                    f"{_first_line(err)}", throttle_duration_sec=WARN_THROTTLE_S)
            return
        lap("model")
        for stage, ms in getattr(self.predictor, "last_timing", {}).items():
            stage = stage.removesuffix("_ms")
            if stage in ("preprocess", "network", "decode"):
                stage_ms[stage] = ms

        outputs = frame_outputs(rgb, result, msg.header, self.settings, camera.memory,
                                wanted=lambda name: self._wanted(camera, name), arrived=arrived,
                                lift=lambda result, header: self._lift(camera, result, header),
                                vision_msgs=self.vision_msgs, lap=lap)
        for topic, message in outputs.messages.items():
            camera.publishers[topic].publish(message)
        lap("publish")
        del stage_ms["model"]  # reported as its preprocess/network/decode parts
        stage_ms["total"] = (time.monotonic() - arrived) * 1e3  # arrival -> published, waiting included
        camera.stats.record(stage_ms)
        if self.on_frame is not None:
            self.on_frame(camera.name, stage_ms)

    def _lift(self, camera: Camera, result, header):
        """3D keypoints from the camera's aligned depth (None without depth); misses are counted."""
        if camera.depth is None:
            return None
        lifted = camera.depth.lift(result, header, self.settings["depth_tolerance"], self.settings["depth_wait"],
                                   self.settings["max_pixels"])
        if lifted.problem is not None:
            camera.stats.count_depth_unmatched(lifted.problem)
            self.get_logger().warning(f"{camera.input_topic}: no 3D for this frame: {one_line(lifted.problem)}",
                                      throttle_duration_sec=WARN_THROTTLE_S)
        return lifted

    @staticmethod
    def _wanted(camera: Camera, topic: str) -> bool:
        """Visualisations cost time: build them only for topics someone listens to."""
        publisher = camera.publishers.get(topic)
        return publisher is not None and publisher.get_subscription_count() > 0



class KdcNode(KdcRuntime, Node):
    """The kdc node, working from the moment it is built (KdcRuntime says what it does)."""

    def __init__(self, predictor=None, *, defaults: dict | None = None,
                 on_frame: Callable[[str, dict], None] | None = None, **node_kwargs) -> None:
        super().__init__(params.NODE_NAME, **node_kwargs)
        self._declare(defaults, on_frame)
        self._configure(predictor)
        self._activate()

    def destroy_node(self) -> None:
        self._deactivate()
        super().destroy_node()


def main(args=None) -> int:
    """Entry point of `kdc_node` / `python -m kdc_ros.node`; exit status 1 when startup fails."""
    return spin_node(KdcNode, args)


def spin_node(node_class, args=None) -> int:
    """Start `node_class()` and spin it until shutdown; exit status 1 (one fatal line) when it refuses
    to start, 0 after Ctrl-C or an external shutdown."""
    rclpy.init(args=args)
    try:
        node = node_class()
    except ValueError as err:  # kdc_model's CheckpointError (missing/corrupt file) or a bad parameter
        rclpy.logging.get_logger(params.NODE_NAME).fatal(f"cannot start: {err}")
        rclpy.try_shutdown()
        return 1
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def _first_line(err: BaseException) -> str:
    """The first line of an error, cut short: errors may quote a message (a log line stays a line)."""
    return one_line(str(err))

