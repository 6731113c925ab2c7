"""Run every benchmark and print its figures: ``make bench`` (``ARGS=ingest`` to run one)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = [
    "ingest_rest",
    "queue_latency",
    "queue_team",
    "review_page",
    "eval_suite",
    "eval_judges",
    "dashboard",
    "export",
    "delta_push",
    "source_delta_scan",
    "source_pulls",
    "promotion",
    "monitoring",
]


def main() -> int:
    chosen = [b for b in sys.argv[1:] if not b.startswith("-")] or BENCHMARKS
    failed = []
    for name in chosen:
        print(f"\n### bench/{name}.py", flush=True)
        if subprocess.run([sys.executable, "-m", f"bench.{name}"], cwd=ROOT).returncode != 0:
            failed.append(name)
    if failed:
        print(f"\nbenchmarks that did not finish: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
