"""The node as users run it: `kdc_node --ros-args --params-file FILE -r __ns:=NS` in its own process
answers a camera frame published from this process over DDS, and stops with exit status 0 on Ctrl-C
(SIGINT), without a traceback."""
from __future__ import annotations

import shutil
import signal
import subprocess

import numpy as np
import pytest
import torch
import yaml
from builtin_interfaces.msg import Time
from kdc_msgs.msg import PoseSeg
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from image_samples import encode, gradient_rgb
from kdc_model import KDCNet, ModelConfig, save_checkpoint
from kdc_ros.node import params
from kdc_ros.harness import NodeHarness

STARTUP_S = 120.0  # importing torch and building the model, on a loaded 2-core machine


@pytest.fixture
def params_file(tmp_path):
    """config/kdc.yaml with a small random-init checkpoint on the CPU, the camera under the namespace."""
    torch.manual_seed(0)
    config = ModelConfig(input_size=64, neck_channels=16, head_channels=16)
    checkpoint = tmp_path / "small.safetensors"
    save_checkpoint(checkpoint, KDCNet(config), config)
    document = yaml.safe_load(params.default_parameters_file().read_text())
    values = document["/**/kdc"]["ros__parameters"]
    values.update(model=str(checkpoint), device="cpu", backend="torch", threads=1,
                  image_topic="camera/image_raw", min_person_score=0.0)  # relative: under the namespace
    path = tmp_path / "robot_kdc.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_kdc_node_process_answers_over_dds_and_exits_0_on_sigint(params_file, namespace):
    executable = shutil.which("kdc_node")
    assert executable, "kdc_node is not an installed command (pip install -e . / colcon build)"
    robot = f"{namespace}/robot"
    node = subprocess.Popen([executable, "--ros-args", "--params-file", str(params_file), "-r", f"__ns:={robot}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with NodeHarness(namespace=robot, running=True, driver_name="camera_driver") as driver:
            answers = driver.record(driver.output("pose_seg"), PoseSeg)
            camera = driver.publisher("camera/image_raw", Image)
            frame = encode(gradient_rgb(48, 64), "rgb8", header=Header(stamp=Time(sec=7, nanosec=5),
                                                                       frame_id="camera_optical"))
            # Again until answered (the node's input is best effort), while the process lives.
            driver.send_until(camera, frame, lambda: bool(answers) or node.poll() is not None, timeout=STARTUP_S)
            assert answers, f"no PoseSeg from the node process (exit status {node.poll()}): " + _output(node)
        answer = answers[0]
        assert answer.header == frame.header and (answer.height, answer.width) == (48, 64)
        assert np.frombuffer(bytes(answer.mask.data), np.uint16).size == 48 * 64
    finally:
        if node.poll() is None:
            node.send_signal(signal.SIGINT)
        try:
            status = node.wait(timeout=30)
        except subprocess.TimeoutExpired:
            node.kill()
            raise
    output = _output(node)
    assert status == 0, output
    assert "Traceback" not in output, output


def _output(process: subprocess.Popen) -> str:
    if process.poll() is None:
        return "(still running)"
    out, err = process.communicate()
    return (out + err)[-3000:]
