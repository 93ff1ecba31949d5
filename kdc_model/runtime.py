"""What runs the network inside a Predictor: PyTorch (TorchRunner) or ONNX Runtime (OnnxRunner).

A runner is called on the normalised, letterboxed batch [B, 3, S, S] (a tensor on the predictor's
device, in its dtype) and returns the raw head outputs {key: [B, C, h, w]} (kdc_model.heads) as
tensors on that device. Everything around it (letterbox, activation, decoding, un-letterboxing) is
the Predictor's, shared by every backend.
"""
from __future__ import annotations

import hashlib
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from .backends import check_backend
from .export import EXPORT_FORMAT_TAG, INPUT_NAME, OUTPUT_NAMES, onnx_bytes


class TorchRunner:
    """The KDCNet module for inference: a copy with its BatchNorms folded into the convolutions
    (kdc_model.fusion) in the channels-last memory format, which oneDNN (CPU) and cuDNN (CUDA) run
    fastest; Predictor feeds it channels-last batches. A module without BatchNorm runs as given.

    The copy is remade when the model's parameters or buffers were updated in place since (their
    version counters move with every optimiser step, load_state_dict and BatchNorm statistics
    update), so a Predictor built before training predicts with the trained weights.
    """

    backend = "torch"

    def __init__(self, model: torch.nn.Module) -> None:
        self.source = model
        self._tensors, self._stamp = [], None
        self.model  # noqa: B018 (make the copy now, not on the first frame)

    def _versions(self) -> list[int]:
        return [t._version for t in self._tensors]

    @property
    def model(self) -> torch.nn.Module:
        """The network that runs: the inference copy of the model as it is now."""
        from .fusion import fused_for_inference

        if self._stamp is None or self._versions() != self._stamp:
            with torch.inference_mode(False):  # the copy's tensors are ordinary ones, whoever asks
                fused = fused_for_inference(self.source)
                if fused is not self.source:
                    fused = fused.requires_grad_(False).to(memory_format=torch.channels_last)
            self._model = fused
            # Inference tensors keep no version counter (and cannot change outside inference mode).
            self._tensors = [t for t in (*self.source.parameters(), *self.source.buffers()) if not t.is_inference()]
            self._stamp = self._versions()
        return self._model

    def __call__(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model(batch)


class OnnxRunner:
    """The network exported to ONNX (batch, height and width axes free) in an onnxruntime InferenceSession.

    `onnx` is a file to load, or to write first from `model` when absent (a cache); None exports in
    memory. Providers: TensorRT for backend "tensorrt"; CUDA when `device` is CUDA and onnxruntime has
    it (else CPU, with a warning); CPU otherwise. Intra-op threads follow torch.get_num_threads(), so
    the two backends compare at equal threads.
    """

    def __init__(self, model: torch.nn.Module, input_side: int, device: torch.device, *,
                 onnx: str | Path | None = None, backend: str = "onnxruntime") -> None:
        import onnxruntime

        check_backend(backend)
        self.backend = backend
        self.device = torch.device(device)
        if onnx is not None and Path(onnx).is_file():
            source = str(onnx)
        else:
            data = onnx_bytes(model, input_side, dynamic_batch=True, dynamic_size=True)
            source = data if onnx is None else _write_cache(Path(onnx), data)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = onnxruntime.InferenceSession(source, options, providers=self._providers(onnxruntime))
        self.providers = self.session.get_providers()
        # (H, W) when the file fixes the spatial axes (the Predictor then letterboxes to that square).
        height, width = self.session.get_inputs()[0].shape[2:]
        self.fixed_size = (height, width) if isinstance(height, int) and isinstance(width, int) else None

    def _providers(self, onnxruntime) -> list:
        available = onnxruntime.get_available_providers()
        index = self.device.index or 0
        if self.backend == "tensorrt":
            return [("TensorrtExecutionProvider", {"device_id": index})] + (
                [("CUDAExecutionProvider", {"device_id": index})] if "CUDAExecutionProvider" in available else []
            ) + ["CPUExecutionProvider"]
        if self.device.type == "cuda":
            if "CUDAExecutionProvider" in available:
                return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
            warnings.warn("onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu); the network "
                          "runs on CPU", RuntimeWarning, stacklevel=4)
        return ["CPUExecutionProvider"]

    def __call__(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        images = np.ascontiguousarray(batch.detach().to("cpu", torch.float32).numpy())
        outputs = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: images})
        return {k: torch.from_numpy(v).to(self.device) for k, v in zip(OUTPUT_NAMES, outputs)}


def onnx_cache_path(checkpoint: str | Path, input_side: int) -> Path:
    """Where the ONNX export of `checkpoint` at `input_side` is cached: beside the checkpoint when that
    folder is writable, else in the temp folder. The name holds a digest of the checkpoint's bytes,
    the side and the export format, so a changed checkpoint or exporter never reuses a stale file."""
    checkpoint = Path(checkpoint)
    digest = hashlib.sha256(f"{EXPORT_FORMAT_TAG} free-size {torch.__version__} {input_side}\n".encode())
    with checkpoint.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    name = f"{checkpoint.stem}.s{input_side}.{digest.hexdigest()[:12]}.onnx"
    folder = checkpoint.parent
    if not _writable(folder):
        folder = Path(tempfile.gettempdir()) / "kdc_model_onnx"
        folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def _writable(folder: Path) -> bool:
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".kdc_write_test"):
            return True
    except OSError:
        return False


def _write_cache(path: Path, data: bytes) -> str:
    """Write the export to `path` atomically and return it (the bytes are used directly if that fails)."""
    import os

    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        partial.write_bytes(data)
        os.replace(partial, path)
    except OSError as err:
        warnings.warn(f"could not cache the ONNX export at {path} ({err}); using it from memory",
                      RuntimeWarning, stacklevel=3)
        return data
    return str(path)


def make_runner(model: torch.nn.Module, backend: str, input_side: int, device: torch.device,
                onnx: str | Path | None = None):
    """The runner of `backend` for `model` (already on `device` for torch; left on CPU otherwise)."""
    check_backend(backend)
    if backend == "torch":
        return TorchRunner(model)
    return OnnxRunner(model, input_side, device, onnx=onnx, backend=backend)
