"""Peer rows: systems a user would pick instead of ours, each run inside its own venv.

Each producer writes the frames to an .npy once, makes sure its venv exists (kdc_ros.bench.venvs),
runs its runner script (runners/) as a subprocess with a clean environment — none of our
PYTHONPATH/LD_LIBRARY_PATH, nothing downloaded at run time — and parses the rows it prints.
A peer that cannot be set up or run gives rows with an "error" and no numbers, never a crash.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import numpy as np

from . import input_sides
from .runners.timing import failed_row
from .venvs import PEER_VENVS, default_root, ensure_venv

RUNNERS = Path(__file__).parent / "runners"
MARKER = "BENCH_ROWS "
# system -> (venv, runner script, backends)
PEERS = {
    "yolo11n-pose": ("ultralytics", "ultralytics_runner.py", ("torch", "onnxruntime")),
    "yolo11n-seg": ("ultralytics", "ultralytics_runner.py", ("torch", "onnxruntime")),
    "mediapipe-pose": ("mediapipe", "mediapipe_runner.py", ("tflite",)),
}
PEER_TIMEOUT_S = 1800


def frames_file(frames: np.ndarray, work_dir: Path) -> Path:
    """The frames as an .npy under work_dir, named by their content (written once)."""
    digest = hashlib.sha1(np.ascontiguousarray(frames).tobytes()).hexdigest()[:12]
    path = work_dir / f"frames-{digest}.npy"
    if not path.exists():
        work_dir.mkdir(parents=True, exist_ok=True)
        np.save(path.with_suffix(".tmp.npy"), frames)
        path.with_suffix(".tmp.npy").replace(path)
    return path


def clean_env(venv_python: Path, work_dir: Path) -> dict:
    """Our environment minus everything that points into our .venv or ROS install."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "LD_LIBRARY_PATH", "VIRTUAL_ENV", "AMENT_PREFIX_PATH")}
    env["VIRTUAL_ENV"] = str(venv_python.parent.parent)
    env["PATH"] = f"{venv_python.parent}{os.pathsep}{env.get('PATH', '')}"
    env["YOLO_OFFLINE"] = "1"                                 # never download weights or assets
    env["YOLO_CONFIG_DIR"] = str(work_dir / "ultralytics-config")  # ultralytics' settings stay in build/
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_runner(venv: str, script: str, args: list[str], work_dir: Path, venv_root: Path | None = None,
               log=print) -> list[dict]:
    """Rows printed by `script` run inside venv `venv` (created first when needed)."""
    python = ensure_venv(PEER_VENVS[venv], venv_root, log=log)
    command = [str(python), str(RUNNERS / script), *args]
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=clean_env(python, work_dir), timeout=PEER_TIMEOUT_S)
    (work_dir / f"{Path(script).stem}.log").write_text(done.stderr)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    tail = " | ".join(done.stderr.strip().splitlines()[-3:])
    raise RuntimeError(f"{script} exited {done.returncode} without rows: {tail}")


def peer_backends(system: str, wanted=None) -> tuple[str, ...]:
    """The backends `system` runs in: those of `wanted` it has, or all of its own when it has none of
    them (MediaPipe has only tflite) or nothing is asked."""
    own = PEERS[system][2]
    if not wanted:
        return own
    return tuple(b for b in own if b in wanted) or own


def peer_rows(frames: np.ndarray, input_size: int, *, systems=tuple(PEERS), work_dir: Path | None = None,
              venv_root: Path | None = None, warmup: int = 3, rounds: int = 1, threads: int = 0,
              backends=None, log=print) -> list[dict]:
    """Rows of the peer `systems` at `input_size`, one runner call per venv. threads > 0 sets the
    intra-op threads of the ultralytics PyTorch and ONNX Runtime rows (0: each one's own default).
    backends: run each peer in these where it can (peer_backends; None: all of its own)."""
    venv_root = Path(venv_root) if venv_root else default_root()
    work_dir = Path(work_dir) if work_dir else venv_root.parent / "bench-work"
    work_dir.mkdir(parents=True, exist_ok=True)
    path = frames_file(frames, work_dir)
    side = max(input_sides(input_size))  # against our sides merged, a peer gets the largest
    common = ["--frames", str(path), "--size", str(side), "--warmup", str(warmup), "--rounds", str(rounds)]
    rows = []
    by_venv: dict[tuple[str, str], list[str]] = {}
    for system in systems:
        venv, script, _ = PEERS[system]
        by_venv.setdefault((venv, script), []).append(system)
    for (venv, script), wanted in by_venv.items():
        args = list(common)
        runs_in = {s: peer_backends(s, backends) for s in wanted}
        if venv == "ultralytics":
            args += ["--work-dir", str(work_dir / "ultralytics"), "--systems", ",".join(wanted),
                     "--threads", str(threads),
                     "--backends", ",".join(dict.fromkeys(b for s in wanted for b in runs_in[s]))]
        log(f"[bench] {', '.join(wanted)} at {side} (venv {venv})")
        try:
            for peer_row in run_runner(venv, script, args, work_dir, venv_root, log=log):
                if peer_row.get("input") == side and side != input_size:
                    peer_row["input"] = input_size
                    peer_row["note"] = f"at {side}, the largest side; " + peer_row.get("note", "")
                rows.append(peer_row)
        except Exception as err:  # noqa: BLE001 - a failed peer is a row saying why
            message = f"{type(err).__name__}: {err}"
            rows += [failed_row(s, b, input_size, message) for s in wanted for b in runs_in[s]]
    return rows
