"""kdc_model.training.data / augment / copy_paste: COCO reading (polygons, RLE, crowds), the flip, seeds,
copy-paste, one-person and mask-less sources, validation splits."""
import json

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from kdc_model.training.augment import AugmentConfig, PeopleSample, flip_sample
from kdc_model.training.coco import AnnotationError, decode_segmentation, image_people, load_annotations
from kdc_model import ModelConfig
from kdc_model.training.copy_paste import cut_donor, paste_donor
from kdc_model.training.data import SourceSpec, TrainingStream, load_sources, make_train_loader, record_sample, \
    sample_targets, validation_coco
from kdc_model.skeleton import FLIP_INDEX, KEYPOINT_NAMES, NUM_KEYPOINTS
from synthetic_coco import mask_polygons, write_dataset

CONFIG = ModelConfig(input_size=128)
LEFT = [i for i, n in enumerate(KEYPOINT_NAMES) if n.startswith("left_")]
RIGHT = [i for i, n in enumerate(KEYPOINT_NAMES) if n.startswith("right_")]


def _iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("coco")
    scenes, images, annotations = write_dataset(folder, count=4, crowd_probability=1.0, empty_images=1)
    return folder, scenes, images, annotations


def _stream(folder, annotations, **augment):
    spec = SourceSpec(name="synthetic", annotations=annotations.name, images="images")
    train, _ = load_sources([spec], folder)
    return TrainingStream(train, {"synthetic": 1.0}, CONFIG, 128, AugmentConfig(**augment), seed=7, epoch_size=10)


def test_rle_masks_and_crowd_ignore_decode_exactly(dataset):
    _, scenes, _, annotations = dataset
    data = load_annotations(annotations)
    for image in data["images"][:4]:
        scene = scenes[image["id"] - 1]
        anns = [a for a in data["annotations"] if a["image_id"] == image["id"]]
        keypoints, masks, has_mask, ignore = image_people(anns, 128, 128)
        np.testing.assert_array_equal(masks, scene.masks)
        np.testing.assert_array_equal(keypoints, scene.keypoints)
        np.testing.assert_array_equal(ignore, scene.ignore)  # iscrowd annotations become the ignore region
        assert has_mask.all()
    assert any(s.ignore.any() for s in scenes[:4])


def test_polygons_and_uncompressed_rle_decode(dataset):
    _, scenes, _, _ = dataset
    mask = scenes[0].masks[0]
    from_polygons = decode_segmentation(mask_polygons(mask), 128, 128)
    assert _iou(from_polygons, mask) > 0.85  # polygons trace pixel outlines: borders differ slightly
    counts = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    # Uncompressed RLE (a counts list), as COCO stores crowds.
    flat = mask.flatten(order="F").astype(np.uint8)
    runs, current, length = [], 0, 0
    for value in flat:
        if value == current:
            length += 1
        else:
            runs.append(length)
            current, length = value, 1
    runs.append(length)
    np.testing.assert_array_equal(decode_segmentation({"counts": runs, "size": [128, 128]}, 128, 128), mask)
    assert mask_utils.area(counts) == mask.sum()


def test_crowd_region_is_not_taught(dataset):
    folder, scenes, _, annotations = dataset
    stream = _stream(folder, annotations, enabled=False)
    record = next(r for r in stream.records["synthetic"] if record_sample(r).ignore.any())
    sample = record_sample(record)
    targets = sample_targets(sample, CONFIG)
    s = CONFIG.output_stride
    cells = sample.ignore.reshape(128 // s, s, 128 // s, s).any(axis=(1, 3))
    assert (targets["heatmap_weight"][:, torch.from_numpy(cells)] == 0).all()
    assert (targets["seg_weight"][0][torch.from_numpy(cells)] == 0).all()


def test_flip_swaps_left_and_right():
    rng = np.random.default_rng(0)
    keypoints = np.zeros((1, NUM_KEYPOINTS, 3), np.float32)
    keypoints[0, :, 0] = rng.uniform(10, 90, NUM_KEYPOINTS)
    keypoints[0, :, 1] = rng.uniform(10, 90, NUM_KEYPOINTS)
    keypoints[0, :, 2] = 2
    keypoints[0, 3] = 0  # left_ear unlabelled
    labelled = np.ones(NUM_KEYPOINTS, bool)
    labelled[3] = False
    image = rng.integers(0, 255, (100, 120, 3), dtype=np.uint8)
    mask = np.zeros((1, 100, 120), bool)
    mask[0, 20:60, 10:30] = True
    flipped = flip_sample(PeopleSample(image, keypoints, mask, np.ones(1, bool), np.zeros((100, 120), bool), labelled))
    for left, right in zip(LEFT, RIGHT):
        if left == 3:
            continue
        # The old left keypoint, mirrored, is the new right one.
        np.testing.assert_allclose(flipped.keypoints[0, right, 0], 119 - keypoints[0, left, 0])
        np.testing.assert_allclose(flipped.keypoints[0, right, 1], keypoints[0, left, 1])
    assert flipped.keypoints[0, 4, 2] == 0 and flipped.keypoints[0, 3, 2] == 2  # unlabelled ear moved sides
    assert not flipped.keypoint_labelled[4] and flipped.keypoint_labelled[3]
    np.testing.assert_array_equal(flipped.image, image[:, ::-1])
    assert flipped.masks[0, 20:60, 90:110].all() and flipped.masks.sum() == mask.sum()


def test_samples_are_a_function_of_seed_and_index(dataset):
    folder, _, _, annotations = dataset
    a, b = _stream(folder, annotations), _stream(folder, annotations)
    for i in (0, 3, 25):  # 25: another epoch
        first, second = a.sample(i), b.sample(i)
        np.testing.assert_array_equal(first.image, second.image)
        np.testing.assert_array_equal(first.keypoints, second.keypoints)
        np.testing.assert_array_equal(first.masks, second.masks)
    assert not np.array_equal(a.sample(0).image, a.sample(1).image)
    # A worker process draws the very same batch as the main process.
    loader = make_train_loader(a, batch_size=2, start_step=1, end_step=2, num_workers=1)
    images, targets = next(iter(loader))
    expected = torch.stack([a[2][0], a[3][0]])
    torch.testing.assert_close(images, expected, rtol=0, atol=0)
    assert targets["heatmap"].shape == (2, NUM_KEYPOINTS, 16, 16)


def test_copy_paste_carries_keypoints_and_occludes(dataset):
    _, scenes, _, _ = dataset
    donor_scene, base_scene = scenes[0], scenes[1]
    donor = cut_donor(donor_scene.image, donor_scene.masks[0], donor_scene.keypoints[0], np.ones(NUM_KEYPOINTS, bool))
    base = PeopleSample(base_scene.image, base_scene.keypoints, base_scene.masks, np.ones(2, bool),
                        base_scene.ignore, np.ones(NUM_KEYPOINTS, bool))
    cfg = AugmentConfig(paste_height=(0.5, 0.5))
    pasted = paste_donor(np.random.default_rng(3), base, donor, cfg)
    assert len(pasted.keypoints) == 3
    new_mask, new_kp = pasted.masks[2], pasted.keypoints[2]
    # The pasted keypoints sit on the pasted body as they sat on the donor's.
    visible = new_kp[:, 2] > 0
    # Distances between joints grow by the paste scale (half the crop over the donor's height);
    # a flipped paste has its left/right slots swapped.
    spread = lambda kp: np.linalg.norm(kp[:, None, :2] - kp[None, :, :2], axis=-1)
    ratios = []
    for order in (list(range(NUM_KEYPOINTS)), list(FLIP_INDEX)):
        before, after = spread(donor.keypoints[order]), spread(new_kp)
        far = before > 5
        ratios.append(after[far] / before[far])
    expected = 64 / donor.mask.shape[0]
    assert any(np.allclose(r, expected, rtol=0.03) for r in ratios)
    inside = (new_kp[:, 0] >= 0) & (new_kp[:, 0] < 128) & (new_kp[:, 1] >= 0) & (new_kp[:, 1] < 128) & visible
    assert inside.sum() >= 5
    on_body = new_mask[np.round(new_kp[inside, 1]).astype(int), np.round(new_kp[inside, 0]).astype(int)]
    assert on_body.mean() > 0.6  # joints on limb centre lines; a few land a pixel off after resizing
    # People beneath lose the covered pixels; nobody shares a pixel.
    assert (pasted.masks.sum(axis=0) <= 1).all()
    assert not (pasted.masks[:2] & new_mask).any()
    # The stream pastes people too: sample with copy-paste always on carries more people than its image.
    folder = dataset[0]
    stream = _stream(folder, dataset[3], copy_paste_prob=1.0, copy_paste_max=2, scale_range=(1.0, 1.0))
    counts = [len(stream.sample(i).keypoints) for i in range(6)]
    assert max(counts) > 2


def test_one_person_source_ignores_everything_but_the_person(dataset, tmp_path):
    folder, scenes, _, annotations = dataset
    data = json.loads(annotations.read_text())
    # LSPET-like: keep one person per image, keypoints only, no masks.
    keep, seen = [], set()
    for ann in data["annotations"]:
        if not ann["iscrowd"] and ann["image_id"] not in seen:
            seen.add(ann["image_id"])
            keep.append({k: v for k, v in ann.items() if k != "segmentation"})
    (tmp_path / "one.json").write_text(json.dumps(dict(data, annotations=keep)))
    spec = SourceSpec(name="one", annotations=str(tmp_path / "one.json"), images=str(folder / "images"),
                      masks=False, one_person=True, keypoints=list(range(5, 17)))
    train, _ = load_sources([spec], "/")
    stream = TrainingStream(train, {"one": 1.0}, CONFIG, 128, AugmentConfig(copy_paste_prob=0.0), seed=0)
    sample = record_sample(train["one"][0])
    person = scenes[0].keypoints[0]
    xs, ys = person[person[:, 2] > 0, 0], person[person[:, 2] > 0, 1]
    assert not sample.ignore[int(ys.mean()), int(xs.mean())]
    assert sample.ignore.any()  # the corners, far from the one person, are not taught
    targets = sample_targets(stream.sample(0), CONFIG)
    assert (targets["heatmap_weight"][:5] == 0).all()        # the source has no face keypoints
    assert targets["heatmap_weight"][5:].sum() > 0
    assert targets["seg_weight"].sum() < targets["seg_weight"].numel()  # no masks: seg unknown near the person


def test_validation_split_by_file_and_frame(dataset, tmp_path):
    folder, _, _, annotations = dataset
    spec = SourceSpec(name="s", annotations=annotations.name, images="images", val={"file_names": ["scene_001.png"]})
    train, val = load_sources([spec], folder)
    assert [r.info["file_name"] for r in val] == ["scene_001.png"]
    assert "scene_001.png" not in {r.info["file_name"] for r in train["s"]}
    coco, paths = validation_coco(val + val)  # two sources with colliding ids get fresh ones
    assert [i["id"] for i in coco["images"]] == [1, 2] and paths[2].name == "scene_001.png"
    # Copies of one source frame (Roboflow extra.name, '-_' prefixes stripped) stay on one side.
    data = json.loads(annotations.read_text())
    for image in data["images"]:
        image["extra"] = {"name": ("-_-_" if image["id"] % 2 else "-_") + f"frame{image['id'] // 2}.jpg"}
    (tmp_path / "frames.json").write_text(json.dumps(data))
    spec = SourceSpec(name="f", annotations=str(tmp_path / "frames.json"), images=str(folder / "images"),
                      val={"frames": ["frame1.jpg"]})
    train, val = load_sources([spec], "/")
    assert sorted(r.info["id"] for r in val) == [2, 3]
    bad = SourceSpec(name="b", annotations=annotations.name, images="images", val={"file_names": ["nope.png"]})
    with pytest.raises(AnnotationError, match="nope.png"):
        load_sources([bad], folder)


def test_malformed_annotation_file_is_named(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"images": [')
    with pytest.raises(AnnotationError, match="broken.json"):
        load_annotations(path)
    path.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png", "height": 4, "width": 4}],
                                "annotations": [{"image_id": 2}]}))
    with pytest.raises(AnnotationError, match="broken.json.*unknown image_id"):
        load_annotations(path)
