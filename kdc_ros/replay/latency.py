"""Latency summaries for report.json: p50 / p95 / max in milliseconds.

Values are kept as 8-byte doubles (array('d')), not Python floats: exact percentiles of a long bag
cost 8 bytes per frame and stage.
"""
from __future__ import annotations

from array import array
from collections import defaultdict

import numpy as np


def summarize(values_ms) -> dict[str, float]:
    """{"p50", "p95", "max"} of `values_ms` (NaN for none), rounded to 0.01 ms."""
    values = np.asarray(values_ms if isinstance(values_ms, array) else list(values_ms), np.float64)
    if values.size == 0:
        return {"p50": float("nan"), "p95": float("nan"), "max": float("nan")}
    return {"p50": round(float(np.percentile(values, 50)), 2), "p95": round(float(np.percentile(values, 95)), 2),
            "max": round(float(values.max()), 2)}


class StageTimes:
    """Milliseconds per frame and stage; `summary()` gives each stage's summarize()."""

    def __init__(self) -> None:
        self._values: dict[str, array] = defaultdict(lambda: array("d"))

    def add(self, stage: str, ms: float) -> None:
        self._values[stage].append(ms)

    def summary(self) -> dict[str, dict[str, float]]:
        return {stage: summarize(values) for stage, values in self._values.items()}
