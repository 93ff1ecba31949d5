"""Predictor: RGB uint8 images in, PoseSegResult (in each image's own pixels) out.

Per batch of one letterbox shape: letterbox each image on the host (resize its uint8 pixels so the
longer side is input_size, anchored top-left, padded to multiples of 32), normalise, move the batch
to the device once, run the network once, activate the heads, decode each image, and undo the
letterbox. The network runs in PyTorch or, exported to ONNX, in ONNX Runtime (kdc_model.inference.runtime);
everything else is shared.
"""
from __future__ import annotations

import functools
import logging
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .backends import AUTO, device_problem, resolve_backend
from ..network.config import DecoderConfig, ModelConfig
from ..network.heads import activate, unmirror
from ..network.weights import NamedWeights, build_network, letterbox_side, weights_file
from ..network.kdcnet import IMAGENET_MEAN, IMAGENET_STD, KDCNet
from ..result import PoseSegResult
from .runtime import Int8Unavailable, int8_path, make_runner, onnx_cache_path

log = logging.getLogger(__name__)


def load_model(weights: str | Path | NamedWeights | ModelConfig = "default", device: str | torch.device = "auto",
               half: bool = False, decoder: DecoderConfig | None = None, strict_device: bool = False,
               backend: str = "torch", input_size: int | None = None, flip_test: bool = False,
               multi_scale: tuple[int, ...] | list[int] | None = None, int8: bool | str = False) -> "Predictor":
    """A ready Predictor from named weights ("default": the packaged ones), a checkpoint path, or a
    ModelConfig (random init: for tests and benchmarks); kdc_model.network.weights builds the network.
    `decoder` overrides the checkpoint's decoder settings.

    device "auto" picks CUDA when there is one. A requested GPU that is absent falls back to CPU with
    a warning, or raises RuntimeError when strict_device.

    backend (kdc_model.inference.backends): "torch", "onnxruntime", "tensorrt", or "auto" (onnxruntime on CPU
    where installed, tensorrt on CUDA where its provider is, else torch; the Predictor's
    backend_reason says why); ValueError with the reason when a named one cannot run here. The ONNX
    export of a checkpoint is cached beside it when that folder is the user's own, else in the
    per-user cache folder, and used only when verified (kdc_model.inference.runtime.onnx_cache_path,
    cached_export); a ModelConfig's is exported in memory. The default stays torch here (the network
    exactly as trained, and no export each time a ModelConfig is loaded, as the tests and tools do);
    the node's default is auto.

    input_size: longer side of the letterbox the network sees (None: the side it was trained at;
    kdc_model.network.weights.letterbox_side). The network is fully convolutional and learnt people of
    a given size in pixels, so a larger side finds smaller (more distant) people, at a cost growing
    with its square; the network itself is the same at every side.

    flip_test: also run the mirrored image and average the two sets of maps (test-time flip), for
    offline work where accuracy counts more than time: twice the network time, markedly better
    keypoints (docs/training.md).

    multi_scale: more letterbox sides (e.g. (640,)) run besides input_size, and the people of all
    sides merged (kdc_model.inference.multiscale): small and big people both found, for the sum of
    the sides' network and decoding times. Returns a MultiScalePredictor, called like a Predictor.
    None: the network's own sides (its ModelConfig's multi_scale: 640 besides 320 for the default
    weights) when input_size is None too, else input_size alone; () runs input_size alone.

    int8: run the network's int8 model (<weights>.int8.onnx, made by kdc_model.inference.quantize, shipped
    with the default weights) on ONNX Runtime, where the device is a CPU: about 0.6x the network time
    of float32, keypoint AP unchanged, mask AP a little lower (docs/bench.md). On a GPU it is
    ignored with a warning; with backend torch or tensorrt, or without an int8 model made from these
    weights, it is an Int8Unavailable (a ValueError). int8 "auto" (the node's default): the int8
    network where it can run, else float32 with a warning that says why.
    """
    if int8 not in (False, True, "auto"):
        raise ValueError(f"int8 must be False, True or 'auto', not {int8!r}")
    network = build_network(weights)
    first = letterbox_side(network.config, input_size)
    if multi_scale is None:
        multi_scale = network.config.multi_scale if input_size is None else ()
    sides = [first] + sorted({letterbox_side(network.config, s) for s in multi_scale} - {first})
    device = resolve_device(device, strict_device)
    predictors = []
    for side in sides:
        onnx_cache = None
        if backend != "torch" and not isinstance(weights, ModelConfig):
            onnx_cache = onnx_cache_path(weights_file(weights), side)
        build = functools.partial(Predictor, network, device=device, half=half, decoder=decoder, backend=backend,
                                  onnx=onnx_cache, input_size=side, flip_test=flip_test)
        try:
            if int8 and isinstance(weights, ModelConfig):
                raise Int8Unavailable("int8 needs a checkpoint with its int8 model beside it, not a "
                                      "random-init ModelConfig")
            predictors.append(build(int8=int8_path(weights_file(weights)) if int8 else None))
        except Int8Unavailable as err:
            if int8 != "auto":
                raise
            warnings.warn(f"running float32: {err}", RuntimeWarning, stacklevel=2)
            int8 = False
            predictors.append(build())
    if len(predictors) == 1:
        return predictors[0]
    from .multiscale import MultiScalePredictor
    return MultiScalePredictor(predictors)


def resolve_device(device: str | torch.device, strict: bool = False) -> torch.device:
    """torch.device for `device` ("auto", "cpu", "cuda", "cuda:1", ...), falling back to CPU if absent."""
    problem = device_problem(str(device))
    if problem is not None:
        raise ValueError(problem)
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
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
    cache file, read when verified to be this model's export, else written; None: exported in
    memory), see kdc_model.inference.runtime;
    "auto" picks one of them for the device (kdc_model.inference.backends.auto_backend), `backend` then holds
    the pick and `backend_reason` why. `int8`: the network's int8 model, run instead of the float network
    where the backend is onnxruntime on CPU (ignored with a warning on a GPU picked by "auto").
    last_timing: milliseconds of the last call per stage (preprocess, network, decode, total).
    """

    def __init__(self, model: KDCNet, device: str | torch.device = "cpu", half: bool = False,
                 decoder: DecoderConfig | None = None, backend: str = "torch", onnx: str | Path | None = None,
                 input_size: int | None = None, flip_test: bool = False, int8: str | Path | None = None) -> None:
        self.config: ModelConfig = model.config
        self.flip_test = flip_test
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
        if int8 is not None and (self.device.type != "cpu" or backend != "onnxruntime"):
            if self.device.type == "cpu" or self.backend_reason == "requested":
                raise Int8Unavailable(f"int8 runs on ONNX Runtime on CPU, not backend {backend} on {self.device}")
            warnings.warn(f"int8 is for CPU; running float32 on {self.device} ({backend})", RuntimeWarning,
                          stacklevel=2)
            int8 = None
        self.int8 = int8 is not None
        self.half = half
        self.dtype = torch.float16 if half else torch.float32
        # Channels-last feeds the fastest convolution kernels of cuDNN and of oneDNN on CPU (the torch
        # runner's network copy is channels-last too); ONNX Runtime takes contiguous arrays.
        self.memory_format = torch.channels_last if backend == "torch" else torch.contiguous_format
        self.input_side = letterbox_side(self.config, input_size)
        self.input_sides = (self.input_side,)  # as a MultiScalePredictor's: every side it runs
        # The ONNX backends export from the float32 model on CPU; torch runs it where it is placed.
        placed = self.device if backend == "torch" else torch.device("cpu")
        self.model = model.eval().to(device=placed, dtype=self.dtype)
        self.runner = make_runner(self.model, backend, self.input_side, self.device, onnx=onnx, int8=int8)
        self._mean = np.array(IMAGENET_MEAN, np.float32).reshape(3, 1, 1) * np.float32(255)
        self._std = np.array(IMAGENET_STD, np.float32).reshape(3, 1, 1) * np.float32(255)
        self.last_timing: dict[str, float] = {}
        from .decode import compile_decoder
        compile_decoder()  # the first frame then costs what every frame does

    def __call__(self, image: np.ndarray) -> PoseSegResult:
        return self.predict_batch([image])[0]

    @torch.inference_mode()
    def predict_batch(self, images: list[np.ndarray]) -> list[PoseSegResult]:
        """One PoseSegResult per image (any sizes), in that image's pixels."""
        from .decode import decode_people  # the decoder is only needed once we predict

        for image in images:
            check_image(image)
        # Images of one letterbox shape share a network call: a camera's frames always do, and an
        # image's result never depends on what it was batched with.
        groups: dict[tuple[int, int], list[int]] = {}
        for i, image in enumerate(images):
            groups.setdefault(self.input_shape([image]), []).append(i)
        results: list = [None] * len(images)
        timing = dict.fromkeys(("preprocess_ms", "network_ms", "decode_ms", "total_ms"), 0.0)
        for indices in groups.values():
            start = time.perf_counter()
            batch, letterboxes = self.preprocess([images[i] for i in indices])
            preprocessed = self._clock()
            maps = {k: v.float() for k, v in activate(self._network(batch)).items()}
            inferred = self._clock()
            input_shape = tuple(batch.shape[-2:])
            for j, (i, box) in enumerate(zip(indices, letterboxes)):
                decoded = decode_people({k: v[j] for k, v in maps.items()}, stride=self.config.output_stride,
                                        radius=self.config.radius, config=self.decoder, image_size=input_shape)
                results[i] = self._to_original(decoded, box, input_shape)
            done = self._clock()
            for key, ms in (("preprocess_ms", preprocessed - start), ("network_ms", inferred - preprocessed),
                            ("decode_ms", done - inferred), ("total_ms", done - start)):
                timing[key] += ms * 1e3
        self.last_timing = timing
        return results

    def _network(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """The network's raw outputs; with flip_test, averaged with those of the mirrored batch (the
        letterbox is mirrored whole, so its maps align with the unmirrored ones once mirrored back)."""
        outputs = self.runner(batch)
        if not self.flip_test:
            return outputs
        mirrored = unmirror(self.runner(torch.flip(batch, dims=[-1])))
        return {k: (v + mirrored[k]) / 2 for k, v in outputs.items()}

    def input_shape(self, images: list[np.ndarray]) -> tuple[int, int]:
        """(H, W) of the network input for these images: each image's longer side becomes input_side,
        and the batch is the smallest multiple of 32 that holds them all (a 640x480 camera gives
        320x256 at input 320, not 320x320: a fifth less network and decoding, as padding is work
        too). A runner with a fixed input shape (an ONNX file without free axes) gets its own."""
        if getattr(self.runner, "fixed_size", None):
            return tuple(self.runner.fixed_size)
        height = width = 32
        for image in images:
            rh, rw = self._resized(*image.shape[:2])
            height, width = max(height, math.ceil(rh / 32) * 32), max(width, math.ceil(rw / 32) * 32)
        return height, width

    def _resized(self, height: int, width: int) -> tuple[int, int]:
        """An image's size in the letterbox: its longer side becomes input_side."""
        side, scale = self.input_side, self.input_side / max(height, width)
        return max(1, min(side, round(height * scale))), max(1, min(side, round(width * scale)))

    def preprocess(self, images: list[np.ndarray]) -> tuple[torch.Tensor, list[Letterbox]]:
        """The normalised, letterboxed network input [B, 3, H, W] (H, W: input_shape) and how each
        image was placed (top-left anchored).

        On the host, whatever the device: the resize runs on the uint8 pixels (PyTorch's bilinear,
        antialiased when shrinking: its uint8 kernels are much faster than its float ones and within one
        grey level of them), normalisation in float32 NumPy straight into a zeroed batch (0 is the mean
        colour, so the padding costs nothing); the device then gets one copy of the batch.
        """
        height, width = self.input_shape(images)
        batch = np.zeros((len(images), 3, height, width), np.float32)
        letterboxes = []
        for i, image in enumerate(images):
            h, w = image.shape[:2]
            rh, rw = self._resized(h, w)
            pixels = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)  # a [3, h, w] view
            if (rh, rw) != (h, w):
                pixels = F.interpolate(pixels[None], size=(rh, rw), mode="bilinear", align_corners=False,
                                       antialias=rh < h)[0]
            placed = batch[i, :, :rh, :rw]
            np.subtract(pixels.numpy(), self._mean, out=placed)
            placed /= self._std
            letterboxes.append(Letterbox(h, w, rh, rw))
        return torch.from_numpy(batch).to(self.device, self.dtype, memory_format=self.memory_format), letterboxes

    def _to_original(self, result: PoseSegResult, box: Letterbox, input_shape: tuple[int, int]) -> PoseSegResult:
        keypoints = result.keypoints.copy()
        keypoints[..., :2] = box.to_original(keypoints[..., :2])
        boxes = box.to_original(result.boxes.reshape(-1, 2, 2)).reshape(-1, 4)
        return PoseSegResult(keypoints=keypoints, scores=result.scores, boxes=boxes.astype(np.float32),
                             label_map=self._label_map_to_original(result.label_map, box, input_shape),
                             mask_scores=result.mask_scores)

    def _label_map_to_original(self, label_map: np.ndarray, box: Letterbox, input_shape: tuple[int, int]) -> np.ndarray:
        """Crop the padding off a label map covering the network input, then nearest-resize it."""
        lh, lw = label_map.shape  # the whole H x W input, at whatever resolution the decoder gives
        crop_h = max(1, round(box.height * lh / input_shape[0]))
        crop_w = max(1, round(box.width * lw / input_shape[1]))
        rows = ((np.arange(box.original_height) + 0.5) * crop_h / box.original_height).astype(np.intp)
        cols = ((np.arange(box.original_width) + 0.5) * crop_w / box.original_width).astype(np.intp)
        # Columns on the cropped rows, then each row repeated as often as `rows` names it (rows is
        # sorted): one gather at the cropped height and row copies, half the cost of two gathers.
        narrow = np.take(label_map[:crop_h], cols, axis=1)
        return np.repeat(narrow, np.bincount(rows, minlength=crop_h), axis=0).astype(np.uint16, copy=False)

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
