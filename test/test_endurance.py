"""Overload and soak (issue 7): the node under a stream faster than its model, and over many frames.

Overload: a 60 Hz 1280x720 rgb8 stream for KDC_OVERLOAD_SECONDS into a model slower than that: in
the default suite (10 s) a small model held to 100 ms a frame, so it is overloaded on any machine;
the long run (120 s) the real default model at input 640 on the CPU. Memory stays bounded (RSS from /proc/self/status), the
latest-frame policy keeps arrival->publish latency bounded by about two model runs, and at most one
frame ever waits.

Soak: KDC_SOAK_FRAMES generated 160x120 frames (long: 10,000; default suite 300) published in
lockstep (each answered before the next) into a small real model: every frame answered, RSS growth
after warm-up under 50 MB, and the same frame gives the same output at the start and at the end.

Figures are printed (pytest -s) and recorded in the README (Reliability).
"""
from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch
from builtin_interfaces.msg import Time
from kdc_msgs.msg import PoseSeg
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from image_samples import encode
from kdc_model import DEFAULT_WEIGHTS, DecoderConfig, ModelConfig, load_model
from kdc_model.training.synthetic import make_scene
from kdc_ros.replay.pose_seg_result import result_from_pose_seg
from node_helpers import camera_publisher, listen, settled, stamp_key, start_node
from process_memory import rss_mb
from slow_predictor import SlowPredictor


@pytest.fixture
def one_thread():
    # One torch thread: the machine is small and shared; restored after.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def percentile(values, q) -> float:
    return float(np.percentile(np.asarray(values, np.float64), q)) if len(values) else float("nan")


# --- overload --------------------------------------------------------------------------------------
def real_model_at_640():
    """(predictor, name): the packaged weights (else a random init) at input 640: at its own 320 the
    model keeps up with much of a 60 Hz camera here, and a node not overloaded proves nothing."""
    name = "default" if DEFAULT_WEIGHTS.installed else "ModelConfig() random init"
    return load_model("default" if DEFAULT_WEIGHTS.installed else ModelConfig(), device="cpu", input_size=640), name


def slow_small_model():
    """(predictor, name): a small real model held to 100 ms a frame, overloaded by 60 Hz on any machine."""
    small = load_model(ModelConfig(input_size=64, neck_channels=16, head_channels=16), device="cpu")
    return SlowPredictor(small, seconds=0.1), "small random-init model held to 100 ms a frame"


def overload(seconds: float, model, namespace: str, rate_hz: float = 60.0, height: int = 720, width: int = 1280) -> dict:
    predictor, name = model
    rng = np.random.default_rng(0)
    frames = [encode(make_scene(rng, height, width, 2, min_height=300, max_height=600).image, "rgb8")
              for _ in range(4)]
    records = []  # per published frame: the node's own stage milliseconds
    arrivals = []  # (monotonic arrival, stamp) of every output
    with start_node(predictor, namespace, reliability="best_effort", diagnostics_period=0.5,
                    on_frame=lambda camera, stage_ms: records.append(dict(stage_ms))) as live:
        stats = live.node.cameras[0].stats
        frames_in = camera_publisher(live, Image)
        pose_segs = listen(live, "pose_seg", PoseSeg, keep=5,
                           on_message=lambda msg, arrived: arrivals.append((arrived, stamp_key(msg.header))))
        sent_at = {}
        # Warm-up: a few frames answered one by one, so the first model calls do not count.
        for index in range(3):
            frame = frames[index % len(frames)]
            frame.header = Header(stamp=Time(sec=0, nanosec=index), frame_id="warmup")
            frames_in.publish(frame)
            pose_segs.stamped(0, index, timeout=60.0)
        records.clear()
        base = stats.received, stats.processed, stats.dropped
        rss_start = rss_mb()
        rss_samples, max_pending = [rss_start], 0
        period, start = 1.0 / rate_hz, time.monotonic()
        published = 0
        while (now := time.monotonic()) - start < seconds:
            frame = frames[published % len(frames)]
            frame.header = Header(stamp=Time(sec=1 + published, nanosec=0), frame_id="cam")
            sent_at[(1 + published, 0)] = time.monotonic()
            frames_in.publish(frame)
            published += 1
            max_pending = max(max_pending, live.node.frames.pending())
            if published % int(rate_hz) == 0:
                rss_samples.append(rss_mb())
            time.sleep(max(0.0, start + published * period - time.monotonic()))
        elapsed = time.monotonic() - start
        live.wait_for(lambda: settled(live), 30.0, "frames left without an outcome")
        time.sleep(0.5)  # the last outputs reach the client
        rss_end = rss_mb()
        received, processed, dropped = (stats.received - base[0], stats.processed - base[1],
                                         stats.dropped - base[2])
        end_to_end = [(t - sent_at[key]) * 1e3 for t, key in arrivals if key in sent_at]
        failed, rejected = stats.failed, stats.rejected
    totals = [r["total"] for r in records]
    model_ms = [r.get("preprocess", 0) + r.get("network", 0) + r.get("decode", 0) for r in records]
    return dict(model=name, seconds=elapsed, published=published, input_hz=published / elapsed,
                received=received, processed=processed, dropped=dropped, failed=failed, rejected=rejected,
                output_fps=processed / elapsed, max_pending=max_pending, rss_start=rss_start, rss_end=rss_end,
                rss_peak=max(rss_samples + [rss_end]), rss_samples=[round(r) for r in rss_samples], total_p50=percentile(totals, 50),
                total_p95=percentile(totals, 95), total_max=max(totals, default=float("nan")),
                model_p50=percentile(model_ms, 50), model_p95=percentile(model_ms, 95),
                e2e_p95=percentile(end_to_end, 95))


def check_overload(report: dict) -> None:
    print("\noverload: " + ", ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}"
                                     for k, v in report.items()))
    assert report["failed"] == 0 and report["rejected"] == 0
    assert report["processed"] >= 3, "the model never kept up with anything"
    assert report["max_pending"] <= 1, "frames are queueing"
    assert report["received"] == report["processed"] + report["dropped"], "a frame has no outcome"
    assert report["dropped"] > report["processed"], "not overloaded: the test proves nothing"
    # Latest frame: a frame waits at most for the run in progress, then has its own run.
    assert report["total_p95"] < 2.5 * report["model_p95"] + 300, report
    # Queueing 2.7 MB frames at 60 Hz would grow by ~160 MB/s; the latest-frame policy holds one.
    assert report["rss_end"] - report["rss_start"] < 150, report


def test_overload_short(one_thread, namespace):
    check_overload(overload(float(os.environ.get("KDC_OVERLOAD_SHORT_SECONDS", "10")), slow_small_model(), namespace))


@pytest.mark.long
@pytest.mark.timeout(1800)
def test_overload_long(one_thread, namespace):
    check_overload(overload(float(os.environ.get("KDC_OVERLOAD_SECONDS", "120")), real_model_at_640(), namespace))


# --- soak ------------------------------------------------------------------------------------------
def soak(frames_total: int, warmup: int, namespace: str, height: int = 120, width: int = 160) -> dict:
    torch.manual_seed(0)
    # Random weights score near zero: a zero peak threshold and no score cut make the decoder return
    # people (their keypoints follow the image), so "same output" compares more than empty messages.
    predictor = load_model(ModelConfig(input_size=64, neck_channels=16, head_channels=16), device="cpu",
                           decoder=DecoderConfig(peak_threshold=0.0, min_person_score=0.0, max_people=5))
    rng = np.random.default_rng(1)
    scenes = [make_scene(rng, height, width, 1 + i % 2, min_height=50, max_height=110).image for i in range(16)]
    frames = [encode(rgb, "rgb8") for rgb in scenes]
    first, last = {}, {}
    with start_node(predictor, namespace, reliability="reliable", min_person_score=0.0,
                    keypoint_threshold=0.0) as live:
        stats = live.node.cameras[0].stats
        frames_in = camera_publisher(live, Image)
        pose_segs = listen(live, "pose_seg", PoseSeg, keep=20)
        rss_samples = []
        start = time.monotonic()
        for index in range(frames_total):
            if index == warmup:
                rss_warm, warm_time = rss_mb(), time.monotonic()
            frame = frames[index % len(frames)]
            frame.header = Header(stamp=Time(sec=index, nanosec=0), frame_id="cam")
            frames_in.publish(frame)
            _, output = pose_segs.stamped(index, 0, timeout=30.0)
            assert live.node.frames.pending() == 0
            if index < len(frames):
                first[index] = result_from_pose_seg(output)
            elif index >= frames_total - len(frames):
                last[index % len(frames)] = result_from_pose_seg(output)
            if index % 1000 == 0:
                rss_samples.append((index, round(rss_mb(), 1)))
        rss_end = rss_mb()
        elapsed = time.monotonic() - start
        steady_fps = (frames_total - warmup) / (time.monotonic() - warm_time)
        counts = dict(processed=stats.processed, dropped=stats.dropped, failed=stats.failed, rejected=stats.rejected)
    return dict(frames=frames_total, seconds=elapsed, fps=steady_fps, rss_warm=rss_warm, rss_end=rss_end,
                rss_growth=rss_end - rss_warm, rss_samples=rss_samples, first=first, last=last, **counts)


def check_soak(report: dict, max_growth_mb: float) -> None:
    shown = {k: v for k, v in report.items() if k not in ("first", "last")}
    print("\nsoak: " + ", ".join(f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items()))
    assert report["processed"] == report["frames"] and report["dropped"] == report["failed"] == 0
    first, last = report["first"], report["last"]
    assert set(first) == set(last) and first
    for index in first:
        a, b = first[index], last[index]
        assert len(a) == len(b) > 0, index
        np.testing.assert_array_equal(a.keypoints, b.keypoints)
        np.testing.assert_array_equal(a.scores, b.scores)
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.label_map, b.label_map)
    # Different frames give different outputs, so equality above means something.
    assert not np.array_equal(first[0].keypoints, first[1].keypoints)
    assert report["rss_growth"] < max_growth_mb, report["rss_samples"]


def test_soak_short(one_thread, namespace):
    frames = int(os.environ.get("KDC_SOAK_SHORT_FRAMES", "300"))
    check_soak(soak(frames, warmup=frames // 3, namespace=namespace), max_growth_mb=50)


@pytest.mark.long
@pytest.mark.timeout(1800)
def test_soak_long(one_thread, namespace):
    frames = int(os.environ.get("KDC_SOAK_FRAMES", "10000"))
    check_soak(soak(frames, warmup=min(1000, frames // 5), namespace=namespace), max_growth_mb=50)
