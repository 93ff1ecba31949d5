"""kdc_ros.bench: our node and model against the peers a user would pick instead, in one run.

    python -m kdc_ros.bench --out bench_out [--sizes 320 640 320+640] [--frames 20] [--no-peers]

An input size is a letterbox side (320) or several sides whose people our model merges (320+640,
the default model's own: kdc_model.load_model(multi_scale=...)); peers run at the largest side.
A row producer is any function `producer(frames, input_size) -> row | list[row]`, where frames is
an [N, H, W, 3] uint8 RGB array (the same for every system) and a row is a dict with at least
ROW_KEYS = ("system", "backend", "input", "fps", "p50_ms", "p95_ms") (extra keys ride along: notes,
weights, versions, stage times, people found per frame; a row with "error" has None numbers).
Producers here: kdc_rows (kdc_model alone + kdc_node end to end, kdc_ros.bench.kdc) and peer_rows
(Ultralytics YOLO11n-pose/-seg in PyTorch and ONNX Runtime, MediaPipe Pose; each in its own venv,
kdc_ros.bench.peers). All of them time batch-1 calls with runners/timing.py's protocol.
"""
from __future__ import annotations

import traceback
from typing import Callable, Union

import numpy as np

from .runners.timing import ROW_KEYS, failed_row, stats

Row = dict
Producer = Callable[[np.ndarray, int], Union[Row, list]]

SYSTEMS = ("kdc_node", "kdc_model", "yolo11n-pose", "yolo11n-seg", "mediapipe-pose")

__all__ = ["ROW_KEYS", "SYSTEMS", "Producer", "check_row", "input_sides", "parse_size", "pool_rows", "run_producers"]


def parse_size(text: str) -> int | str:
    """A --sizes entry: "320" -> 320; "320+640" -> "320+640" (sides ascending, each a whole number
    of pixels); ValueError naming the problem otherwise."""
    try:
        sides = sorted({int(part) for part in str(text).split("+")})
    except ValueError:
        raise ValueError(f"input size {text!r} is not a side (320) or sides joined by + (320+640)") from None
    if min(sides) <= 0:
        raise ValueError(f"input size {text!r}: sides must be positive")
    return sides[0] if len(sides) == 1 else "+".join(map(str, sides))


def input_sides(size: int | str) -> tuple[int, ...]:
    """The letterbox sides of an input size (parse_size's): 320 -> (320,), "320+640" -> (320, 640)."""
    return tuple(int(part) for part in str(size).split("+"))


def check_row(row: dict) -> dict:
    """`row` when it has the bench schema; ValueError saying what is wrong otherwise."""
    missing = [k for k in ROW_KEYS if k not in row]
    if missing:
        raise ValueError(f"bench row {row.get('system', '?')!r} lacks {missing}")
    if not isinstance(row["system"], str) or not isinstance(row["backend"], str):
        raise ValueError(f"bench row {row!r}: system and backend must be strings")
    numbers = [row[k] for k in ("fps", "p50_ms", "p95_ms")]
    if "error" in row:
        if any(v is not None for v in numbers):
            raise ValueError(f"failed bench row {row['system']!r} must not carry numbers")
    elif not all(isinstance(v, (int, float)) and v > 0 for v in numbers):
        raise ValueError(f"bench row {row['system']!r}: fps/p50_ms/p95_ms must be positive numbers, got {numbers}")
    return row


def run_producers(producers: dict[str, Producer], frames: np.ndarray, sizes, repeat: int = 1,
                  log=print) -> list[dict]:
    """Every producer at every input size, in order, `repeat` times over (interleaved, so that a
    machine whose load drifts slows every system alike; see pool_rows). A producer that raises gives
    one failed row named after it (its traceback is logged), and the others still run."""
    rows = []
    for size in sizes:
        for turn in range(repeat):
            rows += _run_once(producers, frames, size, f" (pass {turn + 1}/{repeat})" if repeat > 1 else "", log)
    return pool_rows(rows)


def pool_rows(rows: list[dict]) -> list[dict]:
    """One row per (system, backend, input): the latencies of its repeated runs pooled (times_ms),
    the statistics recomputed. Failed runs are dropped when another run of the same row worked."""
    pooled: dict[tuple, dict] = {}
    for row in rows:
        key = (row["system"], row["backend"], row["input"])
        have = pooled.get(key)
        if have is None or ("error" in have and "error" not in row):
            pooled[key] = dict(row)
        elif "error" not in have and "error" not in row and "times_ms" in have and "times_ms" in row:
            have["times_ms"] = have["times_ms"] + row["times_ms"]
            have.update(stats(have["times_ms"]))
            have["runs"] = have.get("runs", 1) + 1
    return list(pooled.values())


def _run_once(producers: dict[str, Producer], frames: np.ndarray, size, suffix: str, log) -> list[dict]:
    rows = []
    for name, producer in producers.items():
        log(f"[bench] {name} at input {size}{suffix}")
        try:
            produced = producer(frames, size)
            produced = [produced] if isinstance(produced, dict) else list(produced)
            rows += [check_row(r) for r in produced]
        except Exception as err:  # noqa: BLE001 - one broken system must not hide the others
            log(traceback.format_exc())
            rows.append(failed_row(name, "?", size, f"{type(err).__name__}: {err}"))
    return rows
