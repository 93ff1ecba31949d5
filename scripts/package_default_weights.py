"""Copy a training checkpoint into the package as the default model (fp16 safetensors).

The decoder settings come from the recipe (`model.decoder` of kdc_model/configs/default.yaml), so a
decoder calibrated again on COCO photographs ships without retraining.

Usage: python scripts/package_default_weights.py runs/default/best.safetensors [RECIPE]
"""
import dataclasses
import sys

from kdc_model import DEFAULT_WEIGHTS, build_network, save_checkpoint
from kdc_model.network.config import ModelConfig
from kdc_model.training.recipe import load_recipe

DEFAULT_RECIPE = "kdc_model/configs/default.yaml"


def main(source: str, recipe: str = DEFAULT_RECIPE) -> None:
    model = build_network(source)
    decoder = ModelConfig.from_dict(load_recipe(recipe).get("model") or {}).decoder
    config = dataclasses.replace(model.config, decoder=decoder)
    target = DEFAULT_WEIGHTS.file
    target.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(target, model, config, extra_metadata={"source": source}, half=True)
    print(f"{target}: {target.stat().st_size / 1e6:.1f} MB (fp16), decoder from {recipe}")


if __name__ == "__main__":
    main(*sys.argv[1:])
