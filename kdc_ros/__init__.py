"""kdc_ros: the ROS 2 side of KDC. node/ is the runtime that runs on the robot; around it, the tools
(bags, replay, bench, demo, teacher, and the harness that drives a node from a process)."""
