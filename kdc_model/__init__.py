"""kdc_model: KDC (Keypoints as Dynamic Centroids), multi-person pose and instance masks from one
network. Pure PyTorch + NumPy: this package never imports ROS.
"""
from .config import DecoderConfig, ModelConfig
from .result import PoseSegResult

__all__ = ["DecoderConfig", "ModelConfig", "PoseSegResult", "load_model", "Predictor"]


def __getattr__(name):
    # The predictor pulls in torchvision; import it on first use so `import kdc_model` stays light.
    if name in ("load_model", "Predictor"):
        from . import predictor
        return getattr(predictor, name)
    raise AttributeError(name)
