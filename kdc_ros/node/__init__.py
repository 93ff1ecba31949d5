"""The node runtime: what runs on the robot. KdcNode (kdc_node) and its lifecycle variant, their
parameters (params), and what a frame goes through: image conversion (image_io, image_header), the
latest-frame slot, the model's result turned into messages (frame_outputs: messages, tracking, depth,
visualization), and diagnostics. `kdc_node` / `python -m kdc_ros.node` start it."""


def __getattr__(name):
    # Imported on first use: the tools import this package's converters without starting a node.
    if name in ("KdcNode", "main"):
        from . import kdc_node

        return getattr(kdc_node, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
