"""Test-wide settings: every DDS participant stays on loopback, in a domain of this run's own, and
each test that wants one gets a topic namespace of its own."""
import os
import random
import re

import pytest

# Set before any test imports rclpy, and always by the suite: a developer's own ROS_DOMAIN_ID (where
# their robot or another run lives) is never where the tests publish. A random domain per run keeps
# parallel runs from seeing each other; 101 and up are left to the demo (kdc_ros.demo).
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["ROS_LOCALHOST_ONLY"] = "1"
_DOMAINS = [str(d) for d in range(1, 101) if str(d) != os.environ.get("ROS_DOMAIN_ID")]
os.environ["ROS_DOMAIN_ID"] = random.Random(os.getpid()).choice(_DOMAINS)

# One intra-op thread: node tests run an inference thread beside the executor and DDS threads, and on
# a 2-core machine two torch threads per op starve them (seen: 10-50x slower steps under load).
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture
def namespace(request) -> str:
    """A ROS namespace only this test uses (/t_<test name>): its topics never meet another test's,
    whatever a previous test left running."""
    return "/t_" + re.sub(r"\W+", "_", request.node.name).strip("_")[:80]


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory):
    """A seeded random network saved as a checkpoint: trained at side 64, 16-channel neck and heads
    (loads and runs in milliseconds; for tests of loading, settings and sides, not of accuracy)."""
    from kdc_model import KDCNet, ModelConfig, save_checkpoint

    torch.manual_seed(0)
    config = ModelConfig(input_size=64, neck_channels=16, head_channels=16)
    path = tmp_path_factory.mktemp("small_model") / "small.safetensors"
    save_checkpoint(path, KDCNet(config), config)
    return path


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` run wherever CUDA is present and are skipped, with the reason, elsewhere."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA: torch.cuda.is_available() is False on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
