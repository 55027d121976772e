"""The GPU benchmark keeps working: its small form runs here on the CPU, as CI runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_gpu_benchmark_runs_in_its_small_form_and_reports_every_figure():
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu.py"), "--small", "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    assert "matmul GFLOP/s: fp32" in out and "== googlenet inception4c" in out and "== efficientnet_lite0" in out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith("96 ")]
    assert len(rows) == 4  # two networks x fp32 and bf16
    for row in rows:
        estimate_over_peak = float(row[-1].rstrip("x"))
        assert 1.0 <= estimate_over_peak <= 1.3, row  # the memory estimate holds on every row
    assert out.count("node call / bare engine") == 2
