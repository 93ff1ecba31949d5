"""Export KDCNet to ONNX, self-describing, and check ONNX Runtime reproduces PyTorch.

    python -m kdc_model.inference.export --checkpoint PATH|default --out model.onnx [--input-size N] [--dynamic]

The ONNX graph is the network only: input `images` [B, 3, H, W] (ImageNet-normalised, letterboxed,
H and W multiples of 32) -> the five raw head outputs named by kdc_model.network.heads.HEAD_CHANNELS
(`heatmap`, `short`, `mid`, `seg`, `embed`: logits / input-pixel offsets, before `activate`).
Letterboxing, activation and decoding stay in kdc_model.inference.predictor. The ModelConfig JSON is stored in
the model's metadata_props (key `config`, next to `format`, `format_version`, `input_side` and
`weights_sha256`, the digest of the weights it was exported from), so the file carries what the
decoder needs and says which network it is. Without --dynamic the input is [1, 3, S, S]; with it the
batch, height and width are free. Uses the TorchScript exporter (dynamo=False): it needs no onnxscript.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from ..network.config import ModelConfig
from ..network.heads import HEAD_CHANNELS

FORMAT_NAME = "kdc_model_onnx"
FORMAT_VERSION = "1"
OPSET = 17
INPUT_NAME = "images"
OUTPUT_NAMES = tuple(HEAD_CHANNELS)
# Changes whenever an export of the same weights would differ (cache files are keyed by it).
EXPORT_FORMAT_TAG = f"{FORMAT_NAME}/{FORMAT_VERSION} opset {OPSET} torchscript-exporter"


def onnx_bytes(model: torch.nn.Module, input_side: int, *, dynamic_batch: bool = False,
               dynamic_size: bool = False) -> bytes:
    """The serialised ONNX model of KDCNet `model` (float32) at input [1, 3, S, S], with its config in
    metadata_props. dynamic_batch frees the batch axis, dynamic_size the height and width."""
    import onnx

    if input_side % 32:
        raise ValueError(f"input side {input_side} is not a multiple of 32")
    model = model.eval()
    parameter = next(model.parameters())
    example = torch.zeros((1, 3, input_side, input_side), device=parameter.device, dtype=parameter.dtype)
    axes = {}
    if dynamic_batch or dynamic_size:
        free = ({0: "batch"} if dynamic_batch else {})
        axes = {INPUT_NAME: {**free, **({2: "height", 3: "width"} if dynamic_size else {})}}
        axes.update({k: {**free, **({2: "map_height", 3: "map_width"} if dynamic_size else {})} for k in OUTPUT_NAMES})
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter announces its successor
        torch.onnx.export(model, (example,), buffer, input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                          dynamic_axes=axes or None, opset_version=OPSET, dynamo=False)
    proto = onnx.load_from_string(buffer.getvalue())
    metadata = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "input_side": str(input_side),
                "config": json.dumps(model.config.to_dict()), "weights_sha256": weights_sha256(model)}
    del proto.metadata_props[:]
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    proto.doc_string = "KDCNet: normalised images -> raw heads " + ", ".join(OUTPUT_NAMES)
    return proto.SerializeToString()


def weights_sha256(model: torch.nn.Module) -> str:
    """SHA-256 of a network's config and every tensor of its state dict (names, dtypes, shapes, bytes):
    what an export claims to come from, checked against the network before a cached export runs."""
    config = getattr(model, "config", None)
    digest = hashlib.sha256(json.dumps(config.to_dict() if config is not None else None, sort_keys=True).encode())
    for name, tensor in model.state_dict().items():
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"\n{name} {flat.dtype} {tuple(tensor.shape)}\n".encode())
        digest.update(flat.view(torch.uint8).numpy() if flat.numel() else b"")
    return digest.hexdigest()


def export_onnx(model: torch.nn.Module, path: str | Path, input_side: int, *, dynamic_batch: bool = False,
                dynamic_size: bool = False) -> Path:
    """Write onnx_bytes(...) to `path` atomically (a crash never leaves half a file there), through a
    new file of a random name (O_EXCL | O_NOFOLLOW): a symlink planted in the folder clobbers nothing."""
    from ..network.private_files import write_atomic

    path = Path(path)
    data = onnx_bytes(model, input_side, dynamic_batch=dynamic_batch, dynamic_size=dynamic_size)
    write_atomic(path, data, mode=0o666)  # an ordinary output file: the umask decides who may read it
    return path


def read_metadata(path_or_bytes: str | Path | bytes) -> dict[str, str]:
    """The metadata_props of an ONNX file (or serialised model) as a dict."""
    import onnx

    if isinstance(path_or_bytes, bytes):
        proto = onnx.load_from_string(path_or_bytes)
    else:
        proto = onnx.load(str(path_or_bytes), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


def read_config(path_or_bytes: str | Path | bytes) -> ModelConfig:
    """The ModelConfig stored in a KDC ONNX file; ValueError when it is not one."""
    metadata = read_metadata(path_or_bytes)
    if metadata.get("format") != FORMAT_NAME or "config" not in metadata:
        raise ValueError(f"{path_or_bytes if not isinstance(path_or_bytes, bytes) else 'model'}: "
                         f"not a KDC ONNX export (no kdc_model config in its metadata)")
    return ModelConfig.from_dict(json.loads(metadata["config"]))


def max_abs_diff(model: torch.nn.Module, session, images: torch.Tensor) -> dict[str, float]:
    """Per head, max |torch - onnxruntime| on `images` (float32 CPU [B, 3, H, W])."""
    with torch.no_grad():
        expected = model.eval()(images)
    got = dict(zip(OUTPUT_NAMES, session.run(list(OUTPUT_NAMES), {INPUT_NAME: images.numpy()})))
    return {k: float(np.abs(expected[k].numpy() - got[k]).max()) for k in OUTPUT_NAMES}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kdc_model.inference.export", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="checkpoint path, or named weights ('default': the "
                        "packaged ones)")
    parser.add_argument("--out", required=True, help="ONNX file to write")
    parser.add_argument("--input-size", type=int, default=None,
                        help="letterbox side (rounded up to a multiple of 32; default: the side the network was "
                        "trained at); the network is the same at every side")
    parser.add_argument("--dynamic", action="store_true", help="free batch, height and width axes")
    parser.add_argument("--tolerance", type=float, default=1e-3,
                        help="largest max-abs difference torch vs onnxruntime accepted (default 1e-3)")
    args = parser.parse_args(argv)
    from ..network.weights import build_network, letterbox_side

    try:
        model = build_network(args.checkpoint)
        side = letterbox_side(model.config, args.input_size)
    except ValueError as err:  # a CheckpointError (missing, corrupt file) or an impossible side
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = export_onnx(model, args.out, side, dynamic_batch=args.dynamic, dynamic_size=args.dynamic)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): images [{'B' if args.dynamic else 1}, 3, "
          f"{'H' if args.dynamic else side}, {'W' if args.dynamic else side}] -> {', '.join(OUTPUT_NAMES)}")

    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(str(out), options, providers=["CPUExecutionProvider"])
    images = torch.randn((2 if args.dynamic else 1, 3, side, side), generator=torch.Generator().manual_seed(0))
    diffs = max_abs_diff(model, session, images)
    worst = max(diffs.values())
    print("max abs diff torch vs onnxruntime: " + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items())
          + f"; overall {worst:.2e}")
    if not worst <= args.tolerance:
        print(f"error: onnxruntime differs from torch by {worst:.2e} > {args.tolerance:g}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
