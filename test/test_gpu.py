"""The CUDA path, run wherever CUDA is present (marker `gpu`; conftest skips these elsewhere, saying why).

- Half precision gives the maps and people float32 gives.
- backend "auto" on a CUDA device picks what kdc_model.inference.backends says, for the reason it gives, and runs.
- A real GPU out-of-memory inside the node (the GPU filled by the test) costs that frame only: it is
  counted as `oom`, nothing is published for it, and once memory is back the next frame is answered.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from builtin_interfaces.msg import Time
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from image_samples import encode
from kdc_model import load_model
from kdc_model.inference import backends
from kdc_model.network.heads import activate
from kdc_model.training.synthetic import make_scene
from node_helpers import camera_publisher, listen, start_node

pytestmark = pytest.mark.gpu


def _people_image(seed: int = 0, height: int = 480, width: int = 640) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return make_scene(rng, height, width, 3, min_height=0.5 * height, max_height=0.9 * height,
                      allow_outside=False).image


def _maps(predictor, image: np.ndarray) -> dict[str, torch.Tensor]:
    """The activated network maps of one image, float32 on the host."""
    batch, _ = predictor.preprocess([image])
    with torch.inference_mode():
        return {k: v.float().cpu()[0] for k, v in activate(predictor.runner(batch)).items()}


def test_half_precision_agrees_with_float32():
    image = _people_image()
    full = load_model("default", device="cuda", backend="torch")
    half = load_model("default", device="cuda", backend="torch", half=True)
    assert half.half and half.dtype == torch.float16 and not full.half
    a, b = _maps(full, image), _maps(half, image)
    for key in ("heatmap", "seg"):  # probabilities
        assert float((a[key] - b[key]).abs().max()) < 0.05, key
    for key in ("short", "mid", "embed"):  # offsets, px: 99% within one pixel
        assert float((a[key] - b[key]).abs().flatten().quantile(0.99)) < 1.0, key
    found_full, found_half = full(image), half(image)
    confident_full = found_full.scores >= 0.2
    confident_half = found_half.scores >= 0.2
    assert abs(int(confident_full.sum()) - int(confident_half.sum())) <= 1
    for person in found_full.keypoints[confident_full]:  # each has a twin within a few pixels
        gaps = [np.median(np.linalg.norm(person[:, :2] - other[:, :2], axis=1)) for other in found_half.keypoints]
        assert min(gaps) < 4.0


def test_backend_auto_on_cuda_picks_by_the_rule_and_runs():
    expected, reason = backends.auto_backend("cuda")
    predictor = load_model("default", device="cuda", backend="auto")
    assert predictor.device.type == "cuda"
    assert (predictor.backend, predictor.backend_reason) == (expected, reason)
    reference = load_model("default", device="cuda", backend="torch")
    image = _people_image(seed=1)
    found, truth = predictor(image), reference(image)
    assert found.label_map.shape == image.shape[:2]
    assert abs(int((found.scores >= 0.2).sum()) - int((truth.scores >= 0.2).sum())) <= 1
    # Half precision is torch-only, so auto gives torch then, whatever is installed.
    assert load_model("default", device="cuda", backend="auto", half=True).backend == "torch"


def _fill_gpu(device: torch.device) -> list[torch.Tensor]:
    """Allocate the device's memory until the allocator refuses (1 GiB blocks, then 16 MiB ones)."""
    hog = []
    for block in (1 << 30, 1 << 24):
        while True:
            try:
                hog.append(torch.empty(block, dtype=torch.uint8, device=device))
            except torch.OutOfMemoryError:
                break
    return hog


def test_real_out_of_memory_costs_one_frame_and_the_node_recovers(namespace):
    from kdc_msgs.msg import PoseSeg

    predictor = load_model("default", device="cuda", backend="torch", input_size=640)
    image = _people_image(seed=2)
    predictor(image)  # warm: cuDNN picks its kernels while there is memory
    with start_node(predictor, namespace, reliability="reliable") as live:
        stats = live.node.cameras[0].stats
        frames_in = camera_publisher(live, Image)
        pose_segs = listen(live, "pose_seg", PoseSeg)
        hog = _fill_gpu(predictor.device)
        try:
            with pytest.raises(torch.OutOfMemoryError):  # the GPU really is full
                torch.empty(1 << 24, dtype=torch.uint8, device=predictor.device)
            frames_in.publish(encode(image, "rgb8", header=Header(stamp=Time(sec=1))))
            live.wait_for(lambda: stats.oom == 1, 30.0, "the out-of-memory frame was not counted")
        finally:
            del hog
            torch.cuda.empty_cache()
        frames_in.publish(encode(image, "rgb8", header=Header(stamp=Time(sec=2))))
        assert pose_segs.stamped(2, 0)[1].width == image.shape[1]
        assert stats.oom == stats.failed == 1 and stats.processed == 1
        assert "out of memory" in stats.last_problem.lower()
    assert not any(m.header.stamp.sec == 1 for m in pose_segs), "the failed frame was published"
