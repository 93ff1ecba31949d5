"""A real predictor made slower than any camera: each call lasts at least `seconds`, the wait counted
as network time. Overload tests run on it, so that the model is overloaded on any machine."""
from __future__ import annotations

import time


class SlowPredictor:
    def __init__(self, predictor, seconds: float) -> None:
        self.predictor, self.seconds = predictor, seconds
        self.device = predictor.device
        self.last_timing: dict[str, float] = {}

    def __call__(self, image):
        start = time.perf_counter()
        result = self.predictor(image)
        wait = self.seconds - (time.perf_counter() - start)
        if wait > 0:
            time.sleep(wait)
        timing = dict(self.predictor.last_timing)
        timing["network_ms"] += max(wait, 0.0) * 1e3
        timing["total_ms"] += max(wait, 0.0) * 1e3
        self.last_timing = timing
        return result
