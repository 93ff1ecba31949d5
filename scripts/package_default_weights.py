"""Copy a training checkpoint into the package as the default model (fp16 safetensors), and its int8
network (kdc_default.int8.onnx, kdc_model.inference.quantize) calibrated on real training images.

The inference settings come from the recipe (`model.decoder` and `model.multi_scale` of
kdc_model/configs/default.yaml), so a decoder calibrated again on COCO photographs, or other letterbox
sides, ship without retraining. Repackaging the packaged file itself keeps the training run it names. The int8 network is made from
the packaged weights (their digest is in it, so it must be made again whenever they change).

Usage: python scripts/package_default_weights.py SOURCE [--recipe RECIPE] [--data-root ../shared/data]
"""
import argparse
import dataclasses

from safetensors import safe_open

from kdc_model import DEFAULT_WEIGHTS, build_network, save_checkpoint
from kdc_model.inference import quantize
from kdc_model.network.config import ModelConfig
from kdc_model.training.recipe import load_recipe

DEFAULT_RECIPE = "kdc_model/configs/default.yaml"
# Calibration images: training images only (never coco_val_dev), COCO photographs and LSPET's sports.
CALIBRATION_FOLDERS = ("coco_mini_train/images", "lspet/images")
PER_FOLDER = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="training checkpoint (e.g. runs/NAME/best.safetensors)")
    parser.add_argument("--recipe", default=DEFAULT_RECIPE)
    parser.add_argument("--data-root", default="../shared/data", help="where the calibration images are")
    args = parser.parse_args()
    model = build_network(args.source)
    recipe = ModelConfig.from_dict(load_recipe(args.recipe).get("model") or {})
    config = dataclasses.replace(model.config, decoder=recipe.decoder, multi_scale=recipe.multi_scale)
    source = args.source
    if args.source.endswith(".safetensors"):
        with safe_open(args.source, "pt") as f:
            source = (f.metadata() or {}).get("source", source)
    target = DEFAULT_WEIGHTS.file
    target.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(target, model, config, extra_metadata={"source": source}, half=True)
    print(f"{target}: {target.stat().st_size / 1e6:.1f} MB (fp16), decoder and sides from {args.recipe}")
    images = [str(path) for folder in CALIBRATION_FOLDERS
              for path in quantize.image_files([f"{args.data_root}/{folder}"])[:PER_FOLDER]]
    quantize.main(["--checkpoint", "default", "--images", *images, "--max-images", str(len(images))])


if __name__ == "__main__":
    main()
