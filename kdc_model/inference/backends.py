"""The inference backends a Predictor can run its network on, and why one may be unusable here.

Importing this module is cheap (no torch, no onnxruntime): the ROS node validates its `backend`
parameter with it before any model is built.

- torch: the KDCNet module in PyTorch (CPU, CUDA, MPS; float16 on CUDA).
- onnxruntime: the same network exported to ONNX (kdc_model.inference.export), run by ONNX Runtime with the
  CPUExecutionProvider, or the CUDAExecutionProvider when the device is CUDA and onnxruntime has it.
- tensorrt: ONNX Runtime's TensorrtExecutionProvider; only where that provider is installed.

"auto" is not a backend but a choice among them (`auto_backend`): onnxruntime on CPU (where it runs
the network faster than PyTorch, see docs/bench.md), tensorrt on CUDA where its provider is
installed, torch everywhere else; each pick comes with its reason.
"""
from __future__ import annotations

import importlib.util
import os
import re

BACKENDS = ("torch", "onnxruntime", "tensorrt")
AUTO = "auto"
CHOICES = (AUTO,) + BACKENDS  # what a `backend` setting may say
DEVICES = "auto, cpu, mps, cuda, cuda:N"  # what a `device` setting may say
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def device_problem(name: str) -> str | None:
    """Why `name` is not a device setting, or None when it is (whether that device is present is
    another question: kdc_model.inference.predictor.resolve_device)."""
    return None if _DEVICE.match(str(name)) else f"device {name!r} is not one of {DEVICES}"


def backend_problem(name: str) -> str | None:
    """Why backend `name` cannot be used on this machine, or None when it can ("auto" always can)."""
    if name not in CHOICES:
        return f"unknown backend {name!r}; choose one of {', '.join(CHOICES)}"
    if name in ("torch", AUTO):
        return None
    if importlib.util.find_spec("onnxruntime") is None:
        return f"backend {name} needs the onnxruntime package (pip install onnxruntime), which is not installed"
    if name == "tensorrt":
        import onnxruntime

        available = onnxruntime.get_available_providers()
        if "TensorrtExecutionProvider" not in available:
            return ("backend tensorrt needs ONNX Runtime's TensorrtExecutionProvider (onnxruntime-gpu built "
                    f"with TensorRT, and a GPU); this onnxruntime has only {', '.join(available)}")
    return None


def check_backend(name: str) -> str:
    """`name` when usable here; ValueError with the reason otherwise."""
    problem = backend_problem(name)
    if problem is not None:
        raise ValueError(problem)
    return name


def auto_backend(device_type: str, half: bool = False, problem=backend_problem) -> tuple[str, str]:
    """(backend, why) that "auto" picks for a device type ("cpu", "cuda", "mps", ...). problem(name):
    why a backend cannot run here (default backend_problem, which looks at this machine)."""
    if device_type == "cpu":
        reason = problem("onnxruntime")
        if reason is None:
            return "onnxruntime", "CPU device and onnxruntime installed"
        return "torch", f"falling back to torch: {reason}"
    if device_type == "cuda":
        if half:  # the ONNX backends run float32 only
            return "torch", "half precision on CUDA runs in torch"
        if problem("tensorrt") is None:
            return "tensorrt", "CUDA device and ONNX Runtime's TensorRT provider present"
        return "torch", "CUDA device without ONNX Runtime's TensorRT provider"
    return "torch", f"{device_type} device"


def resolve_backend(name: str, device_type: str, half: bool = False) -> tuple[str, str]:
    """(backend, why) for a `backend` setting: "auto" picks one (auto_backend), any other name must be
    usable here (ValueError with the reason otherwise)."""
    if name == AUTO:
        return auto_backend(device_type, half)
    return check_backend(name), "requested"


def default_threads(cpu_count: int | None = None) -> int:
    """Inference threads (PyTorch intra-op; ONNX Runtime's follow them) when none are asked for: one
    less than the CPU cores, at least 1 and at most 8 (Ultralytics' rule). The core left over runs the
    ROS executor, DDS and whatever else shares the machine: inference threads that wait for a core
    taken by another busy process stall each other. Measured on a 2-core CPU beside a training run
    (input 640): PyTorch on 2 threads 286 ms a frame, 2.7 s with one more 2-thread process busy; on 1
    thread 100-130 ms. ONNX Runtime: 2 threads 139-153 ms, 1 thread 58 ms. cpu_count: the cores
    (default: os.cpu_count(), which may not know: 1 thread then)."""
    cores = os.cpu_count() if cpu_count is None else cpu_count
    return min(8, max(1, (cores or 1) - 1))
