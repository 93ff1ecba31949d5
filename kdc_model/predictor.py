"""Predictor: RGB uint8 images in, PoseSegResult (in each image's own pixels) out.

Per batch: letterbox each image on the host (resize its uint8 pixels to fit a square of side
input_size rounded up to a multiple of 32, anchored top-left, padded), normalise, move the batch to
the device once, run the network once, activate the heads, decode each image, and undo the letterbox. The network runs in
PyTorch or, exported to ONNX, in ONNX Runtime (kdc_model.runtime); everything else is shared.
"""
from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .backends import AUTO, check_backend, resolve_backend
from .checkpoint import CheckpointError, load_checkpoint
from .config import DecoderConfig, ModelConfig
from .heads import activate
from .network import KDCNet
from .result import PoseSegResult

DEFAULT_WEIGHTS = Path(__file__).parent / "weights" / "kdc_default.safetensors"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
log = logging.getLogger(__name__)


def load_model(checkpoint_or_name: str | Path | ModelConfig = "default", device: str | torch.device = "auto",
               half: bool = False, decoder: DecoderConfig | None = None, strict_device: bool = False,
               backend: str = "torch", input_size: int | None = None) -> "Predictor":
    """A ready Predictor from "default" (the packaged weights), a checkpoint path, or a ModelConfig
    (random init: for tests and benchmarks). `decoder` overrides the checkpoint's decoder settings.

    device "auto" picks CUDA when there is one. A requested GPU that is absent falls back to CPU with
    a warning, or raises RuntimeError when strict_device.

    backend (kdc_model.backends): "torch", "onnxruntime", "tensorrt", or "auto" (onnxruntime on CPU
    where installed, tensorrt on CUDA where its provider is, else torch; the Predictor's
    backend_reason says why); ValueError with the reason when a named one cannot run here. The ONNX
    export of a checkpoint is cached beside it (or in the temp folder); a ModelConfig's is exported
    in memory. The default stays torch here (the network exactly as trained, and no export each time a
    ModelConfig is loaded, as the tests and tools do); the node's default is auto.

    input_size: side of the square letterbox the network sees (default: the checkpoint's). The
    network is fully convolutional and learnt people of a given size in pixels, so a larger side
    finds smaller (more distant) people, at a cost growing with its square.
    """
    check_backend(backend)
    onnx_cache = None
    if isinstance(checkpoint_or_name, ModelConfig):
        model = KDCNet(checkpoint_or_name)
    else:
        path = DEFAULT_WEIGHTS if str(checkpoint_or_name) == "default" else Path(checkpoint_or_name)
        if str(checkpoint_or_name) == "default" and not path.is_file():
            raise CheckpointError(f"{path}: the default KDC weights are not installed; "
                                  f"pass a checkpoint path instead")
        config, state = load_checkpoint(path)
        model = KDCNet(config)
        model.load_state_dict(state)
        if backend != "torch":
            from .runtime import onnx_cache_path
            onnx_cache = onnx_cache_path(path, math.ceil((input_size or config.input_size) / 32) * 32)
    return Predictor(model, device=resolve_device(device, strict_device), half=half, decoder=decoder,
                     backend=backend, onnx=onnx_cache, input_size=input_size)


def resolve_device(device: str | torch.device, strict: bool = False) -> torch.device:
    """torch.device for `device` ("auto", "cpu", "cuda", "cuda:1", ...), falling back to CPU if absent."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"invalid device {device!r}: {err}") from None
    if resolved.type == "cuda":
        present = torch.cuda.is_available() and (resolved.index or 0) < torch.cuda.device_count()
    elif resolved.type == "mps":
        present = torch.backends.mps.is_available()
    else:
        present = True
    if present:
        return resolved
    if strict:
        raise RuntimeError(f"device {resolved} was requested but is not available")
    warnings.warn(f"device {resolved} is not available; running on CPU", RuntimeWarning, stacklevel=3)
    return torch.device("cpu")


@dataclass(frozen=True)
class Letterbox:
    """How one image was placed in the network input: resized to (height, width) at the top-left."""

    original_height: int
    original_width: int
    height: int
    width: int

    def to_original(self, xy: np.ndarray) -> np.ndarray:
        """[..., 2] network-input pixel coordinates -> original-image pixel coordinates (pixel centres)."""
        scale = np.array([self.original_width / self.width, self.original_height / self.height], np.float32)
        return (xy + 0.5) * scale - 0.5


class Predictor:
    """A KDC network on a device, with its preprocessing and decoder. Call it on an RGB uint8 image.

    backend: "torch" runs `model` itself; "onnxruntime"/"tensorrt" run its ONNX export (`onnx`: a
    cache file, read when present, else written; None: exported in memory), see kdc_model.runtime;
    "auto" picks one of them for the device (kdc_model.backends.auto_backend), `backend` then holds
    the pick and `backend_reason` why.
    last_timing: milliseconds of the last call per stage (preprocess, network, decode, total).
    """

    def __init__(self, model: KDCNet, device: str | torch.device = "cpu", half: bool = False,
                 decoder: DecoderConfig | None = None, backend: str = "torch", onnx: str | Path | None = None,
                 input_size: int | None = None) -> None:
        from .runtime import make_runner

        self.config: ModelConfig = model.config
        self.decoder = decoder or self.config.decoder
        self.device = torch.device(device)
        if half and self.device.type != "cuda":
            warnings.warn(f"half precision needs CUDA; running float32 on {self.device}", RuntimeWarning, stacklevel=2)
            half = False
        self.backend, self.backend_reason = resolve_backend(backend, self.device.type, half)
        if backend == AUTO:
            log.info("backend %s: %s (%s)", backend, self.backend, self.backend_reason)
        backend = self.backend
        if half and backend != "torch":
            warnings.warn(f"half precision is torch-only; the {backend} backend runs float32", RuntimeWarning,
                          stacklevel=2)
            half = False
        self.half = half
        self.dtype = torch.float16 if half else torch.float32
        # Channels-last feeds the fastest convolution kernels of cuDNN and of oneDNN on CPU (the torch
        # runner's network copy is channels-last too); ONNX Runtime takes contiguous arrays.
        self.memory_format = torch.channels_last if backend == "torch" else torch.contiguous_format
        if input_size is not None and input_size < 32:
            raise ValueError(f"input_size must be at least 32, not {input_size}")
        self.input_side = math.ceil((input_size or self.config.input_size) / 32) * 32
        # The ONNX backends export from the float32 model on CPU; torch runs it where it is placed.
        placed = self.device if backend == "torch" else torch.device("cpu")
        self.model = model.eval().to(device=placed, dtype=self.dtype)
        self.runner = make_runner(self.model, backend, self.input_side, self.device, onnx=onnx)
        self._mean = np.array(IMAGENET_MEAN, np.float32).reshape(3, 1, 1) * np.float32(255)
        self._std = np.array(IMAGENET_STD, np.float32).reshape(3, 1, 1) * np.float32(255)
        self.last_timing: dict[str, float] = {}

    def __call__(self, image: np.ndarray) -> PoseSegResult:
        return self.predict_batch([image])[0]

    @torch.inference_mode()
    def predict_batch(self, images: list[np.ndarray]) -> list[PoseSegResult]:
        """One PoseSegResult per image (any sizes), in that image's pixels."""
        from .decode import decode_people  # the decoder is only needed once we predict

        for image in images:
            check_image(image)
        start = time.perf_counter()
        batch, letterboxes = self.preprocess(images)
        preprocessed = self._clock()
        maps = {k: v.float() for k, v in activate(self.runner(batch)).items()}
        inferred = self._clock()
        results = []
        for i, box in enumerate(letterboxes):
            decoded = decode_people({k: v[i] for k, v in maps.items()}, stride=self.config.output_stride,
                                    radius=self.config.radius, config=self.decoder,
                                    image_size=(self.input_side, self.input_side))
            results.append(self._to_original(decoded, box))
        done = self._clock()
        self.last_timing = {"preprocess_ms": (preprocessed - start) * 1e3, "network_ms": (inferred - preprocessed) * 1e3,
                            "decode_ms": (done - inferred) * 1e3, "total_ms": (done - start) * 1e3}
        return results

    def preprocess(self, images: list[np.ndarray]) -> tuple[torch.Tensor, list[Letterbox]]:
        """The normalised, letterboxed network input [B, 3, S, S] and how each image was placed.

        On the host, whatever the device: the resize runs on the uint8 pixels (PyTorch's bilinear,
        antialiased when shrinking: its uint8 kernels are much faster than its float ones and within one
        grey level of them), normalisation in float32 NumPy straight into a zeroed batch (0 is the mean
        colour, so the padding costs nothing); the device then gets one copy of the batch.
        """
        side = self.input_side
        batch = np.zeros((len(images), 3, side, side), np.float32)
        letterboxes = []
        for i, image in enumerate(images):
            h, w = image.shape[:2]
            scale = side / max(h, w)
            rh, rw = max(1, min(side, round(h * scale))), max(1, min(side, round(w * scale)))
            pixels = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)  # a [3, h, w] view
            if (rh, rw) != (h, w):
                pixels = F.interpolate(pixels[None], size=(rh, rw), mode="bilinear", align_corners=False,
                                       antialias=scale < 1)[0]
            placed = batch[i, :, :rh, :rw]
            np.subtract(pixels.numpy(), self._mean, out=placed)
            placed /= self._std
            letterboxes.append(Letterbox(h, w, rh, rw))
        return torch.from_numpy(batch).to(self.device, self.dtype, memory_format=self.memory_format), letterboxes

    def _to_original(self, result: PoseSegResult, box: Letterbox) -> PoseSegResult:
        keypoints = result.keypoints.copy()
        keypoints[..., :2] = box.to_original(keypoints[..., :2])
        boxes = box.to_original(result.boxes.reshape(-1, 2, 2)).reshape(-1, 4)
        return PoseSegResult(keypoints=keypoints, scores=result.scores, boxes=boxes.astype(np.float32),
                             label_map=self._label_map_to_original(result.label_map, box),
                             mask_scores=result.mask_scores)

    def _label_map_to_original(self, label_map: np.ndarray, box: Letterbox) -> np.ndarray:
        """Crop the padding off a label map covering the network input, then nearest-resize it."""
        lh, lw = label_map.shape  # the whole S x S input, at whatever resolution the decoder gives
        crop_h = max(1, round(box.height * lh / self.input_side))
        crop_w = max(1, round(box.width * lw / self.input_side))
        rows = ((np.arange(box.original_height) + 0.5) * crop_h / box.original_height).astype(np.intp)
        cols = ((np.arange(box.original_width) + 0.5) * crop_w / box.original_width).astype(np.intp)
        # Rows, then columns: two 1-D gathers cost a third of one 2-D fancy index.
        return np.take(np.take(label_map, rows, axis=0), cols, axis=1).astype(np.uint16, copy=False)

    def _clock(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()


def check_image(image) -> None:
    """Raise ValueError unless `image` is a non-empty H x W x 3 uint8 array."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"expected an RGB image as a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 RGB image, got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 RGB image, got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"empty image (shape {image.shape})")
