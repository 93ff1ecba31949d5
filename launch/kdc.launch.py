"""Start the kdc node (and RViz with rviz:=true).

  ros2 launch kdc_ros kdc.launch.py image_topic:=/camera/color/image_raw device:=cuda rviz:=true

Parameters come from params_file (default: the package's config/kdc.yaml); image_topic, compressed
and device override it only when given. Thin on purpose: everything else is a node parameter.
"""
import os

import yaml
from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

SHARE = get_package_share_directory("kdc_ros")
OVERRIDABLE = ("image_topic", "compressed", "device")  # empty = keep params_file's value


def _kdc_node(context):
    overrides = {}
    for name in OVERRIDABLE:
        text = LaunchConfiguration(name).perform(context)
        if text:
            overrides[name] = yaml.safe_load(text) if name == "compressed" else text
    return [Node(package="kdc_ros", executable="kdc_node", name="kdc",
                 namespace=LaunchConfiguration("namespace"),
                 parameters=[LaunchConfiguration("params_file"), overrides], output="screen")]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("image_topic", default_value="", description="Camera image topic "
                              "(default: params_file's, /camera/image_raw)"),
        DeclareLaunchArgument("compressed", default_value="", description="true: subscribe to "
                              "<image_topic>/compressed (sensor_msgs/CompressedImage)"),
        DeclareLaunchArgument("params_file", default_value=os.path.join(SHARE, "config", "kdc.yaml"),
                              description="Node parameters (YAML)"),
        DeclareLaunchArgument("device", default_value="", description="auto, cpu, cuda or cuda:N"),
        DeclareLaunchArgument("namespace", default_value="", description="Namespace of the kdc node"),
        DeclareLaunchArgument("rviz", default_value="false", description="Start rviz2 with config/kdc.rviz"),
        OpaqueFunction(function=_kdc_node),
        Node(package="rviz2", executable="rviz2", arguments=["-d", os.path.join(SHARE, "config", "kdc.rviz")],
             condition=IfCondition(LaunchConfiguration("rviz")), output="screen"),
    ])
