"""Training recipes: a YAML file with `model` (ModelConfig fields), `data` (sources, relative to a
data root), `augment` (AugmentConfig fields) and `train` (optimisation and bookkeeping) sections,
plus `section.key=value` overrides from the command line.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import yaml

from .augment import AugmentConfig
from ..network.config import ModelConfig
from .data import SourceSpec

DEFAULT_RECIPE = Path(__file__).parents[1] / "configs" / "default.yaml"


@dataclass
class TrainConfig:
    """The `train` section."""

    seed: int = 0
    steps: int = 20000            # length of the learning-rate schedule and of the run
    batch_size: int = 8
    crop_size: int = 256          # square training crop, a multiple of 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 300
    final_lr_fraction: float = 0.02   # cosine decay ends at lr * this
    grad_clip: float = 5.0
    ema_decay: float = 0.0        # >0: validate and save an exponential moving average of the weights (and BN statistics)
    epoch_size: int = 1000        # samples per epoch (only names the seeds: samples are drawn with replacement)
    workers: int = 2              # dataloader processes, one thread each
    threads: int | None = 1       # torch threads of the main (training) process on CPU (null: leave as is)
    amp: bool = True              # mixed precision, on CUDA only
    device: str = "auto"
    log_every: int = 10           # steps per CSV row
    checkpoint_minutes: float = 5.0
    val_every: int = 1000         # steps between validations (0: only at the end)
    val_max_images: int | None = None
    val_sources: list[str] | None = None  # sources whose held-out images validate the run (null: all)
    backbone_weights: str | None = None  # ImageNet weights for a fresh run (not used when resuming)
    init_weights: str | None = None   # a KDC checkpoint to start a fresh run from (fine-tuning)
    # BatchNorm normalises with its running statistics in training too (and keeps them): with batches
    # of 8, per-batch statistics hold part of the fit that inference, which uses the running ones, lacks.
    frozen_batchnorm: bool = False


def load_recipe(path: str | Path, overrides: list[str] = ()) -> dict:
    """The recipe dict of a YAML file with `a.b=value` overrides (values parsed as YAML) applied."""
    with open(path, encoding="utf-8") as f:
        recipe = yaml.safe_load(f) or {}
    return apply_overrides(recipe, overrides)


def apply_overrides(recipe: dict, overrides: list[str]) -> dict:
    recipe = copy.deepcopy(recipe)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} must look like section.key=value")
        *parents, leaf = key.split(".")
        node = recipe
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r}: {part} is not a section")
        node[leaf] = yaml.safe_load(value)
    return recipe


def _numbers(train: dict) -> dict:
    """The train section with float fields as floats: YAML reads `3e-4` (no dot) as a string."""
    out = dict(train)
    for f in fields(TrainConfig):
        if f.name in out and "float" in str(f.type) and isinstance(out[f.name], str):
            try:
                out[f.name] = float(out[f.name])
            except ValueError:
                raise ValueError(f"recipe train.{f.name}: {out[f.name]!r} is not a number") from None
    return out


@dataclass
class Recipe:
    model: ModelConfig
    sources: list[SourceSpec]
    augment: AugmentConfig
    train: TrainConfig
    data_root: str | None = None
    pseudo_labels: str | None = None  # folder written by python -m kdc_ros.teacher

    @classmethod
    def from_dict(cls, d: dict) -> "Recipe":
        unknown = set(d) - {"model", "data", "augment", "train"}
        if unknown:
            raise ValueError(f"recipe: unknown sections {sorted(unknown)}")
        data = d.get("data") or {}
        unknown = set(data) - {"root", "sources", "pseudo_labels"}
        if unknown:
            raise ValueError(f"recipe data: unknown keys {sorted(unknown)}")
        train = d.get("train") or {}
        unknown = set(train) - {f.name for f in fields(TrainConfig)}
        if unknown:
            raise ValueError(f"recipe train: unknown keys {sorted(unknown)}")
        return cls(model=ModelConfig.from_dict(d.get("model") or {}),
                   sources=[SourceSpec.from_dict(s) for s in data.get("sources", [])],
                   augment=AugmentConfig.from_dict(d.get("augment") or {}),
                   train=TrainConfig(**_numbers(train)), data_root=data.get("root"),
                   pseudo_labels=data.get("pseudo_labels"))

    def to_dict(self) -> dict:
        augment = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.augment).items()}
        return {"model": self.model.to_dict(),
                "data": {"root": self.data_root, "pseudo_labels": self.pseudo_labels, "sources": [asdict(s) for s in self.sources]},
                "augment": augment, "train": asdict(self.train)}
