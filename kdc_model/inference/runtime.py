"""What runs the network inside a Predictor: PyTorch (TorchRunner) or ONNX Runtime (OnnxRunner).

A runner is called on the normalised, letterboxed batch [B, 3, S, S] (a tensor on the predictor's
device, in its dtype) and returns the raw head outputs {key: [B, C, h, w]} (kdc_model.network.heads) as
tensors on that device. Everything around it (letterbox, activation, decoding, un-letterboxing) is
the Predictor's, shared by every backend.
"""
from __future__ import annotations

import hashlib
import json
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from .export import EXPORT_FORMAT_TAG, FORMAT_NAME, INPUT_NAME, OUTPUT_NAMES, onnx_bytes, read_metadata, weights_sha256
from ..network.private_files import UntrustedFile, folder_problem, read_private, user_cache_folder, write_atomic

MAX_ONNX_BYTES = 2 << 30        # protobuf's own limit for one serialised model
MAX_CLAIM_BYTES = 64 << 10
INT8_FORMAT = FORMAT_NAME + "_int8"   # what kdc_model.inference.quantize writes
MAX_INT8_BYTES = 1 << 30


class TorchRunner:
    """The KDCNet module for inference: a copy with its BatchNorms folded into the convolutions
    (kdc_model.inference.fusion) in the channels-last memory format, which oneDNN (CPU) and cuDNN (CUDA) run
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

    `onnx` is a cache file (cached_export: used only when verified to be the export of `model`, else
    exported again and rewritten, never an error); None exports in memory. `from_cache` says whether
    the verified file runs (else the network was exported now). Providers: TensorRT for
    backend "tensorrt"; CUDA when `device` is CUDA and onnxruntime has it (else CPU, with a warning);
    CPU otherwise. Intra-op threads follow torch.get_num_threads(), so
    the two backends compare at equal threads (the node sets them from its `threads` parameter); they
    sleep rather than spin between runs.

    `int8`: the path of the network's int8 model (kdc_model.inference.quantize), run instead of the
    float export once checked to be quantised from `model`'s weights (ValueError otherwise); CPU only.
    """

    def __init__(self, model: torch.nn.Module, input_side: int, device: torch.device, *,
                 onnx: str | Path | None = None, backend: str = "onnxruntime", int8: str | Path | None = None) -> None:
        import onnxruntime

        self.backend = backend
        self.device = torch.device(device)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Worker threads that busy-wait between runs take the cores the decoder (on the calling
        # thread) and the node need: 2 threads on a 2-core CPU beside a training run, p50 network
        # 21.8 -> 17.9 ms and decode 12.7 -> 9.7 ms without spinning. (1 thread has no workers.)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = self._providers(onnxruntime)
        self.session, self.from_cache, self.int8 = None, False, int8 is not None
        if int8 is not None:
            if self.device.type != "cpu" or backend != "onnxruntime":
                raise Int8Unavailable(f"int8 runs on ONNX Runtime on CPU, not backend {backend} on {self.device}")
            self.session = onnxruntime.InferenceSession(load_int8(int8, model), options, providers=providers)
        elif onnx is not None:
            cached = cached_export(Path(onnx), model, input_side)
            if cached is not None:
                try:
                    self.session = onnxruntime.InferenceSession(cached, options, providers=providers)
                    self.from_cache = True
                except Exception as err:  # e.g. InvalidProtobuf: a bad cache file costs an export, nothing more
                    warnings.warn(f"cached ONNX export {onnx} does not load ({_first_line(err)}); exporting "
                                  f"again", RuntimeWarning, stacklevel=2)
        if self.session is None:
            data = onnx_bytes(model, input_side, dynamic_batch=True, dynamic_size=True)
            if onnx is not None:
                store_export(Path(onnx), model, input_side, data)
            self.session = onnxruntime.InferenceSession(data, options, providers=providers)
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


class Int8Unavailable(ValueError):
    """int8 was asked for where it cannot run: no int8 model made from these weights, or a network
    that does not run on ONNX Runtime on CPU."""


def int8_path(checkpoint: str | Path) -> Path:
    """Where the int8 model of a checkpoint lives: <stem>.int8.onnx beside it."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.stem + ".int8.onnx")


def load_int8(path: str | Path, model: torch.nn.Module) -> bytes:
    """The bytes of the int8 model at `path`, checked to be quantised from `model`'s weights;
    Int8Unavailable naming the problem otherwise (missing, not a KDC int8 model, other weights)."""
    path = Path(path)
    if not path.is_file():
        raise Int8Unavailable(f"int8 needs a quantised model at {path}, and there is none: make it with "
                         f"python -m kdc_model.inference.quantize --checkpoint <checkpoint> --images <folder>")
    if path.stat().st_size > MAX_INT8_BYTES:
        raise Int8Unavailable(f"{path}: {path.stat().st_size} bytes is too large for a KDC int8 model")
    data = path.read_bytes()
    try:
        metadata = read_metadata(data)
    except Exception as err:  # onnx's DecodeError and friends: not an ONNX file at all
        raise Int8Unavailable(f"{path}: not an ONNX model ({type(err).__name__})") from None
    if metadata.get("format") != INT8_FORMAT:
        raise Int8Unavailable(f"{path}: not a KDC int8 model (format {metadata.get('format')!r})")
    if metadata.get("weights_sha256") != weights_sha256(model):
        raise Int8Unavailable(f"{path} was quantised from other weights than the ones loaded; make it again with "
                         f"python -m kdc_model.inference.quantize")
    return data


def onnx_cache_path(checkpoint: str | Path, input_side: int) -> Path | None:
    """Where the ONNX export of `checkpoint` at `input_side` is cached: beside the checkpoint when that
    folder is this user's own (owned by them, not writable by group or others) and writable, else in
    the per-user cache folder ($XDG_CACHE_HOME or ~/.cache, /kdc_ros/onnx, created 0700); None (export
    in memory, with a warning) when neither exists. Never a shared folder such as the temp folder:
    anyone who can read the weights could compute the name and plant a network there.

    The name holds a digest of the checkpoint's bytes, the side and the exporter, so a changed
    checkpoint or exporter never reuses a stale file."""
    checkpoint = Path(checkpoint)
    digest = hashlib.sha256(f"{exporter_id()} {input_side}\n".encode())
    with checkpoint.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    name = f"{checkpoint.stem}.s{input_side}.{digest.hexdigest()[:12]}.onnx"
    folder = checkpoint.resolve().parent
    if folder_problem(folder) is None and _writable(folder):
        return folder / name
    folder, problem = user_cache_folder()
    if folder is None:
        warnings.warn(f"no private folder for the ONNX export cache ({problem}); exporting in memory",
                      RuntimeWarning, stacklevel=3)
        return None
    return folder / name


def cached_export(path: Path, model: torch.nn.Module, input_side: int) -> bytes | None:
    """The cached export at `path` when it is verified to be `model`'s, else None (with the reason as a
    RuntimeWarning, except when there is simply no file yet).

    Verified: the folder and both files (the .onnx and its claim, <name>.json) are this user's own
    (kdc_model.network.private_files: no symlink, not writable by others), the claim names this exporter, this
    input side and the SHA-256 of `model`'s weights, and the .onnx bytes have the SHA-256 the claim
    gives. The bytes returned are the ones checked (no second read a swap could slip into).
    """
    problem = folder_problem(path.parent)
    if problem is None:
        try:
            claim = json.loads(read_private(claim_path(path), MAX_CLAIM_BYTES))
            data = read_private(path, MAX_ONNX_BYTES)
            problem = _claim_problem(claim, _expected_claim(model, input_side), hashlib.sha256(data).hexdigest())
        except FileNotFoundError:
            return None  # not exported yet
        except (UntrustedFile, ValueError, RecursionError) as err:  # a claim that is not (sane) JSON
            problem = str(err) or type(err).__name__
    if problem is not None:
        warnings.warn(f"not using the cached ONNX export {path}: {problem}; exporting again", RuntimeWarning,
                      stacklevel=3)
        return None
    return data


def store_export(path: Path, model: torch.nn.Module, input_side: int, data: bytes) -> bool:
    """Write `data` (model's export) and its claim beside it, atomically, in a folder of this user's
    own; False (with a warning) when that cannot be done: the export is then used from memory."""
    problem = folder_problem(path.parent)
    claim = dict(_expected_claim(model, input_side), onnx_sha256=hashlib.sha256(data).hexdigest())
    try:
        if problem is not None:
            raise UntrustedFile(problem)
        write_atomic(path, data)
        write_atomic(claim_path(path), json.dumps(claim, indent=1).encode())
    except OSError as err:
        warnings.warn(f"could not cache the ONNX export at {path} ({err}); using it from memory",
                      RuntimeWarning, stacklevel=4)
        return False
    return True


def exporter_id() -> str:
    """What made an export (format, opset, exporter, torch version): part of the cache file's name and claim."""
    return f"{EXPORT_FORMAT_TAG} free-size torch {torch.__version__}"


def claim_path(path: Path) -> Path:
    """The claim of a cached export (<name>.onnx.json): what the export is of, checked before it runs."""
    return path.with_name(path.name + ".json")


def _expected_claim(model: torch.nn.Module, input_side: int) -> dict:
    return {"exporter": exporter_id(), "input_side": input_side, "weights_sha256": weights_sha256(model)}


def _claim_problem(claim, expected: dict, onnx_sha256: str) -> str | None:
    if not isinstance(claim, dict):
        return "its claim is not a JSON object"
    for key, value in expected.items():
        if claim.get(key) != value:
            return f"it claims {key} {str(claim.get(key))[:80]!r}, expected {value!r}"
    if claim.get("onnx_sha256") != onnx_sha256:
        claimed = str(claim.get("onnx_sha256"))[:16]
        return f"its bytes have SHA-256 {onnx_sha256[:16]}..., not the {claimed}... claimed"
    return None


def _writable(folder: Path) -> bool:
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".kdc_write_test"):
            return True
    except OSError:
        return False


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:300]


def make_runner(model: torch.nn.Module, backend: str, input_side: int, device: torch.device,
                onnx: str | Path | None = None, int8: str | Path | None = None):
    """The runner of `backend` (a name kdc_model.inference.backends.resolve_backend gave) for `model` (already on
    `device` for torch; left on CPU otherwise); `int8`: its int8 model (OnnxRunner)."""
    if backend == "torch":
        if int8 is not None:
            raise Int8Unavailable("int8 runs on ONNX Runtime on CPU, not backend torch")
        return TorchRunner(model)
    return OnnxRunner(model, input_side, device, onnx=onnx, backend=backend, int8=int8)
