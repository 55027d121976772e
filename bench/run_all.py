"""Every benchmark, one after the other, in one command:

    python bench/run_all.py

speed.py (per-step ratios), seams.py (tile seams at 2048 px), looks.py (the new looks
against the classic step), memory.py (peak RSS up to 8192 px; the longest part, several
minutes on 2 CPU cores), memory_check.py (the memory check's estimate against measured peaks).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

for script in ("speed.py", "seams.py", "looks.py", "memory.py", "memory_check.py"):
    print(f"\n=== {script}", flush=True)
    subprocess.run([sys.executable, str(HERE / script)], check=True)
