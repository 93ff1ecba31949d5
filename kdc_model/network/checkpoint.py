"""KDC checkpoints: a safetensors state dict with the ModelConfig JSON in its metadata.

Loading never executes code from the file: safetensors holds only tensors, and the .pt/.pth
fallback goes through torch.load(weights_only=True), which refuses any pickled object that is
not a tensor or a plain container. Every failure is a one-line CheckpointError naming the file.
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from .config import ModelConfig
from .kdcnet import KDCNet
from .private_files import write_atomic

FORMAT_NAME = "kdc_model"
FORMAT_VERSION = "1"
# Extensions read with torch.load(weights_only=True); anything else must be safetensors.
_TORCH_EXTENSIONS = (".pt", ".pth", ".bin")


class CheckpointError(ValueError):
    """A model file is missing, unreadable, not a KDC checkpoint, or does not fit its config."""


def save_checkpoint(path: str | Path, model: torch.nn.Module, config: ModelConfig,
                    extra_metadata: dict | None = None, half: bool = False) -> None:
    """Write `model`'s state dict and `config` to a .safetensors file (floats as fp16 when `half`).

    extra_metadata values are stored as strings (JSON for non-strings), next to the config.
    """
    path = Path(path)
    state = {}
    for key, tensor in model.state_dict().items():
        tensor = tensor.detach().to("cpu").contiguous()
        state[key] = tensor.half() if half and tensor.is_floating_point() else tensor
    metadata = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (extra_metadata or {}).items()}
    metadata.update(format=FORMAT_NAME, format_version=FORMAT_VERSION, config=json.dumps(config.to_dict()))
    # Written under a fresh random name beside the target (O_EXCL | O_NOFOLLOW) and renamed over it: a
    # crash never leaves half a checkpoint, and a symlink planted in a shared folder clobbers nothing.
    write_atomic(path, save(state, metadata=metadata), mode=0o666)


def load_checkpoint(path: str | Path) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """(config, float32 state dict) of a KDC checkpoint, checked against the network the config builds."""
    tensors, metadata = _read_file(path)
    if "config" not in metadata:
        raise CheckpointError(f"{path}: not a KDC checkpoint (no model config stored with the weights)")
    try:
        config = ModelConfig.from_dict(json.loads(metadata["config"]))
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{path}: invalid model config in checkpoint: {err}") from None
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in tensors.items()}
    _check_fits_config(path, config, state)
    return config, state


def load_backbone_weights(network: KDCNet, path: str | Path) -> None:
    """Load an ImageNet classifier state dict (a torchvision .pth, or .safetensors), or the backbone
    of a KDC checkpoint (a trained model whose neck and heads are to be replaced), into the backbone
    of `network`.

    The classifier layers (and MobileNetV2's last 1x1 conv) are not part of the backbone and are
    skipped; every backbone weight must be present with the right shape.
    """
    state, _ = _read_file(path)
    backbone, name = network.backbone, network.config.backbone
    prefix = backbone.imagenet_prefix
    if any(k.startswith("backbone.body.") for k in state):  # a KDC checkpoint: reuse its trained backbone
        prefix = "backbone.body."
    wanted = backbone.body.state_dict()
    weights = {k[len(prefix):]: v.float() for k, v in state.items() if k.startswith(prefix) and k[len(prefix):] in wanted}
    missing = sorted(set(wanted) - set(weights))
    if missing:
        raise CheckpointError(f"{path}: not ImageNet weights for {name}: "
                              f"{len(missing)} backbone weights missing (e.g. {missing[0]})")
    wrong = [k for k, v in weights.items() if v.shape != wanted[k].shape]
    if wrong:
        raise CheckpointError(f"{path}: not ImageNet weights for {name}: "
                              f"{wrong[0]} has shape {tuple(weights[wrong[0]].shape)}, "
                              f"expected {tuple(wanted[wrong[0]].shape)}")
    backbone.body.load_state_dict(weights)


def _read_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, string metadata) of a model file; the metadata of a .pt holds its 'config' if any."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    if path.suffix.lower() in _TORCH_EXTENSIONS:
        return _read_torch_file(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except (SafetensorError, OSError, RuntimeError) as err:
        raise CheckpointError(f"{path}: truncated or corrupt safetensors file ({_first_line(err)})") from None


def _read_torch_file(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(f"{path}: refused: the file holds pickled objects other than tensors, "
                              f"which could run code ({_refusal_reason(err)})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: truncated or corrupt torch file ({_first_line(err)})") from None
    metadata = {}
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        if isinstance(obj.get("config"), dict):
            metadata["config"] = json.dumps(obj["config"])
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise CheckpointError(f"{path}: not a checkpoint (expected a state dict of named tensors)")
    return obj, metadata


def _check_fits_config(path, config: ModelConfig, state: dict[str, torch.Tensor]) -> None:
    """Raise unless `state` has exactly the keys and shapes of KDCNet(config)."""
    with torch.device("meta"):  # shapes only: no memory, no init cost
        expected = {k: v.shape for k, v in KDCNet(config).state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        raise CheckpointError(f"{path}: weights do not fit the stored config (backbone {config.backbone}, "
                              f"output_stride {config.output_stride}): keys {', '.join(parts)}")
    for key, shape in expected.items():
        if state[key].shape != shape:
            raise CheckpointError(f"{path}: weights do not fit the stored config: {key} has shape "
                                  f"{tuple(state[key].shape)}, the config needs {tuple(shape)}")


def _first_line(err: BaseException) -> str:
    """The first sentence of an error: enough to say what broke, short enough for one log line."""
    text = str(err).strip()
    return text.splitlines()[0].split(". ")[0] if text else type(err).__name__


def _refusal_reason(err: BaseException) -> str:
    """The line of torch's weights_only refusal that names the offending object (its first line is advice)."""
    lines = [line.strip() for line in str(err).splitlines()]
    reason = next((line for line in lines if line.startswith("WeightsUnpickler error")), None)
    return reason.split(" was not")[0] if reason else _first_line(err)
