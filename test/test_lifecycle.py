"""The lifecycle variant of the node: idle until configured; configure loads the model (a bad one
fails the transition with one logged line), activate subscribes and answers frames, deactivate stops
answering with the model still loaded, cleanup frees the model; it can be configured again. As a
robot stack runs it: `kdc_lifecycle_node` in its own process, driven by lifecycle_msgs services."""
from __future__ import annotations

import shutil
import signal
import subprocess

import pytest
import yaml
from kdc_msgs.msg import PoseSeg
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.lifecycle import TransitionCallbackReturn
from sensor_msgs.msg import Image

from image_samples import encode, gradient_rgb
from kdc_ros.harness import NodeHarness
from kdc_ros.node import params
from node_helpers import CAMERA, log_lines, node_log, stamped

SUCCESS = TransitionCallbackReturn.SUCCESS


def model_parameters(model) -> dict:
    return {"model": str(model), "device": "cpu", "backend": "torch", "image_topic": CAMERA,
            "reliability": "reliable", "min_person_score": 0.0}


def answered(harness, camera, answers, seconds: int, timeout: float = 10.0) -> bool:
    frame = encode(gradient_rgb(24, 32), "rgb8", header=stamped(seconds))
    return harness.send_until(camera, frame, lambda: any(m.header == frame.header for m in answers), timeout)


def test_configure_loads_activate_subscribes_deactivate_stops_cleanup_frees(small_checkpoint, namespace):
    with NodeHarness(namespace=namespace, lifecycle=True, parameters=model_parameters(small_checkpoint)) as harness:
        node = harness.node
        camera = harness.publisher(CAMERA, Image)
        answers = harness.record(harness.output("pose_seg"), PoseSeg)
        assert node.predictor is None and camera.get_subscription_count() == 0, "idle before configure"

        assert node.trigger_configure() == SUCCESS
        assert node.predictor is not None and node.predictor.input_side == 64
        harness.wait_for(lambda: node.count_publishers(harness.output("pose_seg")) == 1, what="publishers made")
        assert camera.get_subscription_count() == 0, "configure must not subscribe"

        assert node.trigger_activate() == SUCCESS
        harness.connected([camera], [harness.output("pose_seg")], settle=0.0)
        assert answered(harness, camera, answers, 1)

        assert node.trigger_deactivate() == SUCCESS
        harness.wait_for(lambda: camera.get_subscription_count() == 0, what="the camera unsubscribed")
        assert not answered(harness, camera, answers, 2, timeout=1.5), "answered while inactive"
        assert node.predictor is not None, "deactivate keeps the model"

        assert node.trigger_cleanup() == SUCCESS
        assert node.predictor is None
        harness.wait_for(lambda: node.count_publishers(harness.output("pose_seg")) == 0, what="publishers gone")

        assert node.trigger_configure() == SUCCESS and node.trigger_activate() == SUCCESS
        harness.connected([camera], [harness.output("pose_seg")], settle=0.0)
        assert answered(harness, camera, answers, 3)


def test_a_missing_model_fails_configure_with_one_line(tmp_path, namespace):
    missing = tmp_path / "nowhere.safetensors"
    with NodeHarness(namespace=namespace, lifecycle=True, parameters=model_parameters(missing)) as harness:
        log = node_log(harness)
        assert harness.node.trigger_configure() != SUCCESS
        harness.wait_for(lambda: any("cannot configure" in line and str(missing) in line
                                     for line in log_lines(log, harness)), 5.0, "no error line")
        assert harness.node.predictor is None


def test_kdc_lifecycle_node_process_is_driven_by_lifecycle_services(small_checkpoint, tmp_path, namespace):
    document = yaml.safe_load(params.default_parameters_file().read_text())
    document["/**/kdc"]["ros__parameters"].update(model_parameters(small_checkpoint))
    params_file = tmp_path / "kdc.yaml"
    params_file.write_text(yaml.safe_dump(document))
    executable = shutil.which("kdc_lifecycle_node")
    assert executable, "kdc_lifecycle_node is not an installed command"
    process = subprocess.Popen([executable, "--ros-args", "--params-file", str(params_file), "-r",
                                f"__ns:={namespace}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with NodeHarness(namespace=namespace, running=True) as driver:
            change = driver.driver.create_client(ChangeState, driver.output("change_state"))
            get = driver.driver.create_client(GetState, driver.output("get_state"))
            assert change.wait_for_service(timeout_sec=120.0), "no lifecycle services"

            def call(client, request):
                future = client.call_async(request)
                driver.wait_for(future.done, 120.0, f"{type(request).__name__} answered")
                return future.result()

            assert call(get, GetState.Request()).current_state.label == "unconfigured"
            for transition in (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
                assert call(change, ChangeState.Request(transition=Transition(id=transition))).success
            assert call(get, GetState.Request()).current_state.label == "active"
            camera = driver.publisher(CAMERA, Image)
            answers = driver.record(driver.output("pose_seg"), PoseSeg)
            driver.connected([camera], [driver.output("pose_seg")], settle=0.0)
            assert answered(driver, camera, answers, 4, timeout=60.0)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        status = process.wait(timeout=30)
    output = "".join(process.communicate())
    assert status == 0 and "Traceback" not in output, output[-3000:]
