"""The README's node tables and config/kdc.yaml agree with what the node declares (the launch file:
test_launch_file.py)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from fixed_predictor import FixedPredictor
from kdc_ros.node import params
from kdc_ros.harness import NodeHarness

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "README.md").read_text()


def table_rows(header: str) -> list[list[str]]:
    """Cells of the markdown table whose header row starts with `| {header} |`."""
    lines = DOC.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {header} |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows


def untick(cell: str) -> str:
    return cell.strip("`")


@pytest.fixture(scope="module")
def node():
    # The documented names: no namespace. Depth on, so the depth subscriptions and ~/markers_3d exist.
    depth = {"depth_topic": "/camera/aligned_depth_to_color/image_raw",
             "camera_info_topic": "/camera/aligned_depth_to_color/camera_info"}
    with NodeHarness(FixedPredictor(), parameters=depth) as harness:
        yield harness.node


def test_parameter_table_matches_declared_parameters(node):
    rows = {untick(r[0]): r for r in table_rows("Parameter")}
    declared = set(node.get_parameters_by_prefix("")) - {"use_sim_time", "start_type_description_service"}
    assert set(rows) == declared == set(params.SPECS)
    defaults = params.load_defaults()
    for name, (_, _, default, allowed, dynamic, description) in rows.items():
        descriptor = node.describe_parameter(name)
        assert description in descriptor.description, name
        assert (dynamic == "yes") == (not descriptor.read_only), name
        shown = untick(default)
        value = defaults[name]
        assert shown == ("[]" if value == [] else str(value).lower() if isinstance(value, bool) else str(value)), name
        for bounds in (descriptor.floating_point_range, descriptor.integer_range):
            if bounds:
                assert allowed == f"[{bounds[0].from_value}, {bounds[0].to_value}]", name
    assert "\n".join("| " + " | ".join(r) + " |" for r in table_rows("Parameter")) in params.markdown_table()


def test_topic_table_matches_the_node(node):
    rows = table_rows("Topic")
    documented = {(untick(r[0]).replace("~", "/kdc"), r[1], r[2]) for r in rows}
    expected = set()
    for publisher in node.publishers:
        if publisher.topic_name in ("/rosout", "/parameter_events"):
            continue
        msg = publisher.msg_type
        expected.add((publisher.topic_name, "published", f"{msg.__module__.split('.')[0]}/{msg.__name__}"))
    for subscription in node.subscriptions:
        if subscription.topic_name == "/parameter_events":
            continue
        msg = subscription.msg_type
        expected.add((subscription.topic_name, "subscribed", f"{msg.__module__.split('.')[0]}/{msg.__name__}"))
    if node.vision_msgs is None:
        documented.discard(("/kdc/detections", "published", "vision_msgs/Detection2DArray"))
    documented.discard(("/camera/image_raw/compressed", "subscribed", "sensor_msgs/CompressedImage"))
    services = {s.srv_name for s in node.services}
    if "/kdc/enable" in services:
        expected.add(("/kdc/enable", "service", "std_srvs/SetBool"))
    else:
        documented.discard(("/kdc/enable", "service", "std_srvs/SetBool"))
    assert documented == expected
    # QoS column of the outputs says what the publishers use.
    for publisher in node.publishers:
        row = next((r for r in rows if untick(r[0]).replace("~", "/kdc") == publisher.topic_name), None)
        if row is not None:
            qos = publisher.qos_profile
            assert row[3] == f"{qos.reliability.name.lower()}, keep last {qos.depth}", publisher.topic_name


def test_yaml_is_the_single_source_of_defaults(tmp_path):
    defaults = params.load_defaults()
    assert set(defaults) == set(params.SPECS)
    text = (ROOT / "config" / "kdc.yaml").read_text()
    for name in params.SPECS:
        assert re.search(rf"^    # .*\n    {name}:", text, re.M), f"{name} has no comment in kdc.yaml"
    drifted = tmp_path / "kdc.yaml"
    drifted.write_text(text.replace("    half: false", "    half: false\n    halve: true"))
    with pytest.raises(ValueError, match="unknown \\['halve'\\]"):
        params.load_defaults(drifted)
    drifted.write_text(re.sub(r"(?m)^    min_person_score: .*$", "    min_person_score: 2.0", text))
    with pytest.raises(ValueError, match="outside"):
        params.load_defaults(drifted)
    drifted.write_text(text.replace("    compressed: false", "    compressed: 3"))
    with pytest.raises(ValueError, match="should be a bool"):
        params.load_defaults(drifted)


def test_missing_checkpoint_stops_startup_with_one_clear_error(tmp_path):
    missing = tmp_path / "nowhere.safetensors"
    result = subprocess.run([sys.executable, "-m", "kdc_ros.node", "--ros-args", "-p", f"model:={missing}",
                             "-p", "device:=cpu"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert str(missing) in output and "Traceback" not in output
