"""How well a checkpoint fits its own training crops: each head's loss term in inference mode.

    python -m kdc_model.training.fit_report --checkpoint CKPT --data-root ../shared/data [--crops 64]

The crops are the first N samples of the recipe's training stream (augmented exactly as training
draws them, seed 0), so every checkpoint is measured on the same crops. Offsets are in units of the
disk radius R (an all-zero short-offset output scores ~0.85 R on typical crops), heatmap/seg as BCE.
A model that fits here but scores low on held-out photographs memorises rather than generalises.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from .losses import kdc_loss


def fit_terms(model, stream, crops: int, batch_size: int = 8) -> dict[str, float]:
    """Mean loss term per head over the stream's first `crops` samples, model in eval mode."""
    model.eval()
    sums: dict[str, float] = {}
    batches = 0
    with torch.no_grad():
        for start in range(0, crops, batch_size):
            items = [stream[i] for i in range(start, min(start + batch_size, crops))]
            images = torch.stack([image for image, _ in items])
            targets = {k: torch.stack([t[k] for _, t in items]) for k in items[0][1]}
            _, terms = kdc_loss(model(images), targets, model.config)
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + float(value)
            batches += 1
    return {key: value / batches for key, value in sums.items()}


def main(argv: list[str] | None = None) -> int:
    from .data import TrainingStream, load_sources
    from ..network.weights import build_network
    from .recipe import DEFAULT_RECIPE, Recipe, load_recipe

    parser = argparse.ArgumentParser(prog="python -m kdc_model.training.fit_report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="default", help="checkpoint path, or 'default'")
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--config", type=Path, default=DEFAULT_RECIPE, help="recipe whose training stream to draw")
    parser.add_argument("--crops", type=int, default=64)
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    model = build_network(args.checkpoint)
    config = model.config
    recipe = Recipe.from_dict(load_recipe(args.config, [f"data.root={args.data_root.resolve()}"]))
    train_records, _ = load_sources(recipe.sources, recipe.data_root)
    stream = TrainingStream(train_records, {s.name: s.weight for s in recipe.sources}, config,
                            recipe.train.crop_size, recipe.augment, seed=0, epoch_size=recipe.train.epoch_size)
    terms = fit_terms(model, stream, args.crops)
    print(f"{args.checkpoint}: " + ", ".join(f"{k} {v:.3f}" for k, v in terms.items())
          + f"  ({args.crops} training crops; offsets in R, heatmap/seg BCE)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
