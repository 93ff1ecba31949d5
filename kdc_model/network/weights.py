"""Named weights, and the one way to build a KDC network and say which letterbox side it sees.

Like torchvision's weights enums, a name ("default") stands for a weights file and what goes with
it; `build_network` turns a name, a checkpoint path or a ModelConfig (random init) into a KDCNet.
load_model, the ONNX export CLI and the bench all come through here, so they run the same network.

input_size has one meaning: the longer side of the letterbox the network sees (`letterbox_side`
rounds it up to a multiple of 32). A checkpoint's ModelConfig.input_size is the side it was trained
at, which is also its default side; the offset heads' output scale and the decoder's disk radius
(ModelConfig.radius) were fixed by that side in training and stay so at any other side. Running at
another side therefore never edits the config: a network rebuilt from a config set to 640 is another
network (a 320-trained one scaled its offsets by 2 and found nobody).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from .checkpoint import CheckpointError, load_checkpoint
from .config import ModelConfig, input_size_problem
from .kdcnet import KDCNet

WEIGHTS_FOLDER = Path(__file__).parents[1] / "weights"  # kdc_model/weights: data, not code


@dataclass(frozen=True)
class NamedWeights:
    """Weights a user names instead of a path: the file and what they are."""

    name: str
    file: Path
    description: str

    @property
    def installed(self) -> bool:
        return self.file.is_file()


DEFAULT_WEIGHTS = NamedWeights("default", WEIGHTS_FOLDER / "kdc_default.safetensors",
                               "the bundled default (README: Model card)")
NAMED_WEIGHTS = {weights.name: weights for weights in (DEFAULT_WEIGHTS,)}


def weights_file(source: str | Path | NamedWeights) -> Path:
    """The checkpoint file of named weights (an object or its name) or of a path; CheckpointError when
    named weights are not installed."""
    named = source if isinstance(source, NamedWeights) else NAMED_WEIGHTS.get(str(source))
    if named is None:
        return Path(source)
    if not named.installed:
        raise CheckpointError(f"{named.file}: the {named.name} KDC weights are not installed; "
                              f"pass a checkpoint path instead")
    return named.file


def build_network(source: str | Path | NamedWeights | ModelConfig) -> KDCNet:
    """The KDC network of named weights, a checkpoint file, or a ModelConfig (random init), in eval
    mode, exactly as stored: whatever side it later runs at (see the module's note on input_size)."""
    if isinstance(source, ModelConfig):
        return KDCNet(source).eval()
    config, state = load_checkpoint(weights_file(source))
    network = KDCNet(config)
    network.load_state_dict(state)
    return network.eval()


def letterbox_side(config: ModelConfig, input_size: int | None = None) -> int:
    """The letterbox side a network of `config` sees at `input_size` (None: the side it was trained
    at), rounded up to a multiple of 32; ValueError for a side it cannot see."""
    problem = input_size_problem(input_size)
    if problem is not None:
        raise ValueError(problem)
    return math.ceil((config.input_size if input_size is None else input_size) / 32) * 32
