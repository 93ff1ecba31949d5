"""The one timing protocol of every bench row (ours and the peers'); standard library + numpy only.

Batch 1, frames in order: `warmup` untimed calls on the first frames, then `rounds` timed passes
over all frames, one call at a time. Latency is each call's wall time (or the time the system
reports for it); fps = 1000 / mean latency, i.e. the sequential throughput of one stream.
"""
from __future__ import annotations

import time

import numpy as np

ROW_KEYS = ("system", "backend", "input", "fps", "p50_ms", "p95_ms")


def time_calls(call, frames, warmup: int = 3, rounds: int = 1, latency=None) -> list[float]:
    """Per-call latencies in ms of `call(frame)` over `rounds` passes of `frames`, after `warmup` calls.

    `latency(result, wall_ms)` may replace the wall time by the system's own number for that call."""
    for i in range(warmup):
        call(frames[i % len(frames)])
    times = []
    for _ in range(rounds):
        for frame in frames:
            start = time.perf_counter()
            result = call(frame)
            wall_ms = (time.perf_counter() - start) * 1e3
            times.append(latency(result, wall_ms) if latency else wall_ms)
    return times


def row(system: str, backend: str, input_size, times_ms, **extra) -> dict:
    """A bench row from per-call latencies (ms); `extra` keys ride along (notes, versions, stages).
    The latencies themselves are kept as times_ms, so rows of repeated runs can be pooled."""
    times = np.asarray(times_ms, dtype=np.float64)
    if times.size == 0:
        raise ValueError(f"{system}/{backend}: no timed calls")
    return {"system": system, "backend": backend, "input": input_size, **stats(times), **extra,
            "times_ms": [round(float(t), 2) for t in times]}


def stats(times_ms) -> dict:
    """fps (1000 / mean), p50_ms, p95_ms and calls of per-call latencies in ms."""
    times = np.asarray(times_ms, dtype=np.float64)
    return {"fps": round(1e3 / float(times.mean()), 2), "p50_ms": round(float(np.percentile(times, 50)), 2),
            "p95_ms": round(float(np.percentile(times, 95)), 2), "calls": int(times.size)}


def failed_row(system: str, backend: str, input_size, error: str, **extra) -> dict:
    """A row for a system that could not be measured: no numbers, and why."""
    return {"system": system, "backend": backend, "input": input_size, "fps": None, "p50_ms": None,
            "p95_ms": None, "calls": 0, "error": error, **extra}


def stage_stats(stage_dicts: list[dict]) -> dict:
    """{stage: {"p50", "p95", "max"} ms} over a list of per-call {stage: ms} dicts (the stages of the
    first call; a call without a stage is left out of that stage's figures)."""
    if not stage_dicts:
        return {}
    stats_by_stage = {}
    for stage in stage_dicts[0]:
        ms = np.asarray([d[stage] for d in stage_dicts if stage in d], dtype=np.float64)
        stats_by_stage[stage] = {"p50": round(float(np.percentile(ms, 50)), 2),
                                 "p95": round(float(np.percentile(ms, 95)), 2), "max": round(float(ms.max()), 2)}
    return stats_by_stage


def with_overhead(stages: dict, latency_ms: float) -> dict:
    """One call's stages plus "overhead": its latency minus the stages' sum (for a node, everything
    around the model: transport, conversion, tracking, messages; for a library, its wrapper)."""
    return {**stages, "overhead": latency_ms - sum(stages.values())}
