"""kdc_model: KDC (Keypoints as Dynamic Centroids), multi-person pose and instance masks from one
network. Pure PyTorch + NumPy: this package never imports ROS.
"""
from .network.config import DecoderConfig, ModelConfig
from .result import PoseSegResult

# The public names that pull in torch/torchvision, each imported from its module on first use, so
# `import kdc_model` stays light.
_LAZY = {
    "load_model": "inference.predictor", "Predictor": "inference.predictor",
    "build_network": "network.weights", "letterbox_side": "network.weights", "NamedWeights": "network.weights",
    "DEFAULT_WEIGHTS": "network.weights", "NAMED_WEIGHTS": "network.weights",
    "CheckpointError": "network.checkpoint", "save_checkpoint": "network.checkpoint",
    "load_checkpoint": "network.checkpoint", "load_backbone_weights": "network.checkpoint",
    "KDCNet": "network.kdcnet",
}

__all__ = ["DecoderConfig", "ModelConfig", "PoseSegResult", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
