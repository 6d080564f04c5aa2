"""`make bench` runs (a short run here) and prints every figure the performance issue names."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIGURES = (
    "overhead_p50_ms_sqlite",
    "overhead_p99_ms_sqlite",
    "throughput_ratio_sqlite",
    "max_loop_stall_ms_2048",
    "max_loop_stall_ms_4096",
    "peak_memory_per_image_ratio",
    "statements_per_warm_turn",
)


def test_the_bench_prints_every_figure_as_name_and_number() -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL")}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    printed = dict(re.findall(r"^(\w+): (-?\d+(?:\.\d+)?)$", done.stdout, re.MULTILINE))
    assert set(FIGURES) <= set(printed), done.stdout
    assert float(printed["statements_per_warm_turn"]) > 0
    assert float(printed["peak_memory_per_image_ratio"]) > 0
