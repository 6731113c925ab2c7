"""Delta pushes to an object store: the real ``deltalake`` over HTTP against a real ``moto_server`` (S3).

The server runs as a subprocess with IAM authentication on, so requests are signed and checked: a
wrong secret is refused the way AWS refuses it. Round trip, exactly-once (a re-push makes no commit),
schema evolution, conditional puts (a concurrent commit is never overwritten), wrong credentials and
a store that does not answer (bounded timeouts, a retryable error, no secret in any message).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pytest
import requests
from deltalake import DeltaTable

from pipelines.adapters import delta
from pipelines.adapters.errors import PermanentPipelineError, TransientPipelineError
from pipelines.datasets.pushes import delivery_target_create, push_create, push_execute
from pipelines.models import Push
from pipelines.wiring import delta_config
from reviewapp.services.projects import question_create
from tests.pipelines.test_delta_push import canonical, make_version, row_hash

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]
BUCKET = "bucket"
URI = f"s3://{BUCKET}/reviewdesk/curated"
PREFIX = "reviewdesk/curated/"
REGION = "eu-west-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class S3Server:
    url: str
    key_id: str
    secret: str
    log: Path

    def options(self, **overrides: str) -> dict[str, str]:
        """DELTA_STORAGE_OPTIONS for this server (deltalake's S3 keys)."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": self.key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_REGION": REGION,
            "AWS_ALLOW_HTTP": "true",
            **overrides,
        }

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=self.key_id,
            aws_secret_access_key=self.secret,
            region_name=REGION,
        )


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto_server on a free port, with an IAM user allowed s3:* and authentication switched on."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    moto_server = str(Path(sys.executable).parent / "moto_server")
    with log.open("wb") as out:
        process = subprocess.Popen([moto_server, "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{url}/moto-api/data.json", timeout=1).raise_for_status()
                break
            except requests.RequestException:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.1)
        # Until authentication is switched on, any key is accepted: set up the user and the bucket.
        setup = {"endpoint_url": url, "aws_access_key_id": "setup", "aws_secret_access_key": "setup"}
        iam = boto3.client("iam", region_name="us-east-1", **setup)
        iam.create_user(UserName="reviewdesk")
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        iam.put_user_policy(UserName="reviewdesk", PolicyName="delta", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="reviewdesk")["AccessKey"]
        boto3.client("s3", region_name=REGION, **setup).create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        # From now on every request must be signed with a known key.
        requests.post(f"{url}/moto-api/reset-auth", data="0", timeout=5).raise_for_status()
        yield S3Server(url=url, key_id=key["AccessKeyId"], secret=key["SecretAccessKey"], log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def s3(s3_server: S3Server, settings: Any) -> S3Server:
    """An empty bucket, and the settings a deployment on this store would have."""
    client = s3_server.client()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=obj["Key"])
    settings.DELTA_STORAGE_OPTIONS = s3_server.options()
    settings.DELTA_STORAGE_TIMEOUT_SECONDS = 5
    # The operator allows the buckets these tests write to (no-such-bucket: to see the store refuse it).
    settings.DELTA_ALLOWED_ROOTS = [f"s3://{BUCKET}/reviewdesk/", "s3://no-such-bucket/"]
    return s3_server


def keys(server: S3Server) -> list[str]:
    listed = server.client().list_objects_v2(Bucket=BUCKET, Prefix=PREFIX)
    return sorted(obj["Key"] for obj in listed.get("Contents", []))


def s3_push(project: Any, version: Any, uri: str = URI) -> Push:
    target = delivery_target_create(project=project, kind="delta", target=uri, user=None)
    push = push_create(project=project, dataset_version=version, delivery_target=target, user=None)
    push_execute(push_id=push.pk)
    push.refresh_from_db()
    return push


@pytest.mark.slow
def test_a_version_is_pushed_to_s3_and_read_back_and_a_re_push_writes_nothing(project, s3: S3Server) -> None:
    version = make_version(project, [canonical(n) for n in range(1, 4)])

    push = s3_push(project, version)

    assert push.status == Push.Status.SUCCEEDED, push.error
    assert (push.target, push.rows_total, push.rows_written, push.table_version) == (URI, 3, 3, 0)
    table = DeltaTable(URI, storage_options=s3.options())
    rows = {r["row_id"]: r for r in table.to_pyarrow_table().to_pylist()}
    assert set(rows) == {"item-1", "item-2", "item-3"}
    assert rows["item-2"]["feedback_correct"] is True and rows["item-2"]["batch_id"] == push.batch_id
    assert table.transaction_version(push.batch_id) == 1
    stored = keys(s3)
    assert f"{PREFIX}_delta_log/00000000000000000000.json" in stored
    assert any(k.endswith(".parquet") for k in stored)

    again = s3_push(project, version)  # our ledger: the same batch already succeeded
    Push.objects.filter(pk__in=[push.pk, again.pk]).update(status=Push.Status.FAILED)
    replayed = s3_push(project, version)  # no ledger: the Delta transaction in the S3 log says "applied"

    for later in (again, replayed):
        assert later.status == Push.Status.SUCCEEDED and later.skipped, later.error
        assert (later.rows_written, later.table_version) == (0, 0)
    assert keys(s3) == stored  # no commit, no data file
    assert DeltaTable(URI, storage_options=s3.options()).version() == 0


def test_a_new_question_evolves_the_s3_table(project, s3: S3Server) -> None:
    first = s3_push(project, make_version(project, [canonical(n) for n in range(1, 4)]))
    question_create(project=project, key="tone", title="Tone ok?", kind="pass_fail", required=False)
    changed = canonical(3, feedback={"correct": True, "helpfulness": 5, "issue": "none", "tone": False})
    new = canonical(4, feedback={"correct": True, "helpfulness": 2, "issue": "wrong", "tone": True})
    v2 = make_version(
        project, [canonical(1), canonical(2), changed, new], keys=["correct", "helpfulness", "issue", "tone"]
    )

    second = s3_push(project, v2)

    assert second.status == Push.Status.SUCCEEDED, second.error
    assert (second.rows_total, second.rows_written, second.table_version) == (4, 2, 1)
    table = DeltaTable(URI, storage_options=s3.options())
    rows = {r["row_id"]: r for r in table.to_pyarrow_table().to_pylist()}
    assert len(rows) == 4 and rows["item-1"]["feedback_tone"] is None and rows["item-1"]["dataset_version"] == 1
    assert rows["item-3"]["feedback_tone"] is False and rows["item-4"]["feedback_tone"] is True
    assert [h["operation"] for h in table.history()] == ["MERGE", "WRITE"]
    old = delta.delta_read(delta_config(), uri=URI, version=first.table_version)  # time travel, through the adapter
    assert old.num_rows == 3 and "feedback_tone" not in old.column_names


def test_a_commit_by_another_writer_is_never_overwritten(s3: S3Server) -> None:
    """Another writer commits version 1 while our MERGE runs: our commit goes to version 2 (S3 conditional put)."""
    schema = delta.row_schema(feedback_kinds={"correct": "pass_fail"})
    foreign = json.dumps({"commitInfo": {"timestamp": 1, "operation": "OTHER WRITER"}}) + "\n"

    def rows(batch: str, ns: range) -> list[dict[str, Any]]:
        return [
            delta.flat_row(
                canonical(n),
                feedback_types={"correct": pa.bool_()},
                content_hash=row_hash(canonical(n)),
                dataset_version=None,
                batch_id=batch,
                pushed_at=datetime.now(tz=UTC),
            )
            for n in ns
        ]

    delta.delta_merge_batch(
        delta_config(), uri=URI, batch_id="b-1", source=delta.record_batches(rows("b-1", range(2)), schema=schema)
    )

    def racing() -> Iterator[pa.RecordBatch]:
        yield pa.RecordBatch.from_pylist(rows("b-2", range(2, 3)), schema=schema)
        # our MERGE read version 0; the other writer commits version 1 now
        s3.client().put_object(Bucket=BUCKET, Key=f"{PREFIX}_delta_log/00000000000000000001.json", Body=foreign)
        yield pa.RecordBatch.from_pylist(rows("b-2", range(3, 4)), schema=schema)

    result = delta.delta_merge_batch(
        delta_config(), uri=URI, batch_id="b-2", source=pa.RecordBatchReader.from_batches(schema, racing())
    )

    assert (result.version, result.rows_inserted) == (2, 2)
    body = s3.client().get_object(Bucket=BUCKET, Key=f"{PREFIX}_delta_log/00000000000000000001.json")["Body"]
    assert body.read().decode() == foreign  # the other writer's commit is intact
    table = DeltaTable(URI, storage_options=s3.options())
    assert [h["operation"] for h in table.history()] == ["MERGE", "OTHER WRITER", "WRITE"]
    assert sorted(table.to_pyarrow_table(columns=["row_id"]).column("row_id").to_pylist()) == [
        f"item-{n}" for n in range(4)
    ]
    assert delta.delta_batch_version(delta_config(), uri=URI, batch_id="b-2") == 2


@pytest.mark.parametrize("wrong", ["AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"])
def test_wrong_credentials_fail_the_push_clearly_without_the_secret(project, s3: S3Server, settings, wrong) -> None:
    bad_value = "wrong-" + ("s" * 30 if wrong == "AWS_SECRET_ACCESS_KEY" else "AKIAWRONGKEY")
    settings.DELTA_STORAGE_OPTIONS = s3.options(**{wrong: bad_value})
    version = make_version(project, [canonical(1)])

    push = s3_push(project, version)

    assert push.status == Push.Status.FAILED and push.finished_at is not None and push.attempts == 1
    assert push.error.startswith("PermanentPipelineError: open Delta table s3://bucket/reviewdesk/curated")
    assert "access denied: check the credentials in DELTA_STORAGE_OPTIONS" in push.error
    # the store's answer and where it came from
    code = "SignatureDoesNotMatch" if wrong == "AWS_SECRET_ACCESS_KEY" else "InvalidAccessKeyId"
    assert "403 Forbidden" in push.error and code in push.error and s3.url in push.error
    for secret in (bad_value, s3.secret, s3.key_id):
        assert secret not in push.error
    assert "\x1b[" not in push.error and "\n" not in push.error
    assert keys(s3) == []  # nothing written


def test_a_missing_bucket_fails_the_push_for_good(project, s3: S3Server) -> None:
    push = s3_push(project, make_version(project, [canonical(1)]), uri="s3://no-such-bucket/reviewdesk/curated")

    assert push.status == Push.Status.FAILED and "NoSuchBucket" in push.error, push.error
    assert push.error.startswith("PermanentPipelineError: open Delta table s3://no-such-bucket/reviewdesk/curated")


def test_only_a_403_status_means_access_denied() -> None:
    timed_out = "Error performing GET http://127.0.0.1:40312/bucket/t in 1.000403s - HTTP error: timed out"
    assert isinstance(delta._error("open", OSError(timed_out), None), TransientPipelineError)
    denied = delta._error("open", OSError("GET http://127.0.0.1:9000/bucket/t - 403 Forbidden"), None)
    assert isinstance(denied, PermanentPipelineError) and "access denied" in denied.message


class SilentServer:
    """Accepts TCP connections and never answers: a store that hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"


@pytest.mark.parametrize("endpoint", ["silent", "refused"])
def test_an_unreachable_store_fails_the_push_quickly_and_it_is_retried(project, s3, settings, endpoint) -> None:
    silent = SilentServer()
    try:
        url = silent.url if endpoint == "silent" else f"http://127.0.0.1:{free_port()}"
        settings.DELTA_STORAGE_OPTIONS = s3.options(AWS_ENDPOINT_URL=url)
        settings.DELTA_STORAGE_TIMEOUT_SECONDS = 1
        version = make_version(project, [canonical(1)])
        target = delivery_target_create(project=project, kind="delta", target=URI, user=None)
        push = push_create(project=project, dataset_version=version, delivery_target=target, user=None)

        started = time.monotonic()
        with pytest.raises(TransientPipelineError) as caught:
            push_execute(push_id=push.pk)
        elapsed = time.monotonic() - started
    finally:
        silent.sock.close()

    # object_store's own defaults (30 s per request, retries for 3 minutes) would hold the worker
    assert elapsed < 10, elapsed
    push.refresh_from_db()
    assert push.status == Push.Status.QUEUED and push.lease_owner == "" and push.attempts == 1  # the task retries
    assert push.error.startswith("TransientPipelineError: open Delta table s3://bucket/reviewdesk/curated")
    assert url in push.error and s3.secret not in push.error and s3.secret not in str(caught.value)
