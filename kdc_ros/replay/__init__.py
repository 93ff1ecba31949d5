"""kdc-replay: rosbag image topics through KDC, offline (batched, every frame) or live (through the node)."""
