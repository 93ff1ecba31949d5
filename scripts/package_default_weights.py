"""Copy a training checkpoint into the package as the default model (fp16 safetensors).

Usage: python scripts/package_default_weights.py runs/default/best.safetensors
"""
import sys

from kdc_model.checkpoint import load_checkpoint, save_checkpoint
from kdc_model.network import KDCNet
from kdc_model.predictor import DEFAULT_WEIGHTS


def main(source: str) -> None:
    config, state = load_checkpoint(source)
    model = KDCNet(config)
    model.load_state_dict(state)
    DEFAULT_WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(DEFAULT_WEIGHTS, model, config, extra_metadata={"source": source}, half=True)
    print(f"{DEFAULT_WEIGHTS}: {DEFAULT_WEIGHTS.stat().st_size / 1e6:.1f} MB (fp16)")


if __name__ == "__main__":
    main(sys.argv[1])
