"""Both package.xml files are valid format-3 manifests with the dependencies the code uses."""
from pathlib import Path

import pytest
from catkin_pkg.package import parse_package

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("folder, build_type", [(ROOT, "ament_python"), (ROOT / "kdc_msgs", "ament_cmake")])
def test_manifest_validates(folder, build_type):
    package = parse_package(str(folder / "package.xml"))
    package.validate()
    assert package.package_format == 3
    assert package.get_build_type() == build_type


def test_node_manifest_names_runtime_dependencies():
    package = parse_package(str(ROOT / "package.xml"))
    names = {d.name for d in package.exec_depends}
    for needed in ("rclpy", "sensor_msgs", "visualization_msgs", "diagnostic_msgs", "kdc_msgs",
                   "launch_ros", "python3-numpy", "python3-opencv", "python3-torch"):
        assert needed in names, needed


def test_messages_package_generates_interfaces():
    package = parse_package(str(ROOT / "kdc_msgs" / "package.xml"))
    assert "rosidl_interface_packages" in [g.name for g in package.member_of_groups]
    cmake = (ROOT / "kdc_msgs" / "CMakeLists.txt").read_text()
    for msg in sorted((ROOT / "kdc_msgs" / "msg").glob("*.msg")):
        assert f'"msg/{msg.name}"' in cmake, f"{msg.name} is not generated"
