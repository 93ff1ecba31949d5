"""The learned person score (DecoderConfig.score_weights): people re-ranked by a linear function of
their features with the label map renumbered to match, weights checked against the features, carried
by checkpoints; and the fitting's pieces (kdc_model.training.score_fit) on people whose truth is known."""
from __future__ import annotations

import numpy as np
import pytest

from kdc_model import DecoderConfig, KDCNet, ModelConfig, PoseSegResult, load_model, save_checkpoint
from kdc_model.inference.decode import PERSON_FEATURES, person_features, rescore
from kdc_model.training.coco import encode_mask
from kdc_model.training.score_fit import fit, person_quality

MASK_SCORE = PERSON_FEATURES.index("mask score")


def three_people() -> PoseSegResult:
    """Three people, each owning one block of a 30 x 40 label map, with mask scores 0.2, 0.9, 0.5."""
    label = np.zeros((30, 40), np.uint16)
    label[0:10, 0:10], label[10:20, 10:20], label[20:30, 20:30] = 1, 2, 3
    keypoints = np.zeros((3, 17, 3), np.float32)
    for i in range(3):
        keypoints[i, :, :2] = 10 * i + 5
        keypoints[i, :, 2] = 0.5
    boxes = np.array([[10 * i, 10 * i, 10 * i + 9, 10 * i + 9] for i in range(3)], np.float32)
    return PoseSegResult(keypoints=keypoints, scores=np.array([0.6, 0.5, 0.4], np.float32), boxes=boxes,
                         label_map=label, mask_scores=np.array([0.2, 0.9, 0.5], np.float32))


def test_rescoring_reorders_people_and_renumbers_their_pixels():
    result = three_people()
    weights = np.zeros(len(PERSON_FEATURES))
    weights[MASK_SCORE] = 1.0   # score = mask score: people 1, 2, 0 in that order
    ranked = rescore(result, weights)
    np.testing.assert_allclose(ranked.scores, [0.9, 0.5, 0.2])
    np.testing.assert_array_equal(ranked.boxes, result.boxes[[1, 2, 0]])
    for new, old in enumerate([1, 2, 0]):
        assert np.array_equal(ranked.label_map == new + 1, result.label_map == old + 1)
    weights[MASK_SCORE] = 3.0   # scores are clipped to [0, 1]
    assert rescore(result, weights).scores.max() == 1.0
    with pytest.raises(ValueError, match=f"a person has {len(PERSON_FEATURES)} features"):
        rescore(result, [1.0, 2.0])


def test_person_features_do_not_depend_on_the_image_scale():
    result = three_people()
    twice = PoseSegResult(keypoints=result.keypoints * np.array([2, 2, 1], np.float32), scores=result.scores,
                          boxes=result.boxes * 2 + np.array([0, 0, 1, 1], np.float32),
                          label_map=np.kron(result.label_map, np.ones((2, 2), np.uint16)), mask_scores=result.mask_scores)
    np.testing.assert_allclose(person_features(twice), person_features(result), atol=1e-6)


def test_score_weights_are_carried_by_checkpoints_and_used(tmp_path):
    config = ModelConfig(input_size=64, neck_channels=16, head_channels=16,
                         decoder=DecoderConfig(score_weights=tuple(np.arange(len(PERSON_FEATURES)) / 100)))
    path = tmp_path / "scored.safetensors"
    save_checkpoint(path, KDCNet(config), config)
    assert load_model(path).decoder.score_weights == config.decoder.score_weights
    assert DecoderConfig.from_dict(config.decoder.to_dict()) == config.decoder


def test_person_quality_is_oks_and_mask_iou_with_the_true_person():
    truth_keypoints = np.zeros((17, 3))
    truth_keypoints[:, 0], truth_keypoints[:, 1], truth_keypoints[:, 2] = np.arange(17) + 5, 10, 2
    mask = np.zeros((30, 40), bool)
    mask[5:15, 5:25] = True
    ann = {"keypoints": truth_keypoints.reshape(-1).tolist(), "num_keypoints": 17, "area": 200.0,
           "segmentation": encode_mask(mask), "iscrowd": 0}
    label = mask.astype(np.uint16)
    label[25:30, 30:40] = 2
    keypoints = np.zeros((2, 17, 3), np.float32)
    keypoints[0] = truth_keypoints
    keypoints[1, :, :2] = (35, 27)
    result = PoseSegResult(keypoints=keypoints, scores=np.array([0.5, 0.4], np.float32),
                           boxes=np.array([[5, 5, 24, 14], [30, 25, 39, 29]], np.float32), label_map=label,
                           mask_scores=np.array([0.9, 0.9], np.float32))
    np.testing.assert_allclose(person_quality(result, [ann], 30, 40), [1.0, 0.0], atol=1e-6)


def test_fit_recovers_a_linear_quality():
    rng = np.random.default_rng(0)
    features = np.column_stack([np.ones(200), rng.random((200, 3))])
    truth = np.array([0.1, 0.5, -0.2, 0.3])
    np.testing.assert_allclose(fit(features, features @ truth, ridge=1e-9), truth, atol=1e-6)
