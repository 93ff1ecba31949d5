"""The fields report.json shares between offline and live replays, and its one-screen summary."""
from __future__ import annotations

import numpy as np

from .tracking_metrics import TrackingStats, pose_seg_frames, tracking_summary

MAX_REJECTED_EXAMPLES = 10


class Rejections:
    """Frames refused on the way (count, and the first few reasons): a long bag of bad frames must not
    grow the report or the memory with one line per frame."""

    def __init__(self, examples: int = MAX_REJECTED_EXAMPLES) -> None:
        self.count, self.examples, self._limit = 0, [], examples

    def add(self, frame_index: int, reason: str) -> None:
        self.count += 1
        if len(self.examples) < self._limit:
            self.examples.append(f"frame {frame_index}: {reason}")

    def fields(self) -> dict:
        return {"rejected_frames": self.count, "rejected_examples": self.examples}


def replayed(report: dict) -> int:
    """Frames that have outputs: offline, the frames run through the model; live, the outputs received."""
    return report["outputs"] if report["mode"] == "live" else report["frames"]


def nothing_replayed(report: dict) -> str | None:
    """Why a replay produced no output at all (None when it produced some)."""
    if replayed(report):
        return None
    if report["mode"] == "live":
        return f"the node published no output for the {report['frames']} frames played"
    rejected = report.get("rejected_frames", 0)
    if rejected:
        return f"all {rejected} frames were rejected (first: {report['rejected_examples'][0]})"
    return f"no frames on {report['topic']}" + (f" before the damage ({report['bag_damage']})"
                                                 if report.get("bag_damage") else "")


def people_fields(people_per_frame) -> dict:
    counts = np.asarray(people_per_frame)
    return {"frames_with_people": int((counts > 0).sum()),
            "people_per_frame": [int(c) for c in counts],
            "mean_people_per_frame": round(float(counts.mean()), 3) if counts.size else 0.0}


def tracking_fields(pose_segs) -> dict:
    """`tracking`: track lengths and id switches of the published ids (kdc_ros.replay.tracking_metrics),
    over the PoseSeg messages in frame order, or a TrackingStats fed with them as they came."""
    if isinstance(pose_segs, TrackingStats):
        return {"tracking": pose_segs.summary()}
    return {"tracking": tracking_summary(pose_seg_frames(pose_segs))}


def headline(report: dict) -> str:
    """A few lines with the numbers that matter, for the terminal."""
    lines = [f"{report['mode']} replay of {report['frames']} frames ({report['topic']}): "
             f"{report['frames_with_people']} with people, {report['mean_people_per_frame']:.2f} people/frame"]
    total = report["latency_ms"].get("end_to_end" if report["mode"] == "live" else "total", {})
    if total:
        which = "end-to-end" if report["mode"] == "live" else "per frame"
        lines.append(f"latency {which}: p50 {total['p50']} ms, p95 {total['p95']} ms, max {total['max']} ms")
    if report["mode"] == "live":
        lines.append(f"outputs {report['outputs']} of {report['frames']} frames (drop rate {report['drop_rate']:.1%}), "
                     f"output rate {report['output_rate_hz']:.2f} Hz for input at {report['input_rate_hz']:.2f} Hz")
    else:
        lines.append(f"throughput {report['throughput_fps']:.2f} frames/s (batch {report['batch_size']})")
    tracking = report.get("tracking")
    if tracking and tracking["tracks"]:
        kept = tracking["id_kept_fraction"]
        lines.append(f"tracking: {tracking['tracks']} tracks, mean length {tracking['mean_track_length']:.1f} frames, "
                     f"{tracking['id_switches']} id switches"
                     + (f" ({kept:.1%} of frame-to-frame matches kept their id)" if kept is not None else ""))
    evaluation = report.get("evaluation")
    if evaluation and "keypoints_ap" in evaluation:
        lines.append(f"COCO on {evaluation['matched_images']} annotated frames: keypoint AP "
                     f"{evaluation['keypoints_ap']:.3f}, mask AP {evaluation['segm_ap']:.3f}")
    if report.get("bag_damage"):
        lines.append(f"bag damaged: {report['bag_damage']}")
    return "\n".join(lines)
