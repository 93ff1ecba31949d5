"""Copy a training checkpoint into the package as the default model (fp16 safetensors).

Usage: python scripts/package_default_weights.py runs/default/best.safetensors
"""
import sys

from kdc_model import DEFAULT_WEIGHTS, build_network, save_checkpoint


def main(source: str) -> None:
    model = build_network(source)
    target = DEFAULT_WEIGHTS.file
    target.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(target, model, model.config, extra_metadata={"source": source}, half=True)
    print(f"{target}: {target.stat().st_size / 1e6:.1f} MB (fp16)")


if __name__ == "__main__":
    main(sys.argv[1])
