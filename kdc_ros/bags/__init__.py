"""Rosbag2 tools: write camera footage into bags, read image topics back, replay them through KDC."""
