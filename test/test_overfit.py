"""End to end: a small KDCNet trained on 4 synthetic images (targets -> losses -> network) decodes
them back: every person found, keypoints within a few pixels, masks IoU > 0.8.

Budget: about 25 s of CPU time, one thread (150 Adam steps on a 4 x 128 x 128 batch, stride 4).
"""
import numpy as np
import torch

from kdc_model import KDCNet, ModelConfig, Predictor
from kdc_model.training.losses import kdc_loss
from kdc_model.training.synthetic import make_scene
from kdc_model.training.targets import encode_targets

SIDE = 128
STEPS = 150
LEARNING_RATE = 8e-3
CONFIDENT = 0.3  # people scoring at least this count as found; a leftover fragment scores ~0.1


def _box_iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _scenes():
    """4 scenes of 2 people each, redrawn until the two barely overlap: this test is about the
    network learning its maps, not about untangling near-coincident people."""
    rng = np.random.default_rng(0)
    scenes = []
    while len(scenes) < 4:
        scene = make_scene(rng, SIDE, SIDE, 2, min_height=0.6 * SIDE, max_height=0.9 * SIDE, allow_outside=False,
                           unlabelled_fraction=0.0, crowd_probability=0.0)
        xy = scene.keypoints[..., :2]
        boxes = np.concatenate([xy.min(axis=1), xy.max(axis=1)], axis=1)
        if _box_iou(*boxes) < 0.1:
            scenes.append(scene)
    return scenes


def _recalibrate_batch_norm(model, images):
    """Set BN running statistics to the exact statistics of `images`: a few hundred steps at the
    default momentum leave them lagging behind the weights, and eval mode would see that lag."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # cumulative average: one batch gives its exact statistics
    model.train()
    with torch.no_grad():
        model(images)


def test_small_network_overfits_four_images_to_near_perfect_decoding():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    config = ModelConfig(input_size=SIDE, output_stride=4, neck_channels=32, head_channels=32)
    model = KDCNet(config)
    predictor = Predictor(model, device="cpu")
    scenes = _scenes()
    images, _ = predictor.preprocess([s.image for s in scenes])  # the exact input the predictor will see
    encoded = [encode_targets(s.keypoints, s.masks, s.ignore, image_size=(SIDE, SIDE),
                              stride=config.output_stride, radius=config.radius) for s in scenes]
    targets = {k: torch.stack([t[k] for t in encoded]) for k in encoded[0]}

    model.train()
    optimiser = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=LEARNING_RATE, total_steps=STEPS,
                                                   pct_start=0.15)
    for _ in range(STEPS):
        loss, _ = kdc_loss(model(images), targets, config)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
    _recalibrate_batch_norm(model, images)
    model.eval()

    results = predictor.predict_batch([s.image for s in scenes])
    for scene, result in zip(scenes, results):
        assert (result.scores >= CONFIDENT).sum() == len(scene.keypoints), result.scores
        masks = result.masks()
        for truth, truth_mask in zip(scene.keypoints, scene.masks):
            errors = np.linalg.norm(result.keypoints[..., :2] - truth[None, :, :2], axis=2)  # [found, 17]
            i = int(np.argmin(np.median(errors, axis=1)))
            assert np.median(errors[i]) < 2.0 and np.percentile(errors[i], 90) < 6.0, errors[i]
            iou = (masks[i] & truth_mask).sum() / (masks[i] | truth_mask).sum()
            assert iou > 0.8, iou
