"""python -m kdc_ros.bench: time our node, our model and the peers on the same frames; write a table,
bench.json, bench_meta.json and bench.png under --out.

Frames: --video PATH (or --video demo, the clip `make demo` plays) for real footage, else synthetic
scenes. Every row says how many people it found per frame and how its time splits into preprocess,
network, decode and overhead (p50/p95/max).

Peers (Ultralytics, MediaPipe) run in their own venvs under build/bench-venvs, created with pip on
first use (a few minutes, once); --no-peers times our rows only and creates nothing.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import time
from pathlib import Path

from kdc_model.inference.backends import BACKENDS, default_threads

from . import SYSTEMS, input_sides, parse_size, run_producers
from .output import format_stages, format_table, write_json, write_png

OURS = ("kdc_model", "kdc_node")


def node_default(name: str):
    """The node's default for parameter `name` (config/kdc.yaml): our rows run as the node would."""
    from kdc_ros.node.params import load_defaults

    return load_defaults()[name]


def _size(text: str):
    try:
        return parse_size(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def default_size() -> int | str:
    """The letterbox sides the node runs the default model at (its ModelConfig's), as one size; 320
    without the packaged weights."""
    from kdc_model import DEFAULT_WEIGHTS
    from kdc_model.network.checkpoint import load_checkpoint

    if not DEFAULT_WEIGHTS.installed:
        return 320
    config = load_checkpoint(DEFAULT_WEIGHTS.file)[0]
    return parse_size("+".join(str(s) for s in (config.input_size, *config.multi_scale)))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m kdc_ros.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench_out", help="output folder (default bench_out)")
    parser.add_argument("--sizes", type=_size, nargs="+", default=None,
                        help="network input sizes, each system at each: a letterbox side (320), or sides whose "
                             "people our model merges (320+640; peers run at the largest) (default: the "
                             "default model's own, as the node runs it)")
    parser.add_argument("--video", default=None,
                        help="real frames from this video file, or 'demo' for the clip `make demo` plays "
                             "(default: synthetic frames)")
    parser.add_argument("--frames", type=int, default=20,
                        help="number of frames (default 20; from a video: spread evenly over it)")
    parser.add_argument("--frame-size", default="640x480", help="WIDTHxHEIGHT of synthetic frames (default 640x480)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic frames")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls before timing (default 3)")
    parser.add_argument("--rounds", type=int, default=1, help="timed passes over the frames (default 1)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run every system this many times, interleaved, and pool the latencies "
                             "(evens out a machine whose load drifts; default 1)")
    parser.add_argument("--systems", default=",".join(SYSTEMS),
                        help=f"comma-separated subset of {','.join(SYSTEMS)}")
    parser.add_argument("--no-peers", action="store_true", help="our rows only; no peer venv is created")
    parser.add_argument("--weights", default="auto",
                        help="our weights: auto (packaged default, else random init), default, random, or a path")
    parser.add_argument("--device", default="cpu", help="our device (peers run on CPU)")
    parser.add_argument("--backend", nargs="+", default=["torch"], choices=BACKENDS,
                        help="what runs our network, one row each (kdc_model.inference.backends; default torch)")
    parser.add_argument("--int8", action=argparse.BooleanOptionalAction, default=node_default("int8"),
                        help="our network's int8 model where it applies (backend onnxruntime on CPU), as the "
                             f"node runs it (default: the node's, {'on' if node_default('int8') else 'off'})")
    parser.add_argument("--threads", type=int, default=default_threads(),
                        help="PyTorch intra-op threads for our rows and the ultralytics torch rows "
                             f"(default {default_threads()}: ultralytics' own rule, cpu_count - 1, at most 8; "
                             "0 leaves each system its own default)")
    parser.add_argument("--venv-root", default=None, help="peer venvs (default build/bench-venvs)")
    args = parser.parse_args(argv)
    if args.sizes is None:
        args.sizes = [default_size()]
    args.systems = [s for s in args.systems.split(",") if s]
    unknown = set(args.systems) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown systems {sorted(unknown)}; choose from {', '.join(SYSTEMS)}")
    if args.no_peers:
        args.systems = [s for s in args.systems if s in OURS]
    try:
        width, height = (int(v) for v in args.frame_size.lower().split("x"))
    except ValueError:
        parser.error(f"--frame-size {args.frame_size!r} is not WIDTHxHEIGHT")
    args.frame_hw = (height, width)
    return args


def load_frames(args) -> tuple:
    """(frames [N, H, W, 3] RGB, what they are) for --video / --frames / synthetic options."""
    from .frames import make_frames, resolve_video, video_frames

    if args.video:
        path = resolve_video(args.video)
        return video_frames(path, args.frames), {"kind": "real", "source": f"video {path}, evenly spread"}
    return (make_frames(args.frames, *args.frame_hw, seed=args.seed),
            {"kind": "synthetic", "source": f"kdc_model.training.synthetic.make_scene, 1-6 people, seed {args.seed}"})


def build_producers(args) -> dict:
    """The row producers for the chosen systems (each `producer(frames, input_size) -> rows`)."""
    producers = {}
    ours = [s for s in args.systems if s in OURS]
    if ours:
        from .kdc import kdc_model_row, kdc_rows

        for backend in dict.fromkeys(args.backend):
            name = "kdc" if backend == "torch" else f"kdc ({backend})"
            if "kdc_node" in ours:
                producers[name] = functools.partial(kdc_rows, weights=args.weights, device=args.device,
                                                    warmup=args.warmup, rounds=args.rounds, backend=backend,
                                                    int8=args.int8)
            else:
                producers[name] = functools.partial(kdc_model_row, weights=args.weights, device=args.device,
                                                    warmup=args.warmup, rounds=args.rounds, backend=backend,
                                                    int8=args.int8)
    peers = [s for s in args.systems if s not in OURS]
    if peers:
        from .peers import peer_rows

        producers["peers"] = functools.partial(peer_rows, systems=peers, warmup=args.warmup, rounds=args.rounds,
                                               venv_root=args.venv_root, threads=args.threads,
                                               backends=args.backend)
    return producers


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    try:
        frames, source = load_frames(args)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"[bench] {len(frames)} frames {frames.shape[2]}x{frames.shape[1]}, {source['source']}; "
          f"input sizes {args.sizes}; systems {', '.join(args.systems)}", flush=True)
    load_before = os.getloadavg()
    started = time.time()
    rows = run_producers(build_producers(args), frames, args.sizes, repeat=args.repeat, log=lambda m: print(m, flush=True))
    rows = [r for r in rows if r["system"] in args.systems or "error" in r]
    order = {s: i for i, s in enumerate(SYSTEMS)}
    backends = {"torch": 0, "onnxruntime": 1}
    rows.sort(key=lambda r: (max(input_sides(r["input"])), str(r["input"]), order.get(r["system"], len(order)), backends.get(r["backend"], 2)))

    import torch

    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "seconds": round(time.time() - started, 1),
        "machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "torch_threads": torch.get_num_threads(), "threads_option": args.threads, "python": platform.python_version(),
        "frames": {"count": len(frames), "size": f"{frames.shape[2]}x{frames.shape[1]}", **source},
        "sizes": args.sizes, "warmup": args.warmup, "rounds": args.rounds, "repeat": args.repeat, "device": args.device,
        "protocol": "batch 1, one call at a time; fps = 1000 / mean latency; p50/p95 over all timed calls",
    }
    write_json(rows, out / "bench.json")
    (out / "bench_meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    title = (f"batch 1, {meta['machine']} x{meta['cpu_count']} CPU, {len(frames)} {source['kind']} "
             f"{meta['frames']['size']} frames, load {meta['load_average_before'][0]:.1f}")
    write_png(rows, out / "bench.png", title=title)
    print()
    print(format_table(rows))
    print()
    print(format_stages(rows))
    print(f"\nfps/node: fps over the kdc_node row's at the same input (above 1: faster than our node). "
          f"Load average {meta['load_average_before'][0]:.1f} -> {meta['load_average_after'][0]:.1f} "
          f"on {meta['cpu_count']} cores.")
    print(f"wrote {out / 'bench.json'}, {out / 'bench_meta.json'}, {out / 'bench.png'}")
    ours_failed = [r for r in rows if r["system"] in OURS + ("kdc",) and "error" in r]
    return 1 if ours_failed else 0


if __name__ == "__main__":
    sys.exit(main())
