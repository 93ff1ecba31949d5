"""kdc_ros: the ROS 2 side of KDC (node, image conversion, messages, visualisation)."""
