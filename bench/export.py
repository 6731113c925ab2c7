"""Export over HTTP: a dataset version of 1,000,000 curated rows downloaded as JSONL and as Parquet.

Targets: >= 50,000 rows/s for JSONL; server RSS growth <= 150 MB whatever the size. The rows are
inserted once with COPY straight into DatasetRow (setup speed: building 1M real labels through the
review services would take hours) and reused by later runs. The server is one gunicorn worker, so
its peak RSS (VmHWM) is the export's. ``--rows 100000`` (or BENCH_EXPORT_ROWS) for a quick run.
Prints figures, never asserts.
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import random
import tempfile
import time
from pathlib import Path

from bench.common import WORDS, ensure_database, print_table, server, setup_django

SLUG = "bench-export"


def canonical(n: int, texts: list[str], project_item_base: int) -> dict[str, object]:
    item_id = project_item_base + n
    return {
        "row_id": f"item-{item_id}",
        "item_id": item_id,
        "external_id": f"bench-{n}",
        "trace_id": f"tr-{n:08d}",
        "request_id": f"bench-{n}",
        "model_version": str(1 + n % 2),
        "source": "bench",
        "metadata": {"channel": "chat", "n": n},
        "request": texts[n % 997] + "?",
        "response": texts[(n * 7) % 991] + " " + texts[(n * 3) % 983],
        "retrieved_context": [
            {"content": texts[(n * 11) % 977], "doc_uri": f"kb/article-{n % 200}.md"},
            {"content": texts[(n * 13) % 971], "doc_uri": f"kb/article-{(n + 7) % 200}.md"},
        ],
        "expected_response": texts[(n * 5) % 967] if n % 3 == 0 else "",
        "expected_facts": ["fact one", "fact two"] if n % 3 == 0 else [],
        "guidelines": [],
        "feedback": {"correct": n % 4 != 0, "helpfulness": 1 + n % 5},
        "provenance": {
            "method": "consensus",
            "decided_by": None,
            "review_ids": [2 * n + 1, 2 * n + 2],
            "reviewers": ["bench-r1", "bench-r2"],
            "agreement": {"agreed": True, "questions": {"correct": {"agreed": True, "pairwise_agreement": 1.0}}},
            "schema_version": 1,
            "label_version": 1,
        },
        "item_created_at": "2026-01-01T00:00:00+00:00",
        "curated_at": "2026-01-02T00:00:00+00:00",
    }


def ensure_version(rows: int) -> tuple[int, int, float]:
    """A version of ``rows`` rows (made once); returns (dataset id, version number, average row bytes)."""
    import hashlib

    import msgspec
    from django.db import connection, transaction

    from bench.fixtures import bench_project, bench_user
    from pipelines.models import Dataset, DatasetVersion

    project = bench_project(SLUG)
    curator = bench_user(project, "bench-export-curator", "curator")
    dataset, _ = Dataset.objects.get_or_create(project=project, name=f"bench {rows}", defaults={"created_by": curator})
    version = DatasetVersion.objects.filter(dataset=dataset, row_count=rows).first()
    if version is None:
        started = time.perf_counter()
        rnd = random.Random(5)
        texts = [" ".join(rnd.choice(WORDS) for _ in range(rnd.randint(12, 40))) for _ in range(1000)]
        encode = msgspec.json.Encoder(order="sorted").encode
        digest = hashlib.sha256()
        with transaction.atomic():
            DatasetVersion.objects.filter(dataset=dataset).delete()
            version = DatasetVersion.objects.create(
                dataset=dataset, number=1, filter={"curated_only": True}, content_hash="", created_by=curator
            )
            with (
                connection.cursor() as cursor,
                cursor.connection.cursor().copy(
                    "COPY pipelines_datasetrow (version_id, position, row_id, item_id, content_hash, data) FROM STDIN"
                ) as copy,
            ):
                for n in range(rows):
                    data = encode(canonical(n, texts, 1_000_000_000))
                    row_hash = hashlib.sha256(data).hexdigest()
                    digest.update(f"item-{1_000_000_000 + n}:{row_hash}\n".encode())
                    copy.write_row(
                        (version.pk, n, f"item-{1_000_000_000 + n}", 1_000_000_000 + n, row_hash, data.decode())
                    )
            version.row_count = rows
            version.content_hash = digest.hexdigest()
            version.question_keys = ["correct", "helpfulness"]
            version.save(update_fields=["row_count", "content_hash", "question_keys"])
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE pipelines_datasetrow")  # as a long-lived table would be
        print(f"  (inserted {rows:,} rows with COPY in {time.perf_counter() - started:.1f} s)")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT avg(pg_column_size(data))::float, avg(length(data::text))::float FROM "
            "(SELECT data FROM pipelines_datasetrow WHERE version_id = %s LIMIT 2000) s",
            [version.pk],
        )
        _, text_bytes = cursor.fetchone()
    return dataset.pk, version.number, float(text_bytes)


def proc_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    return 0


def worker_pid(master: int) -> int:
    import subprocess

    children = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout.split()
    return int(children[0])


def download(port: int, path: str, token: str, sink: io.BufferedWriter | None) -> tuple[float, int, int]:
    """(seconds, bytes, newlines) for one GET, read in 1 MB pieces."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    started = time.perf_counter()
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    assert response.status == 200, (response.status, response.read()[:500])
    size = lines = 0
    while piece := response.read(1 << 20):
        size += len(piece)
        lines += piece.count(b"\n")
        if sink is not None:
            sink.write(piece)
    return time.perf_counter() - started, size, lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=int(os.environ.get("BENCH_EXPORT_ROWS", "1000000")))
    parser.add_argument("--shape", default="mlflow")
    args = parser.parse_args()
    setup_django()
    ensure_database()
    from bench.fixtures import bench_project, bench_token, bench_user

    dataset_id, number, row_bytes = ensure_version(args.rows)
    engineer = bench_user(bench_project(SLUG), "bench-export-engineer", "engineer")
    token = bench_token(engineer, ["export"])
    base = f"/api/v1/datasets/{dataset_id}/versions/{number}/export/?shape={args.shape}&compression=none"
    figures: list[tuple[str, str, str]] = [
        ("rows in the version", f"{args.rows:,}", f"~{row_bytes:.0f} B canonical JSON each")
    ]
    with server(workers=1, threads=2) as (port, master):
        pid = worker_pid(master)
        # Warm the worker (imports such as pyarrow, the connection) with tiny exports before taking its
        # memory: the growth measured is the export's, not a one-time import.
        for fmt in ("jsonl", "parquet"):
            download(port, f"/api/v1/projects/{SLUG}/curated/export/?format={fmt}&compression=none", token, None)
        for fmt in ("jsonl", "parquet"):
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset VmHWM: each format's own peak
            rss_before = proc_kb(pid, "VmRSS")
            with tempfile.NamedTemporaryFile(suffix=f".{fmt}") as out:
                seconds, size, lines = download(port, f"{base}&format={fmt}", token, out if fmt == "parquet" else None)
                rows = lines
                if fmt == "parquet":
                    import pyarrow.parquet as pq

                    out.flush()
                    rows = pq.ParquetFile(out.name).metadata.num_rows
            peak = proc_kb(pid, "VmHWM")
            growth = (peak - rss_before) / 1024
            figures += [
                (f"{fmt}: rows exported", f"{rows:,}", "= rows in the version"),
                (f"{fmt}: rows/s", f"{rows / seconds:,.0f}", "target >= 50,000" if fmt == "jsonl" else ""),
                (f"{fmt}: MB, seconds", f"{size / 1e6:,.0f} MB, {seconds:.1f} s", ""),
                (f"{fmt}: server peak RSS growth", f"{growth:.0f} MB", "target <= 150 MB"),
            ]
    print_table(f"REST export of a {args.rows:,}-row dataset version ({args.shape} shape)", figures)


if __name__ == "__main__":
    main()
