"""kdc_model.training.pseudo_labels: a teacher fills only the keypoints the real labels leave out, matched to the
right person; training reads the filled file and validation the real one."""
import json

import numpy as np
import pytest

from kdc_model.training.coco import AnnotationError
from kdc_model.training.data import SourceSpec, load_sources, record_keypoint_labelled
from kdc_model.training.pseudo_labels import MatchConfig, fill_annotations
from kdc_model.skeleton import NUM_KEYPOINTS

BODY = list(range(5, 17))


def _person(x0, y0, scale=1.0):
    """[17, 3] keypoints of a standing person whose top-left is (x0, y0), all visible."""
    rng = np.random.default_rng(int(x0))
    xy = np.stack([rng.uniform(0, 40, NUM_KEYPOINTS), np.linspace(0, 100, NUM_KEYPOINTS)], 1) * scale
    return np.concatenate([xy + [x0, y0], np.full((NUM_KEYPOINTS, 1), 2.0)], 1)


def _teacher(people, confs=None):
    kps, boxes = [], []
    for i, kp in enumerate(people):
        kp = kp.copy()
        kp[:, 2] = 0.9 if confs is None else confs[i]
        kps.append(kp.tolist())
        boxes.append([kp[:, 0].min(), kp[:, 1].min(), kp[:, 0].max(), kp[:, 1].max()])
    return {"keypoints": kps, "boxes": boxes, "scores": [0.9] * len(people)}


def _box(kp):
    return [float(kp[:, 0].min()), float(kp[:, 1].min()), float(np.ptp(kp[:, 0])), float(np.ptp(kp[:, 1]))]


def test_mask_only_person_gets_the_matching_teacher_person():
    a, b = _person(10, 10), _person(200, 20)
    data = {"images": [{"id": 1, "file_name": "a.png", "height": 300, "width": 300}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": _box(b), "area": 4000.0,
                             "keypoints": [0] * 51, "num_keypoints": 0}]}
    confs = [np.full(NUM_KEYPOINTS, 0.9), np.where(np.arange(NUM_KEYPOINTS) == 3, 0.2, 0.9)]
    filled, counts = fill_annotations(data, {1: _teacher([a, b], confs)}, np.ones(NUM_KEYPOINTS, bool))
    assert counts == {"people": 1, "filled": 1, "bystanders": 0}
    kp = np.asarray(filled["annotations"][0]["keypoints"]).reshape(-1, 3)
    visible = np.arange(NUM_KEYPOINTS) != 3
    np.testing.assert_allclose(kp[visible, :2], b[visible, :2], atol=0.01)  # b, not a
    assert (kp[3] == 0).all()                   # the teacher's unsure keypoint is "not visible"
    assert filled["annotations"][0]["num_keypoints"] == NUM_KEYPOINTS - 1
    assert filled["annotations"][0]["pseudo_keypoints"] == list(range(NUM_KEYPOINTS))
    assert data["annotations"][0]["keypoints"] == [0] * 51  # the input is left as it was


def test_only_channels_the_source_does_not_label_are_filled():
    real = _person(50, 50)
    label = real.copy()
    label[:5] = 0                              # LSPET: no face
    data = {"images": [{"id": 1, "file_name": "a.png", "height": 300, "width": 300}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0,
                             "keypoints": label.reshape(-1).tolist(), "num_keypoints": 12}]}
    teacher_kp = real.copy()
    teacher_kp[5:, :2] += 3.0                  # the teacher's body is a little off: real labels must win
    labelled = np.zeros(NUM_KEYPOINTS, bool)
    labelled[BODY] = True
    far = _person(250, 200)
    filled, counts = fill_annotations(data, {1: _teacher([far, teacher_kp])}, labelled)
    assert counts["filled"] == 1
    kp = np.asarray(filled["annotations"][0]["keypoints"]).reshape(-1, 3)
    np.testing.assert_allclose(kp[5:], label[5:], atol=0.01)
    np.testing.assert_allclose(kp[:5, :2], real[:5, :2], atol=0.01)
    assert filled["annotations"][0]["pseudo_keypoints"] == [0, 1, 2, 3, 4]


def test_no_match_no_fill_and_complete_people_untouched():
    a = _person(10, 10)
    data = {"images": [{"id": 1, "file_name": "a.png", "height": 300, "width": 300}],
            "annotations": [
                {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "bbox": _box(_person(220, 150)),
                 "keypoints": [0] * 51, "num_keypoints": 0},                      # nobody there
                {"id": 2, "image_id": 1, "category_id": 1, "iscrowd": 0,
                 "keypoints": a.reshape(-1).tolist(), "num_keypoints": 17}]}      # already complete
    weak = _teacher([_person(220, 150)])
    weak["scores"] = [0.1]                                                        # below min_teacher_score
    filled, counts = fill_annotations(data, {1: weak}, np.ones(NUM_KEYPOINTS, bool), MatchConfig())
    assert counts["filled"] == 0
    filled, counts = fill_annotations(data, {1: _teacher([a + [0, 0, 0]])}, np.ones(NUM_KEYPOINTS, bool))
    assert counts["filled"] == 0 and "pseudo_keypoints" not in filled["annotations"][1]


def test_training_reads_pseudo_file_validation_reads_real(tmp_path):
    (tmp_path / "images").mkdir()
    images = [{"id": i, "file_name": f"{i}.png", "height": 300, "width": 300} for i in (1, 2)]
    label = _person(50, 50)
    label[:5] = 0
    anns = [{"id": i, "image_id": i, "category_id": 1, "iscrowd": 0, "keypoints": label.reshape(-1).tolist(),
             "num_keypoints": 12} for i in (1, 2)]
    real = {"images": images, "annotations": anns}
    (tmp_path / "real.json").write_text(json.dumps(real))
    labelled = np.zeros(NUM_KEYPOINTS, bool)
    labelled[BODY] = True
    pseudo, _ = fill_annotations(real, {i: _teacher([_person(50, 50)]) for i in (1, 2)}, labelled)
    (tmp_path / "pseudo").mkdir()
    (tmp_path / "pseudo" / "s.json").write_text(json.dumps(pseudo))
    spec = SourceSpec(name="s", annotations="real.json", images="images", keypoints=BODY, pseudo_keypoints=True,
                      val={"file_names": ["2.png"]})
    train, val = load_sources([spec], tmp_path, tmp_path / "pseudo")
    [record] = train["s"]
    assert record.annotations[0]["pseudo_keypoints"] == [0, 1, 2, 3, 4]
    assert record_keypoint_labelled(record).all()              # the face is now taught for this image
    assert "pseudo_keypoints" not in val[0].annotations[0]     # AP is measured on real labels
    train, _ = load_sources([spec], tmp_path)                  # no pseudo folder: the real file
    assert "pseudo_keypoints" not in train["s"][0].annotations[0]
    assert not record_keypoint_labelled(train["s"][0])[:5].any()
    (tmp_path / "pseudo" / "s.json").write_text(json.dumps(dict(pseudo, images=images[:1])))
    with pytest.raises(AnnotationError, match="s.json"):
        load_sources([spec], tmp_path, tmp_path / "pseudo")


def _lspet_image(annotated, teacher_people, confs=None):
    label = annotated.copy()
    label[:5] = 0                              # LSPET: no face
    data = {"images": [{"id": 1, "file_name": "a.png", "height": 400, "width": 400}],
            "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "iscrowd": 0,
                             "keypoints": label.reshape(-1).tolist(), "num_keypoints": 12}]}
    source = np.zeros(NUM_KEYPOINTS, bool)
    source[BODY] = True
    return data, {1: _teacher(teacher_people, confs)}, source


def test_bystanders_of_a_one_person_source_become_pseudo_people():
    annotated, bystander = _person(20, 20), _person(250, 150)
    data, teacher, source = _lspet_image(annotated, [annotated + [1, 1, 0], bystander])
    filled, counts = fill_annotations(data, teacher, source, add_bystanders=True)
    assert counts == {"people": 1, "filled": 1, "bystanders": 1}
    added = filled["annotations"][1]
    assert added["pseudo_person"] and added["image_id"] == 1 and added["id"] == 8
    np.testing.assert_allclose(np.asarray(added["keypoints"]).reshape(-1, 3)[:, :2], bystander[:, :2], atol=0.01)
    assert "segmentation" not in added         # no mask: its pixels stay unknown to the segmentation loss
    # The annotated person's own teacher copy is not added a second time, and without the option nobody is.
    assert fill_annotations(data, teacher, source)[1]["bystanders"] == 0


def test_no_bystanders_where_the_annotated_person_went_unmatched():
    """A bystander's pseudo channels would mark the unmatched person's unlabelled face as known."""
    annotated, bystander = _person(20, 20), _person(250, 150)
    data, teacher, source = _lspet_image(annotated, [bystander])
    filled, counts = fill_annotations(data, teacher, source, add_bystanders=True)
    assert counts == {"people": 1, "filled": 0, "bystanders": 0}
    assert len(filled["annotations"]) == 1


def test_unsure_or_partial_teacher_people_are_not_added():
    annotated, bystander = _person(20, 20), _person(250, 150)
    few = np.where(np.arange(NUM_KEYPOINTS) < 4, 0.9, 0.1)   # 4 confident keypoints < bystander_keypoints
    data, teacher, source = _lspet_image(annotated, [annotated, bystander], [np.full(NUM_KEYPOINTS, 0.9), few])
    assert fill_annotations(data, teacher, source, add_bystanders=True)[1]["bystanders"] == 0
    teacher[1]["scores"] = [0.9, 0.4]          # whole, but below bystander_score
    teacher[1]["keypoints"][1] = [[x, y, 0.9] for x, y, _ in teacher[1]["keypoints"][1]]
    assert fill_annotations(data, teacher, source, add_bystanders=True)[1]["bystanders"] == 0
