"""Draw docs/architecture.png: the data flow of one camera frame through the node, and where the
tools and training stand. Usage: python scripts/draw_architecture.py [OUT.png]"""
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

ROS, MODEL, TOOL, MSG = "#dbe7f3", "#f3dfe3", "#e6f0dc", "#f5f5f5"

# name: (x, y, width, height, colour, title, lines)
BOXES = {
    "camera": (0.2, 6.6, 2.6, 0.9, MSG, "camera driver", ["sensor_msgs/Image | CompressedImage"]),
    "io": (0.2, 5.0, 2.6, 1.1, ROS, "node/image_io", ["to RGB uint8 (NumPy), bad frames", "rejected with the reason"]),
    "slot": (0.2, 3.5, 2.6, 1.0, ROS, "node/latest_frame", ["one waiting frame per camera;", "the inference worker takes it"]),
    "predictor": (3.6, 3.2, 3.4, 2.4, MODEL, "kdc_model/inference/predictor",
                  ["letterbox + normalise (host)", "runner: PyTorch | ONNX Runtime", "heads activated",
                   "decode: people, keypoints, masks", "back to image pixels"]),
    "network": (3.6, 6.2, 3.4, 1.3, MODEL, "kdc_model/network",
                ["weights.build_network: named weights,", "a checkpoint or a ModelConfig -> KDCNet"]),
    "result": (3.6, 1.8, 3.4, 0.8, MSG, "kdc_model PoseSegResult", ["keypoints, scores, boxes, label map"]),
    "outputs": (7.8, 2.3, 3.4, 2.0, ROS, "node/frame_outputs",
                ["thresholds -> tracking -> depth (3D)", "-> PoseSeg (messages)", "-> overlay, markers, detections",
                 "(visualization; only when subscribed)"]),
    "topics": (7.8, 4.75, 3.4, 1.3, MSG, "published (header = input's)",
               ["~/pose_seg  kdc_msgs/PoseSeg", "~/overlay  ~/markers  ~/markers_3d", "~/detections  /diagnostics"]),
    "training": (7.8, 6.3, 3.4, 1.2, MODEL, "kdc_model/training",
                 ["recipes, data, targets, losses, train,", "evaluate -> checkpoints (safetensors)"]),
    "tools": (7.8, 0.1, 3.4, 1.7, TOOL, "kdc_ros tools",
              ["harness: a node + driver in process", "replay (kdc-replay), bags (kdc-bag)", "bench, demo, teacher"]),
}
ARROWS = [("camera", "io", ""), ("io", "slot", ""), ("slot", "predictor", "RGB"), ("network", "predictor", "KDCNet"),
          ("predictor", "result", ""), ("result", "outputs", ""), ("outputs", "topics", "publish"),
          ("training", "network", "checkpoints"), ("tools", "outputs", "replay: same function")]


def centre(name, side):
    x, y, w, h = BOXES[name][:4]
    return {"top": (x + w / 2, y + h), "bottom": (x + w / 2, y), "left": (x, y + h / 2),
            "right": (x + w, y + h / 2)}[side]


def sides(a, b):
    ax, ay, aw, ah = BOXES[a][:4]
    bx, by, bw, bh = BOXES[b][:4]
    if ax + aw <= bx:
        return "right", "left"
    if bx + bw <= ax:
        return "left", "right"
    return ("bottom", "top") if ay > by else ("top", "bottom")


def main(out: str = "docs/architecture.png") -> None:
    fig, ax = plt.subplots(figsize=(11.6, 7.8))
    ax.set_xlim(0, 11.4)
    ax.set_ylim(-0.1, 7.7)
    ax.axis("off")
    for x, y, w, h, colour, title, lines in BOXES.values():
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08", fc=colour,
                                    ec="#555555", lw=1.0))
        ax.text(x + 0.1, y + h - 0.12, title, fontsize=10, fontweight="bold", va="top", family="monospace")
        for i, line in enumerate(lines):
            ax.text(x + 0.1, y + h - 0.45 - 0.3 * i, line, fontsize=8.5, va="top")
    for a, b, label in ARROWS:
        start, end = sides(a, b)
        p, q = centre(a, start), centre(b, end)
        ax.add_patch(FancyArrowPatch(p, q, arrowstyle="-|>", mutation_scale=14, lw=1.3, color="#333333"))
        if label:  # above a sideways arrow, beside an upright one
            mx, my = (p[0] + q[0]) / 2, (p[1] + q[1]) / 2
            sideways = abs(q[0] - p[0]) > abs(q[1] - p[1])
            ax.text(mx if sideways else mx + 0.08, my + 0.1 if sideways else my, label, fontsize=8,
                    color="#333333", ha="center" if sideways else "left", va="bottom" if sideways else "center")
    ax.text(0.2, 2.6, "blue: kdc_ros/node (runs on the robot)\npink: kdc_model (no ROS)\n"
            "green: kdc_ros tools\ngrey: data between them", fontsize=8.5, va="top")
    fig.suptitle("One camera frame through kdc_ros (python scripts/draw_architecture.py draws this)", fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=80)


if __name__ == "__main__":
    main(*sys.argv[1:])
