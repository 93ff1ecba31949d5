"""python -m kdc_ros.bench: time our node, our model and the peers on the same frames; write a table,
bench.json, bench_meta.json and bench.png under --out.

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

from . import SYSTEMS, run_producers
from .output import format_table, write_json, write_png

OURS = ("kdc_model", "kdc_node")


def default_threads() -> int:
    """Ultralytics sets torch to min(8, cpu_count - 1) threads on CPU; everyone gets the same here."""
    return min(8, max(1, (os.cpu_count() or 1) - 1))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m kdc_ros.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench_out", help="output folder (default bench_out)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[320],
                        help="square network input sizes, each system at each (default 320)")
    parser.add_argument("--frames", type=int, default=20, help="number of synthetic frames (default 20)")
    parser.add_argument("--frame-size", default="640x480", help="WIDTHxHEIGHT of the frames (default 640x480)")
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
    parser.add_argument("--backend", nargs="+", default=["torch"], choices=("torch", "onnxruntime", "tensorrt"),
                        help="what runs our network, one row each (kdc_model.backends; default torch)")
    parser.add_argument("--threads", type=int, default=default_threads(),
                        help="PyTorch intra-op threads for our rows and the ultralytics torch rows "
                             f"(default {default_threads()}: ultralytics' own rule, cpu_count - 1, at most 8; "
                             "0 leaves each system its own default)")
    parser.add_argument("--venv-root", default=None, help="peer venvs (default build/bench-venvs)")
    args = parser.parse_args(argv)
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
                                                    warmup=args.warmup, rounds=args.rounds, backend=backend)
            else:
                producers[name] = functools.partial(kdc_model_row, weights=args.weights, device=args.device,
                                                    warmup=args.warmup, rounds=args.rounds, backend=backend)
    peers = [s for s in args.systems if s not in OURS]
    if peers:
        from .peers import peer_rows

        producers["peers"] = functools.partial(peer_rows, systems=peers, warmup=args.warmup, rounds=args.rounds,
                                               venv_root=args.venv_root, threads=args.threads)
    return producers


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from .frames import make_frames

    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    frames = make_frames(args.frames, *args.frame_hw, seed=args.seed)
    print(f"[bench] {len(frames)} synthetic frames {args.frame_size} (kdc_model.synthetic, seed {args.seed}); "
          f"input sizes {args.sizes}; systems {', '.join(args.systems)}", flush=True)
    load_before = os.getloadavg()
    started = time.time()
    rows = run_producers(build_producers(args), frames, args.sizes, repeat=args.repeat, log=lambda m: print(m, flush=True))
    rows = [r for r in rows if r["system"] in args.systems or "error" in r]
    order = {s: i for i, s in enumerate(SYSTEMS)}
    backends = {"torch": 0, "onnxruntime": 1}
    rows.sort(key=lambda r: (r["input"], order.get(r["system"], len(order)), backends.get(r["backend"], 2)))

    import torch

    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "seconds": round(time.time() - started, 1),
        "machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "torch_threads": torch.get_num_threads(), "threads_option": args.threads, "python": platform.python_version(),
        "frames": {"count": len(frames), "size": args.frame_size, "seed": args.seed,
                   "source": "kdc_model.synthetic.make_scene, 1-6 people"},
        "sizes": args.sizes, "warmup": args.warmup, "rounds": args.rounds, "repeat": args.repeat, "device": args.device,
        "protocol": "batch 1, one call at a time; fps = 1000 / mean latency; p50/p95 over all timed calls",
    }
    write_json(rows, out / "bench.json")
    (out / "bench_meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    title = (f"batch 1, {meta['machine']} x{meta['cpu_count']} CPU, {len(frames)} synthetic {args.frame_size} "
             f"frames, load {meta['load_average_before'][0]:.1f}")
    write_png(rows, out / "bench.png", title=title)
    print()
    print(format_table(rows))
    print(f"\nfps/node: fps over the kdc_node row's at the same input (above 1: faster than our node). "
          f"Load average {meta['load_average_before'][0]:.1f} -> {meta['load_average_after'][0]:.1f} "
          f"on {meta['cpu_count']} cores.")
    print(f"wrote {out / 'bench.json'}, {out / 'bench_meta.json'}, {out / 'bench.png'}")
    ours_failed = [r for r in rows if r["system"] in OURS + ("kdc",) and "error" in r]
    return 1 if ours_failed else 0


if __name__ == "__main__":
    sys.exit(main())
