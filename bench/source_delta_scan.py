"""Delta source scan: 1,000,000 request-log rows read incrementally from a local Delta table.

Target: >= 100,000 rows/s through ``delta_table_read`` (rows mapped to item-shaped dicts: chat
requests parsed, retrieved context from JSON, aware timestamps), with memory flat: the resident set
while reading does not grow with the rows read. The table (10 appends of 100,000 rows, so 10 table
versions) is written by a child process, so its memory does not count. Beside our figure, the
machine's limit in the same run: a bare pyarrow scan of the same files to Python dicts
(``RecordBatch.to_pylist``), which no reader that hands out dicts can beat. ``--rows N`` (or
BENCH_SOURCE_ROWS) for another size; ``--batch N`` for the batch size. Prints figures, never asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAPPING = {
    "request": "request",
    "response": "response",
    "retrieved_context": "retrieved_context",
    "model_version": "model_version",
    "trace_id": "trace_id",
    "timestamp": "timestamp",
}
METADATA = ["endpoint", "latency_ms"]
VERSIONS = 10


def write_table(uri: str, rows: int) -> None:
    """The source table: ``VERSIONS`` appends, each one table version (run in a child process)."""
    import random
    from datetime import UTC, datetime, timedelta

    import pyarrow as pa
    from deltalake import write_deltalake

    from bench.common import WORDS

    rnd = random.Random(7)
    texts = [" ".join(rnd.choice(WORDS) for _ in range(rnd.randint(8, 40))) for _ in range(500)]
    start = datetime(2026, 3, 1, tzinfo=UTC)
    per_version = -(-rows // VERSIONS)
    for v in range(VERSIONS):
        lo, hi = v * per_version, min(rows, (v + 1) * per_version)
        n = range(lo, hi)
        table = pa.table(
            {
                "request": [
                    json.dumps({"messages": [{"role": "user", "content": texts[i % 500]}]}) if i % 2 else texts[i % 500]
                    for i in n
                ],
                "response": [texts[(i * 7) % 500] for i in n],
                "retrieved_context": [
                    json.dumps([{"content": texts[(i + k) % 500], "doc_uri": f"doc-{(i + k) % 97}"} for k in range(2)])
                    for i in n
                ],
                "model_version": pa.array([1 + i % 3 for i in n], pa.int64()),
                "trace_id": [f"tr-{i:09d}" for i in n],
                "timestamp": pa.array([start + timedelta(milliseconds=i) for i in n], pa.timestamp("us", tz="UTC")),
                "endpoint": ["chat-prod"] * len(n),
                "latency_ms": pa.array([rnd.randint(50, 4000) for _ in n], pa.int64()),
            }
        )
        write_deltalake(uri, table, mode="append")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def bare_scan(uri: str) -> tuple[int, float, float]:
    """(rows, wall s, CPU s) of pyarrow reading the table's files straight into Python dicts, timestamps
    as plain integers and no value parsed: the machine's limit for any reader that hands out dicts."""
    import pyarrow as pa
    from deltalake import DeltaTable

    dataset = DeltaTable(uri).to_pyarrow_dataset()
    columns = [*MAPPING.values(), *METADATA]
    wall, cpu = time.perf_counter(), time.process_time()
    rows = 0
    for batch in dataset.to_batches(columns=columns, batch_size=1000, use_threads=False):
        index = batch.schema.get_field_index("timestamp")
        batch = batch.set_column(index, "timestamp", batch.column(index).cast(pa.int64()))
        rows += len(batch.to_pylist())
    return rows, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=int(os.environ.get("BENCH_SOURCE_ROWS", "1000000")))
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--write", help=argparse.SUPPRESS)  # child process: write the table here
    args = parser.parse_args()
    if args.write:
        write_table(args.write, args.rows)
        return

    from pipelines.adapters.delta import DeltaConfig, delta_table_read

    with tempfile.TemporaryDirectory(prefix="bench-source-delta-") as folder:
        uri = str(Path(folder) / "request_log")
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "bench.source_delta_scan", "--rows", str(args.rows), "--write", uri],
            cwd=ROOT,
            check=True,
        )
        print(f"  (wrote {args.rows:,} rows in {VERSIONS} versions in {time.perf_counter() - started:.1f} s)")

        baseline = rss_mb()
        samples: list[tuple[int, float]] = []
        read = batches = 0
        started, cpu = time.perf_counter(), time.process_time()
        for batch in delta_table_read(
            DeltaConfig(), uri=uri, mapping=MAPPING, metadata_columns=METADATA, batch_size=args.batch
        ):
            read += batch.scanned
            batches += 1
            if batches % 50 == 0:
                samples.append((read, rss_mb()))
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        tenth = next((mb for n, mb in samples if n >= args.rows // 10), baseline)
        last = samples[-1][1] if samples else rss_mb()

        bare_rows, bare_seconds, bare_cpu = bare_scan(uri)

    from bench.common import print_table

    print_table(
        f"Delta source scan: {read:,} rows in {VERSIONS} versions, batches of {args.batch}",
        [
            ("rows read", f"{read:,}", f"all {args.rows:,}, each once"),
            ("scan rate", f"{read / seconds:,.0f} rows/s", "target >= 100,000 rows/s"),
            ("machine limit", f"{bare_rows / bare_seconds:,.0f} rows/s", "bare pyarrow scan to dicts, same files"),
            ("scan rate (CPU)", f"{read / cpu_seconds:,.0f} rows/s", "per CPU second: fairer on a busy machine"),
            ("limit (CPU)", f"{bare_rows / bare_cpu:,.0f} rows/s", ""),
            ("time", f"{seconds:.1f} s", f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"),
            ("RSS before read", f"{baseline:,.0f} MB", ""),
            ("RSS at 10% read", f"{tenth:,.0f} MB", "flat: about the same as at 100%"),
            ("RSS at 100% read", f"{last:,.0f} MB", ""),
            ("peak RSS", f"{peak:,.0f} MB", "whole process (the table was written by a child)"),
        ],
    )


if __name__ == "__main__":
    main()
