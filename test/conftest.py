"""Test-wide settings: every DDS participant stays on loopback, in a domain of this run's own."""
import os
import random

# Set before any test imports rclpy. A random domain keeps parallel runs from seeing each other.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["ROS_LOCALHOST_ONLY"] = "1"
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(1, 100)))
