"""The bench's outputs: a text table, bench.json (the rows) and bench.png (a bar chart)."""
from __future__ import annotations

import json
from pathlib import Path

REFERENCE = "kdc_node"  # ratios are against our node at the same input size


def reference_row(rows: list[dict], size) -> dict | None:
    for row in rows:
        if row["system"] == REFERENCE and row["input"] == size and row.get("fps"):
            return row
    return None


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_table(rows: list[dict]) -> str:
    """fps, p50/p95 latency and the fps ratio to our node (x > 1: faster than the kdc node)."""
    header = ("system", "backend", "input", "fps", "p50 ms", "p95 ms", "fps/node", "people", "weights / note")
    lines = []
    for row in rows:
        ref = reference_row(rows, row["input"])
        ratio = f"{row['fps'] / ref['fps']:.2f}x" if ref and row.get("fps") else "-"
        if "error" in row:
            detail = "FAILED: " + str(row["error"]).splitlines()[0][:100]
        else:
            detail = "; ".join(str(row[k]) for k in ("weights", "note") if row.get(k))[:100]
        lines.append((row["system"], row["backend"], str(row["input"]), _fmt(row.get("fps"), ".1f"),
                      _fmt(row.get("p50_ms"), ".1f"), _fmt(row.get("p95_ms"), ".1f"), ratio,
                      _fmt(row.get("people_per_frame"), ".1f"), detail))
    widths = [max(len(str(x)) for x in column) for column in zip(header, *lines)]
    numeric = {2, 3, 4, 5, 6, 7}

    def render(cells) -> str:
        return "  ".join(c.rjust(w) if i in numeric else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([render(header), render(["-" * w for w in widths])] + [render(line) for line in lines])


STAGES = ("preprocess", "network", "decode", "overhead")


def format_stages(rows: list[dict]) -> str:
    """Each measured row's time per stage, "p50/p95/max" ms: preprocess (letterbox), network, decode
    (KDC's grouping and masks; a peer's postprocess: NMS, keypoints), overhead (latency minus those:
    for kdc_node everything the node adds around the model, transport both ways included)."""
    header = ("system", "backend", "input", "people", *(f"{s} p50/p95/max" for s in STAGES))
    lines = []
    for row in rows:
        stages = row.get("stages_ms") or {}
        if "error" in row or not stages:
            continue
        cells = [_stage_cell(stages.get(s)) for s in STAGES]
        lines.append((row["system"], row["backend"], str(row["input"]), _fmt(row.get("people_per_frame"), ".1f"), *cells))
    widths = [max(len(str(x)) for x in column) for column in zip(header, *lines)]
    render = lambda cells: "  ".join(c.rjust(w) if i >= 2 else c.ljust(w)  # noqa: E731
                                     for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return "\n".join([render(header), render(["-" * w for w in widths])] + [render(line) for line in lines])


def _stage_cell(stats: dict | None) -> str:
    if not stats:
        return "-"
    return "/".join(format(stats[k], ".1f") for k in ("p50", "p95", "max"))


def write_json(rows: list[dict], path: Path) -> None:
    Path(path).write_text(json.dumps(rows, indent=2) + "\n")


def write_png(rows: list[dict], path: Path, title: str = "") -> None:
    """Two panels: fps (higher is better) and p50 latency with a p95 whisker, one bar per input size."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    measured = [r for r in rows if r.get("fps")]
    labels = list(dict.fromkeys(f"{r['system']}\n{r['backend']}" for r in measured))
    sizes = list(dict.fromkeys(r["input"] for r in measured))
    x = np.arange(len(labels))
    width = 0.8 / max(1, len(sizes))
    fig, (ax_fps, ax_ms) = plt.subplots(1, 2, figsize=(max(8, 1.5 * len(labels) + 4), 4.8))
    for j, size in enumerate(sizes):
        by_label = {f"{r['system']}\n{r['backend']}": r for r in measured if r["input"] == size}
        fps = [by_label[l]["fps"] if l in by_label else 0 for l in labels]
        p50 = [by_label[l]["p50_ms"] if l in by_label else 0 for l in labels]
        p95 = [by_label[l]["p95_ms"] if l in by_label else 0 for l in labels]
        offset = x + (j - (len(sizes) - 1) / 2) * width
        bars = ax_fps.bar(offset, fps, width, label=f"input {size}")
        ax_fps.bar_label(bars, fmt="%.1f", fontsize=7)
        ax_ms.bar(offset, p50, width, label=f"input {size}",
                  yerr=[np.zeros(len(p50)), np.maximum(0, np.subtract(p95, p50))], capsize=3)
    for ax, ylabel in ((ax_fps, "frames / s (higher is better)"), (ax_ms, "latency ms: p50, whisker to p95")):
        ax.set_xticks(x, labels, fontsize=7, rotation=30, ha="right")
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title or "batch-1 CPU inference on the same synthetic frames", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
