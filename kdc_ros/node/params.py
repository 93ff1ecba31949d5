"""The node's parameters: defaults from config/kdc.yaml, descriptions and ranges here, one validator.

config/kdc.yaml is the only place a default value is written. This module adds what YAML cannot
carry (type, description, range, whether it may change at run time) and refuses to load a YAML
whose parameter names or types differ from these specs, so the two cannot drift apart.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.parameter import Parameter

from kdc_model.inference.backends import CHOICES, backend_problem, device_problem
from kdc_model.network.config import input_size_problem

NODE_NAME = "kdc"
PACKAGE = "kdc_ros"
THRESHOLDS = ("min_person_score", "keypoint_threshold")  # also the model decoder's (threshold_warnings)
# ROS topic names: alphanumerics, _ and / (a ~ prefix for private names); no empty segments.
_TOPIC = re.compile(r"^~?/?[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True)
class ParameterSpec:
    type: Parameter.Type
    description: str
    dynamic: bool = False                          # may change while the node runs
    bounds: tuple[float, float] | None = None      # inclusive range of a number
    choices: tuple[str, ...] | None = None         # allowed values of a string
    check: Callable[[Any], str | None] | None = None  # extra check: a reason to refuse, or None


def _topic_reason(topic: str) -> str | None:
    return None if _TOPIC.match(topic) else f"{topic!r} is not a valid topic name"


def _topics_reason(topics: list[str]) -> str | None:
    if not all(isinstance(topic, str) for topic in topics):
        return "image_topics must be a list of strings"
    for topic in topics:
        if (reason := _topic_reason(topic)) is not None:
            return reason
    if len(set(topics)) != len(topics):
        return "image_topics lists a topic twice"
    return None


def _optional_topic_reason(topic: str) -> str | None:
    return None if topic == "" else _topic_reason(topic)


def _optional_topics_reason(topics: list[str]) -> str | None:
    if not all(isinstance(topic, str) for topic in topics):
        return "depth_topics and camera_info_topics must be lists of strings"
    for topic in topics:
        if (reason := _optional_topic_reason(topic)) is not None:
            return reason
    return None


def _multi_scale_reason(sides: list[int]) -> str | None:
    if not all(isinstance(side, int) and not isinstance(side, bool) for side in sides):
        return "multi_scale must be a list of integers"
    if len(sides) > 3:
        return f"multi_scale lists {len(sides)} sides; at most 3 (each costs a network run)"
    for side in sides:
        if (reason := input_size_problem(side)) is not None:
            return reason.replace("input_size", "multi_scale")
        if side > 2048:
            return f"multi_scale side {side} is over 2048"
    return None


SPECS: dict[str, ParameterSpec] = {
    "image_topic": ParameterSpec(Parameter.Type.STRING, "Camera image topic (sensor_msgs/Image; "
                                 "{image_topic}/compressed when compressed is true).", check=_topic_reason),
    "image_topics": ParameterSpec(Parameter.Type.STRING_ARRAY, "Several cameras sharing one model: their "
                                  "image topics; non-empty replaces image_topic and outputs move to "
                                  "~/{camera_name}/...", check=_topics_reason),
    "compressed": ParameterSpec(Parameter.Type.BOOL, "Subscribe to sensor_msgs/CompressedImage on "
                                "{topic}/compressed instead of raw sensor_msgs/Image."),
    "reliability": ParameterSpec(Parameter.Type.STRING, "Input QoS reliability (history is keep-last 1).",
                                 choices=("best_effort", "reliable")),
    "max_pixels": ParameterSpec(Parameter.Type.INTEGER, "Reject input frames with more pixels than this.",
                                dynamic=True, bounds=(1, 1 << 28)),
    "depth_topic": ParameterSpec(Parameter.Type.STRING, "Depth image aligned to image_topic (sensor_msgs/Image "
                                 "16UC1 mm or 32FC1 m, same size); fills keypoints_3d and ~/markers_3d. "
                                 "Empty = no 3D.", check=_optional_topic_reason),
    "camera_info_topic": ParameterSpec(Parameter.Type.STRING, "sensor_msgs/CameraInfo of the aligned depth "
                                       "image (its K); needed with depth_topic.", check=_optional_topic_reason),
    "depth_topics": ParameterSpec(Parameter.Type.STRING_ARRAY, "With image_topics: one aligned depth topic per "
                                  "camera, same order ('' = none); empty list = no 3D.",
                                  check=_optional_topics_reason),
    "camera_info_topics": ParameterSpec(Parameter.Type.STRING_ARRAY, "With image_topics: the CameraInfo topic "
                                        "of each depth_topics entry, same order.", check=_optional_topics_reason),
    "depth_tolerance": ParameterSpec(Parameter.Type.DOUBLE, "Seconds between a colour frame's stamp and the "
                                     "nearest depth frame's for them to match.", dynamic=True, bounds=(0.0, 1.0)),
    "depth_wait": ParameterSpec(Parameter.Type.DOUBLE, "Seconds to wait for a depth frame not received yet "
                                "when the colour frame is processed.", dynamic=True, bounds=(0.0, 1.0)),
    "depth_cache_size": ParameterSpec(Parameter.Type.INTEGER, "Depth frames kept per camera for matching by "
                                      "stamp (memory bound).", bounds=(1, 1000)),
    "depth_cache_mb": ParameterSpec(Parameter.Type.INTEGER, "Memory bound of those depth frames per camera, "
                                    "MiB (the earliest received go first; a larger frame is rejected).",
                                    bounds=(1, 65536)),
    "model": ParameterSpec(Parameter.Type.STRING, "Checkpoint path, or 'default' for the packaged weights.",
                           check=lambda v: None if v.strip() else "model must not be empty"),
    "device": ParameterSpec(Parameter.Type.STRING, "Inference device: auto (CUDA when present), cpu, cuda, "
                            "cuda:N.", check=device_problem),
    "device_fallback": ParameterSpec(Parameter.Type.BOOL, "When the requested device is absent (e.g. "
                                     "cuda without a GPU): true runs on CPU with a warning, false stops "
                                     "startup with an error."),
    "half": ParameterSpec(Parameter.Type.BOOL, "Half precision (float16) on CUDA."),
    "int8": ParameterSpec(Parameter.Type.BOOL, "On CPU with ONNX Runtime, run the model's int8 network "
                          "(<model>.int8.onnx; the default weights ship one): ~0.6x the network time; "
                          "where there is none, or elsewhere, float32 with a warning."),
    "input_size": ParameterSpec(Parameter.Type.INTEGER, "Longer side of the letterbox the network sees, px "
                                "(0 = the model's own sides: 320 and 640 merged for the default weights); "
                                "larger finds smaller, more distant people, at a cost growing with its square.",
                                bounds=(0, 2048),
                                check=lambda v: input_size_problem(model_input_size(v))),
    "multi_scale": ParameterSpec(Parameter.Type.INTEGER_ARRAY, "More letterbox sides the network also runs at, "
                                 "px (e.g. [640]); the people of every side are merged: small and big people "
                                 "both found, for the sides' summed time ([] = the model's own with input_size 0, "
                                 "else none).",
                                 check=_multi_scale_reason),
    "backend": ParameterSpec(Parameter.Type.STRING, "What runs the network: auto (onnxruntime on CPU where "
                             "installed, tensorrt on CUDA where its provider is, else torch), torch (PyTorch), "
                             "onnxruntime (its ONNX export in ONNX Runtime, CPU or CUDA provider), tensorrt (ONNX "
                             "Runtime's TensorRT provider, where installed).", choices=CHOICES, check=backend_problem),
    "threads": ParameterSpec(Parameter.Type.INTEGER, "Threads the network runs on (PyTorch intra-op threads, "
                             "which ONNX Runtime follows; for the whole process): 0 = one less than the CPU "
                             "cores (1 to 8), leaving a core to the executor and DDS.", bounds=(0, 256)),
    "enable": ParameterSpec(Parameter.Type.BOOL, "Process frames (false pauses; see ~/enable).", dynamic=True),
    "min_person_score": ParameterSpec(Parameter.Type.DOUBLE, "People scoring less are not published.",
                                      dynamic=True, bounds=(0.0, 1.0)),
    "keypoint_threshold": ParameterSpec(Parameter.Type.DOUBLE, "Keypoints less confident are published "
                                        "with confidence 0.", dynamic=True, bounds=(0.0, 1.0)),
    "tracking": ParameterSpec(Parameter.Type.BOOL, "Persistent person ids across frames (else rank in frame).",
                              dynamic=True),
    "publish_mask": ParameterSpec(Parameter.Type.BOOL, "Fill PoseSeg.mask with the instance label image.",
                                  dynamic=True),
    "overlay_mask_alpha": ParameterSpec(Parameter.Type.DOUBLE, "Opacity of masks on ~/overlay.",
                                        dynamic=True, bounds=(0.0, 1.0)),
    "diagnostics_period": ParameterSpec(Parameter.Type.DOUBLE, "Seconds between /diagnostics messages.",
                                        bounds=(0.1, 60.0)),
}

def model_input_size(value: int) -> int | None:
    """The node's input_size as kdc_model takes it: 0 (the model's own side) is None."""
    return value or None


def model_multi_scale(value: list[int]) -> tuple[int, ...] | None:
    """The node's multi_scale as kdc_model takes it: [] is None, the model's own sides when
    input_size is 0 too, else none (kdc_model.load_model)."""
    return tuple(value) or None


def threshold_warnings(settings: dict[str, Any], decoder) -> list[str]:
    """Where a node threshold is below the decoder's own (kdc_model.DecoderConfig, stored in the
    checkpoint), which drops people and keypoints first: lowering the node's below it changes nothing."""
    warnings = []
    for name, what in zip(THRESHOLDS, ("people", "keypoints")):
        floor = getattr(decoder, name, None)
        if floor is not None and settings[name] < floor:
            warnings.append(f"{name} {settings[name]:g} is below the model decoder's own {floor:g}: {what} "
                            f"scoring between the two are dropped by the decoder already")
    return warnings


_PYTHON_TYPES = {Parameter.Type.STRING: str, Parameter.Type.BOOL: bool, Parameter.Type.INTEGER: int,
                 Parameter.Type.DOUBLE: float, Parameter.Type.STRING_ARRAY: list, Parameter.Type.INTEGER_ARRAY: list}
_ARRAYS = (Parameter.Type.STRING_ARRAY, Parameter.Type.INTEGER_ARRAY)


def default_parameters_file() -> Path:
    """config/kdc.yaml of the source tree (editable installs), else of the installed share folder."""
    source = Path(__file__).resolve().parents[2] / "config" / "kdc.yaml"
    if source.is_file():
        return source
    try:
        from ament_index_python.packages import get_package_share_directory
        return Path(get_package_share_directory(PACKAGE)) / "config" / "kdc.yaml"
    except (ImportError, LookupError):
        return source


def load_defaults(path: str | Path | None = None) -> dict[str, Any]:
    """{name: default} from the `/**/kdc: ros__parameters:` block of a parameters file (any key naming
    the kdc node), checked against SPECS."""
    path = Path(path) if path else default_parameters_file()
    document = yaml.safe_load(path.read_text()) or {}
    blocks = [v for k, v in document.items() if str(k).rsplit("/", 1)[-1] == NODE_NAME and isinstance(v, dict)]
    if not blocks or not isinstance(blocks[0].get("ros__parameters"), dict):
        raise ValueError(f"{path}: no '/**/{NODE_NAME}: ros__parameters:' block")
    values = dict(blocks[0]["ros__parameters"])
    missing, unknown = sorted(set(SPECS) - set(values)), sorted(set(values) - set(SPECS))
    if missing or unknown:
        raise ValueError(f"{path}: parameters differ from kdc_ros.node.params.SPECS: "
                         f"missing {missing}, unknown {unknown}")
    for name, value in values.items():
        expected = _PYTHON_TYPES[SPECS[name].type]
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            values[name] = value = float(value)
        if type(value) is not expected:
            raise ValueError(f"{path}: {name} = {value!r} should be a {expected.__name__}")
        if (reason := check_value(name, value)) is not None:
            raise ValueError(f"{path}: {reason}")
    return values


def check_value(name: str, value: Any) -> str | None:
    """Why `value` is not acceptable for parameter `name`, or None when it is."""
    spec = SPECS.get(name)
    if spec is None:
        return f"unknown parameter {name!r}"
    if spec.bounds is not None and not spec.bounds[0] <= value <= spec.bounds[1]:
        return f"{name} = {value} is outside [{spec.bounds[0]}, {spec.bounds[1]}]"
    if spec.choices is not None and value not in spec.choices:
        return f"{name} = {value!r} is not one of {', '.join(spec.choices)}"
    if spec.check is not None:
        return spec.check(value)
    return None


def descriptor(name: str) -> ParameterDescriptor:
    spec = SPECS[name]
    text = spec.description + ("" if spec.dynamic else " Read-only after start.")
    result = ParameterDescriptor(name=name, type=spec.type.value, description=text, read_only=not spec.dynamic)
    if spec.bounds is not None and spec.type == Parameter.Type.DOUBLE:
        result.floating_point_range = [FloatingPointRange(from_value=float(spec.bounds[0]),
                                                          to_value=float(spec.bounds[1]), step=0.0)]
    elif spec.bounds is not None and spec.type == Parameter.Type.INTEGER:
        result.integer_range = [IntegerRange(from_value=int(spec.bounds[0]), to_value=int(spec.bounds[1]), step=1)]
    if spec.choices is not None:
        result.additional_constraints = "one of: " + ", ".join(spec.choices)
    return result


def declare_parameters(node, defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """Declare every parameter on `node` (overrides from --params-file win) and return the values.

    Raises ValueError naming the parameter when a value given at start is not acceptable.
    """
    defaults = load_defaults() if defaults is None else defaults
    values = {}
    for name, spec in SPECS.items():
        default = defaults[name]
        # rclpy types a parameter by its value and cannot type an empty list; declare it by type.
        initial = spec.type if default == [] else default
        value = node.declare_parameter(name, initial, descriptor(name)).value
        # rclpy gives an unset array as None and an integer array as array.array: both as lists.
        values[name] = ([] if value is None else list(value)) if spec.type in _ARRAYS else value
        if (reason := check_value(name, values[name])) is not None:
            raise ValueError(f"parameter {reason}")
    return values


def depth_sources(settings: dict[str, Any]) -> list[tuple[str, str] | None]:
    """Per camera (the order of image_topics, or the one image_topic): (depth topic, camera info
    topic), or None for a camera without depth. Raises ValueError naming the parameters that disagree."""
    if settings["image_topics"]:
        cameras = len(settings["image_topics"])
        depth, info = list(settings["depth_topics"]), list(settings["camera_info_topics"])
        if not depth and not info:
            return [None] * cameras
        if len(depth) != cameras or len(info) != cameras:
            raise ValueError(f"depth_topics ({len(depth)}) and camera_info_topics ({len(info)}) must list one "
                             f"entry per image_topics entry ({cameras}); '' for a camera without depth")
        names = [f"depth_topics[{i}]" for i in range(cameras)]
    else:
        depth, info = [settings["depth_topic"]], [settings["camera_info_topic"]]
        names = ["depth_topic"]
    sources = []
    for name, depth_topic, info_topic in zip(names, depth, info):
        if bool(depth_topic) != bool(info_topic):
            raise ValueError(f"{name} and its camera info topic must both be set or both be empty "
                             f"(got {depth_topic!r}, {info_topic!r})")
        sources.append((depth_topic, info_topic) if depth_topic else None)
    return sources


def markdown_table() -> str:
    """The README table of parameters (the README holds a copy; a test compares the two)."""
    defaults = load_defaults()
    rows = ["| Parameter | Type | Default | Range | Dynamic | Description |", "|---|---|---|---|---|---|"]
    for name, spec in SPECS.items():
        if spec.bounds is not None:
            allowed = f"[{spec.bounds[0]}, {spec.bounds[1]}]"
        elif spec.choices is not None:
            allowed = " \\| ".join(spec.choices)
        else:
            allowed = ""
        type_name = {Parameter.Type.STRING: "string", Parameter.Type.BOOL: "bool", Parameter.Type.INTEGER: "int",
                     Parameter.Type.DOUBLE: "double", Parameter.Type.STRING_ARRAY: "string[]",
                     Parameter.Type.INTEGER_ARRAY: "int[]"}[spec.type]
        default = defaults[name]
        shown = "[]" if default == [] else str(default).lower() if isinstance(default, bool) else str(default)
        rows.append(f"| `{name}` | {type_name} | `{shown}` | {allowed} | {'yes' if spec.dynamic else 'no'} "
                    f"| {spec.description} |")
    return "\n".join(rows)
