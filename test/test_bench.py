"""kdc_ros.bench: the harness on our model only (3 tiny frames, real rclpy node), and its pieces.

No peer venv is ever created here: peers are skipped (--no-peers) or their venv step is faked.
"""
from __future__ import annotations

import json

import pytest

from kdc_ros.bench import ROW_KEYS, check_row, run_producers
from kdc_ros.bench import peers as bench_peers
from kdc_ros.bench.__main__ import main
from kdc_ros.bench.output import format_table
from kdc_ros.bench.runners.timing import failed_row, row, time_calls


def test_bench_our_rows_only(tmp_path, capsys):
    out, venvs = tmp_path / "out", tmp_path / "venvs"
    status = main(["--out", str(out), "--frames", "3", "--frame-size", "96x64", "--sizes", "64",
                   "--warmup", "1", "--no-peers", "--weights", "random", "--venv-root", str(venvs)])
    assert status == 0
    rows = json.loads((out / "bench.json").read_text())
    assert [r["system"] for r in rows] == ["kdc_node", "kdc_model"]
    for r in rows:
        check_row(r)
        assert set(ROW_KEYS) <= set(r) and "error" not in r
        assert r["backend"] == "torch" and r["input"] == 64 and r["calls"] == 3
        assert 0 < r["p50_ms"] <= r["p95_ms"]
    assert rows[0]["lost"] == 0
    assert (out / "bench.png").stat().st_size > 1000
    assert json.loads((out / "bench_meta.json").read_text())["frames"]["count"] == 3
    table = capsys.readouterr().out
    assert "kdc_model" in table and "1.00x" in table  # the node row is the ratio reference
    assert not venvs.exists()


def test_rows_schema_and_failures():
    good = row("x", "torch", 320, [10.0, 20.0, 30.0])
    assert check_row(good)["fps"] == pytest.approx(50.0) and good["p50_ms"] == 20.0
    check_row(failed_row("x", "torch", 320, "boom"))
    with pytest.raises(ValueError, match="lacks"):
        check_row({"system": "x", "backend": "torch", "input": 320, "fps": 1.0})
    with pytest.raises(ValueError, match="positive"):
        check_row({**good, "fps": None})

    def broken(frames, size):
        raise RuntimeError("no model")

    rows = run_producers({"ok": lambda f, s: row("ok", "torch", s, [5.0]), "broken": broken}, [0], [32, 64],
                         log=lambda _: None)
    assert [(r["system"], r["input"], "error" in r) for r in rows] == [
        ("ok", 32, False), ("broken", 32, True), ("ok", 64, False), ("broken", 64, True)]


def test_time_calls_warms_up_then_times_every_frame():
    seen = []
    times = time_calls(seen.append, [1, 2, 3], warmup=2, rounds=2, latency=lambda _, wall: 7.0)
    assert seen == [1, 2, 1, 2, 3, 1, 2, 3] and times == [7.0] * 6


def test_table_ratio_against_node():
    rows = [row("kdc_node", "torch", 320, [50.0]), row("yolo11n-pose", "torch", 320, [25.0]),
            failed_row("yolo11n-seg", "onnxruntime", 320, "export failed\ndetails")]
    table = format_table(rows)
    assert "2.00x" in table and "FAILED: export failed" in table and "details" not in table


def test_peer_setup_failure_gives_failed_rows(tmp_path, monkeypatch):
    def no_venv(spec, root=None, log=print):
        raise RuntimeError(f"pip install failed for {spec.name}")

    monkeypatch.setattr(bench_peers, "ensure_venv", no_venv)
    import numpy as np

    rows = bench_peers.peer_rows(np.zeros((2, 8, 8, 3), np.uint8), 320, venv_root=tmp_path / "venvs",
                                 log=lambda _: None)
    assert {(r["system"], r["backend"]) for r in rows} == {
        ("yolo11n-pose", "torch"), ("yolo11n-pose", "onnxruntime"), ("yolo11n-seg", "torch"),
        ("yolo11n-seg", "onnxruntime"), ("mediapipe-pose", "tflite")}
    assert all("pip install failed" in r["error"] for r in rows)
    for r in rows:
        check_row(r)
    assert not (tmp_path / "venvs").exists()


def test_repeated_runs_are_pooled():
    from kdc_ros.bench import pool_rows

    rows = pool_rows([row("a", "torch", 320, [10.0, 10.0]), failed_row("b", "torch", 320, "boom"),
                      row("a", "torch", 320, [40.0, 40.0]), row("b", "torch", 320, [5.0])])
    a, b = rows
    assert a["calls"] == 4 and a["runs"] == 2 and a["fps"] == pytest.approx(40.0) and a["p50_ms"] == 25.0
    assert "error" not in b and b["calls"] == 1
