"""int8 KDC networks for ONNX Runtime on CPU: made once from real images, checked before every use.

    python -m kdc_model.inference.quantize --checkpoint PATH|default --images FILE|DIR [...] [--out PATH]

Static quantisation (onnxruntime.quantization, QDQ format): weights int8 per output channel,
activations uint8 with ranges calibrated on real images (percentile, so one bright outlier does not
stretch a range). On this project's 2-core CPU the network then runs in about 0.6x the time of
float32 at the same accuracy on keypoints (docs/bench.md has the measured figures).

The quantised model lives beside its checkpoint as <stem>.int8.onnx (kdc_model.inference.runtime.int8_path);
the default weights ship theirs. Its metadata_props carry the float network's config, the SHA-256 of
the float weights it was quantised from (kdc_model.inference.export.weights_sha256) and how it was
calibrated; runtime.load_int8 refuses a file made from other weights, so a retrained checkpoint
never runs a stale int8 network. Loading one executes nothing from it: ONNX is a graph of data.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from .export import INPUT_NAME, onnx_bytes, weights_sha256
from .runtime import INT8_FORMAT, int8_path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def quantize(model: torch.nn.Module, batches: list[np.ndarray]) -> bytes:
    """The int8 ONNX model of float KDCNet `model`, calibrated on `batches` (normalised network inputs
    [1, 3, H, W], as Predictor.preprocess makes them); batch, height and width stay free."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process
    import onnx

    if not batches:
        raise ValueError("int8 calibration needs at least one image")
    side = max(max(b.shape[-2:]) for b in batches)

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self._left = iter(batches)

        def get_next(self):
            batch = next(self._left, None)
            if batch is None:
                return None
            # The calibrator stacks its runs' outputs, so every input is padded to one square, with
            # zeros: the mean colour the letterbox pads with too.
            square = np.zeros((*batch.shape[:2], side, side), np.float32)
            square[..., :batch.shape[2], :batch.shape[3]] = batch
            return {INPUT_NAME: square}

    with tempfile.TemporaryDirectory(prefix="kdc_int8_") as folder:
        folder = Path(folder)
        (folder / "float.onnx").write_bytes(onnx_bytes(model, side, dynamic_batch=True, dynamic_size=True))
        # Folds the constant scale after each offset head into its convolution, so it is quantised once.
        quant_pre_process(str(folder / "float.onnx"), str(folder / "prepared.onnx"), skip_symbolic_shape=True)
        for method in ("percentile", "minmax"):
            try:
                quantize_static(str(folder / "prepared.onnx"), str(folder / "int8.onnx"), Batches(),
                                quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                                weight_type=QuantType.QInt8, per_channel=True,
                                calibrate_method={"percentile": CalibrationMethod.Percentile,
                                                  "minmax": CalibrationMethod.MinMax}[method])
                break
            except ValueError as err:
                # A tensor whose values all but coincide has no histogram (numpy: "Too many bins for
                # data range"); its min and max still make a range.
                if "bins" not in str(err) or method == "minmax":
                    raise
        proto = onnx.load(str(folder / "int8.onnx"))
    metadata = {p.key: p.value for p in proto.metadata_props}
    metadata.update(format=INT8_FORMAT, weights_sha256=weights_sha256(model),
                    calibration=f"{len(batches)} images, {method} ranges, side {side}")
    del proto.metadata_props[:]
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    return proto.SerializeToString()


def image_files(paths: list[str]) -> list[Path]:
    """The image files named, folders expanded (sorted)."""
    files = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        elif path.is_file():
            files.append(path)
        else:
            raise ValueError(f"{path}: no such image or folder")
    return files


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kdc_model.inference.quantize", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="checkpoint path, or named weights ('default')")
    parser.add_argument("--images", nargs="+", required=True,
                        help="calibration images or folders of them: real photographs like the ones the model "
                        "will see (20-50 are enough)")
    parser.add_argument("--max-images", type=int, default=40, help="calibrate on at most this many (default 40), "
                        "taken evenly from the list")
    parser.add_argument("--out", default=None, help="output file (default: <checkpoint stem>.int8.onnx beside it)")
    args = parser.parse_args(argv)
    import cv2

    from ..network.weights import weights_file
    from .predictor import load_model

    def read_rgb(path: Path) -> np.ndarray:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"{path}: not an image OpenCV can read")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    try:
        predictor = load_model(args.checkpoint, multi_scale=())  # calibration at the model's own side
        files = image_files(args.images)
        if not files:
            raise ValueError("no calibration images found")
        picked = [files[i] for i in np.linspace(0, len(files) - 1, min(args.max_images, len(files))).astype(int)]
        batches = [predictor.preprocess([read_rgb(f)])[0].numpy() for f in picked]
        out = Path(args.out) if args.out else int8_path(weights_file(args.checkpoint))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    data = quantize(predictor.model, batches)
    out.write_bytes(data)
    print(f"wrote {out} ({len(data) / 1e6:.1f} MB), calibrated on {len(batches)} images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
