"""The inference backends a Predictor can run its network on, and why one may be unusable here.

Importing this module is cheap (no torch, no onnxruntime): the ROS node validates its `backend`
parameter with it before any model is built.

- torch: the KDCNet module in PyTorch (CPU, CUDA, MPS; float16 on CUDA).
- onnxruntime: the same network exported to ONNX (kdc_model.export), run by ONNX Runtime with the
  CPUExecutionProvider, or the CUDAExecutionProvider when the device is CUDA and onnxruntime has it.
- tensorrt: ONNX Runtime's TensorrtExecutionProvider; only where that provider is installed.
"""
from __future__ import annotations

import importlib.util

BACKENDS = ("torch", "onnxruntime", "tensorrt")


def backend_problem(name: str) -> str | None:
    """Why backend `name` cannot be used on this machine, or None when it can."""
    if name not in BACKENDS:
        return f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}"
    if name == "torch":
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
