"""kdc_model: KDC (Keypoints as Dynamic Centroids), multi-person pose and instance masks from one
network. Pure PyTorch + NumPy: this package never imports ROS.
"""
from .config import DecoderConfig, ModelConfig
from .result import PoseSegResult

# The public names that pull in torch/torchvision, each imported from its module on first use, so
# `import kdc_model` stays light.
_LAZY = {
    "load_model": "predictor", "Predictor": "predictor",
    "build_network": "named_weights", "letterbox_side": "named_weights", "NamedWeights": "named_weights",
    "DEFAULT_WEIGHTS": "named_weights", "NAMED_WEIGHTS": "named_weights",
    "CheckpointError": "checkpoint", "save_checkpoint": "checkpoint", "load_checkpoint": "checkpoint",
    "load_backbone_weights": "checkpoint",
    "KDCNet": "network",
}

__all__ = ["DecoderConfig", "ModelConfig", "PoseSegResult", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
