"""Predictor: any image size in, results in that image's own pixels out; batch == single; bad input refused.

A LookupNetwork stands in for a perfectly trained KDCNet: for a known (letterboxed) input it returns
the encoded targets of that image's people, so the test sees the real preprocessing, decoder and
un-letterboxing recover known people.
"""
import numpy as np
import pytest
import torch

from kdc_model import CheckpointError, KDCNet, NamedWeights, Predictor, load_model, save_checkpoint
from kdc_model.network.heads import HEAD_CHANNELS, LOGIT_HEADS
from kdc_model.training.targets import encode_targets
from perfect_maps import SIDE, SMALL, LookupNetwork, people_scene, to_network_input


def _perfect_predictor(scenes):
    """A Predictor whose network answers each scene's image with that scene's encoded targets."""
    network = LookupNetwork(SMALL)
    predictor = Predictor(network, device="cpu")
    assert predictor.input_side == SIDE
    for scene in scenes:
        batch, (box,) = predictor.preprocess([scene.image])
        input_size = tuple(batch.shape[-2:])  # the letterbox: longer side SIDE, each side a multiple of 32
        keypoints, masks, ignore = to_network_input(scene, box, input_size)
        targets = encode_targets(keypoints, masks, ignore, image_size=input_size,
                                 stride=SMALL.output_stride, radius=SMALL.radius)
        raw = {k: torch.as_tensor(targets[k], dtype=torch.float32) for k in HEAD_CHANNELS}
        for k in LOGIT_HEADS:
            raw[k] = (raw[k] * 2 - 1) * 12.0  # probabilities 0/1 -> confident logits
        network.add(batch[0], raw)
    return predictor


def _match(result, scene):
    """For each true person, the index of the found person with the nearest keypoints."""
    labelled = scene.keypoints[..., 2] > 0
    matches = []
    for j, truth in enumerate(scene.keypoints):
        errors = [np.linalg.norm(found[:, :2] - truth[:, :2], axis=1)[labelled[j]].mean() for found in result.keypoints]
        matches.append(int(np.argmin(errors)))
    return matches


@pytest.mark.parametrize("height,width", [(240, 320), (300, 150), (160, 160)])
def test_people_come_back_in_original_pixels(height, width):
    scene = people_scene(height + width, height, width)
    result = _perfect_predictor([scene])(scene.image)
    assert result.label_map.shape == (height, width) and result.label_map.dtype == np.uint16
    assert len(result) == len(scene.keypoints)
    pixels_per_input_pixel = max(height, width) / SIDE
    masks = result.masks()
    for j, i in enumerate(_match(result, scene)):
        labelled = scene.keypoints[j, :, 2] > 0
        error = np.linalg.norm(result.keypoints[i, labelled, :2] - scene.keypoints[j, labelled, :2], axis=1)
        assert np.median(error) < 3 * pixels_per_input_pixel, error
        iou = (masks[i] & scene.masks[j]).sum() / (masks[i] | scene.masks[j]).sum()
        assert iou > 0.6, iou  # thin limbs at stride 4 cost the decoder some IoU even on perfect maps
        x0, y0, x1, y1 = result.boxes[i]
        ys, xs = np.nonzero(scene.masks[j])
        assert x0 <= xs.mean() <= x1 and y0 <= ys.mean() <= y1


def test_batch_equals_single():
    scenes = [people_scene(1, 200, 120), people_scene(2, 90, 250), people_scene(3, 160, 160, people=3)]
    predictor = _perfect_predictor(scenes)
    images = [s.image for s in scenes]
    batch = predictor.predict_batch(images)
    for image, together in zip(images, batch):
        alone = predictor(image)
        assert len(alone) == len(together)
        np.testing.assert_allclose(alone.keypoints, together.keypoints, atol=1e-4)
        np.testing.assert_array_equal(alone.label_map, together.label_map)


@pytest.mark.parametrize("height,width", [(1, 1), (7, 300), (321, 97), (480, 640)])
def test_any_image_size_with_a_real_network(height, width):
    predictor = load_model(SMALL, device="cpu")
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    result = predictor(image)
    assert result.label_map.shape == (height, width)
    assert result.keypoints.shape == (len(result), 17, 3)
    assert set(predictor.last_timing) == {"preprocess_ms", "network_ms", "decode_ms", "total_ms"}
    assert all(t >= 0 for t in predictor.last_timing.values())


def test_real_network_batch_input_equals_single_inputs():
    predictor = load_model(SMALL, device="cpu")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in [(50, 80, 3), (120, 33, 3)]]
    batch, _ = predictor.preprocess(images)
    for i, image in enumerate(images):
        single, _ = predictor.preprocess([image])
        h, w = single.shape[-2:]   # the batch holds both letterboxes: each image's own, then padding
        torch.testing.assert_close(batch[i, :, :h, :w], single[0])
        assert not batch[i, :, h:].any() and not batch[i, :, :, w:].any()
    assert predictor.input_shape(images[:1]) == (128, 160) and predictor.input_shape(images[1:]) == (160, 64)
    together = predictor.predict_batch(images)
    for image, result in zip(images, together):
        np.testing.assert_array_equal(predictor(image).label_map, result.label_map)


@pytest.mark.parametrize("bad,reason", [
    (np.zeros((10, 10, 3), np.float32), "uint8"),
    (np.zeros((10, 10), np.uint8), "H x W x 3"),
    (np.zeros((10, 10, 4), np.uint8), "H x W x 3"),
    (np.zeros((0, 10, 3), np.uint8), "empty"),
    ([[0, 0, 0]], "numpy array"),
])
def test_bad_inputs_raise_value_error(bad, reason):
    predictor = load_model(SMALL, device="cpu")
    with pytest.raises(ValueError, match=reason):
        predictor(bad)
    with pytest.raises(ValueError, match=reason):
        predictor.predict_batch([np.zeros((8, 8, 3), np.uint8), bad])


def test_checkpoint_path_loads(tmp_path):
    path = tmp_path / "small.safetensors"
    save_checkpoint(path, KDCNet(SMALL), SMALL)
    predictor = load_model(path, device="cpu")
    assert predictor.config == SMALL


def test_named_weights_that_are_not_installed_say_so(tmp_path):
    absent = NamedWeights("default", tmp_path / "kdc_default.safetensors", "not installed here")
    assert not absent.installed
    with pytest.raises(CheckpointError, match="default KDC weights are not installed"):
        load_model(absent)


def test_absent_gpu_falls_back_to_cpu_or_raises_when_strict():
    absent = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU: absent on every machine
    with pytest.warns(RuntimeWarning, match=f"device {absent} is not available"):
        predictor = load_model(SMALL, device=absent)
    assert predictor.device.type == "cpu"
    with pytest.raises(RuntimeError, match="not available"):
        load_model(SMALL, device=absent, strict_device=True)
    with pytest.warns(RuntimeWarning, match="half precision needs CUDA"):
        assert not load_model(SMALL, device="cpu", half=True).half
