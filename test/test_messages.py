"""kdc_msgs on real rclpy: a PoseSeg with two people survives a publish/subscribe round trip."""
import numpy as np
from builtin_interfaces.msg import Time
from kdc_msgs.msg import Keypoint, Keypoint3D, Person, PoseSeg
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from kdc_ros.harness import NodeHarness


def make_pose_seg() -> PoseSeg:
    rng = np.random.default_rng(3)
    height, width = 48, 64
    labels = np.zeros((height, width), np.uint16)
    labels[5:20, 4:30] = 1
    labels[22:40, 35:60] = 2
    people = []
    for i in range(2):
        person = Person(id=7 + i, score=0.9 - 0.3 * i, x_min=4.0 + 31 * i, y_min=5.0 + 17 * i,
                        x_max=30.0 + 30 * i, y_max=20.0 + 20 * i, mask_score=0.8 - 0.1 * i,
                        mask_area=int((labels == i + 1).sum()))
        person.keypoints = [Keypoint(x=float(x), y=float(y), confidence=float(c))
                            for x, y, c in rng.uniform(0, 1, (Person.NUM_KEYPOINTS, 3)) * [width, height, 1]]
        person.keypoints_3d = [Keypoint3D(x=float(x), y=float(y), z=float(z), valid=bool(z > 2))
                               for x, y, z in rng.uniform(0, 4, (Person.NUM_KEYPOINTS, 3))]
        people.append(person)
    mask = Image(header=Header(stamp=Time(sec=12, nanosec=345), frame_id="camera_optical"),
                 height=height, width=width, encoding="mono16", is_bigendian=0, step=2 * width,
                 data=labels.tobytes())
    return PoseSeg(header=Header(stamp=Time(sec=12, nanosec=345), frame_id="camera_optical"),
                   height=height, width=width, people=people, mask=mask)


def keypoint_fields(person: Person):
    return [(k.x, k.y, k.confidence) for k in person.keypoints]


def test_pose_seg_round_trip_keeps_every_field(namespace):
    sent = make_pose_seg()
    with NodeHarness(namespace=namespace, running=True) as ros:  # no kdc node: messages only
        publisher = ros.publisher("pose_seg", PoseSeg)
        received = ros.record("pose_seg", PoseSeg)
        ros.connected([publisher], ["pose_seg"])
        publisher.publish(sent)
        ros.wait_for(lambda: received, what="the PoseSeg")
    got = received[0]
    assert got.header == sent.header
    assert (got.height, got.width) == (sent.height, sent.width)
    assert len(got.people) == 2
    for a, b in zip(got.people, sent.people):
        assert (a.id, a.mask_area) == (b.id, b.mask_area)
        np.testing.assert_allclose([a.score, a.x_min, a.y_min, a.x_max, a.y_max, a.mask_score],
                                   [b.score, b.x_min, b.y_min, b.x_max, b.y_max, b.mask_score], rtol=1e-6)
        np.testing.assert_allclose(keypoint_fields(a), keypoint_fields(b), rtol=1e-6)
        np.testing.assert_allclose([(k.x, k.y, k.z) for k in a.keypoints_3d],
                                   [(k.x, k.y, k.z) for k in b.keypoints_3d], rtol=1e-6)
        assert [k.valid for k in a.keypoints_3d] == [k.valid for k in b.keypoints_3d]
    assert got.mask == sent.mask
    labels = np.frombuffer(bytes(got.mask.data), np.uint16).reshape(got.height, got.width)
    assert [(labels == i + 1).sum() for i in range(2)] == [p.mask_area for p in sent.people]


def test_person_constants_follow_coco_order():
    from kdc_model.skeleton import KEYPOINT_NAMES
    for index, name in enumerate(KEYPOINT_NAMES):
        assert getattr(Person, name.upper()) == index
    assert len(Person().keypoints) == Person.NUM_KEYPOINTS == len(KEYPOINT_NAMES)
