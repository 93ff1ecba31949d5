"""The node runtime: what runs on the robot. KdcNode (kdc_node) and its lifecycle variant, their
parameters (params), and what a frame goes through: image conversion (image_io, image_header), the
latest-frame slot, the model's result turned into messages (frame_outputs: messages, tracking, depth,
visualization), and diagnostics. `kdc_node` / `python -m kdc_ros.node` start it."""


# Imported on first use: the tools import this package's converters without building a node.
_LAZY = {"KdcNode": "kdc_node", "main": "kdc_node", "KdcLifecycleNode": "lifecycle"}


def __getattr__(name):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
