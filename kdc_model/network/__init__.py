"""The network and its checkpoints: what builds a KDC network (config, heads, kdcnet), how it is
stored and read back safely (checkpoint, private_files), and the one way in from a name, a file or a
config (weights: named weights, build_network, letterbox_side)."""
