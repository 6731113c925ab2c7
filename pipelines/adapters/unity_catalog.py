"""Publishing curated rows into a Unity Catalog table through a SQL warehouse.

One batch, in order (every step safe to repeat):

1. check the configuration and the name (``uc_push_check``): before any request that writes;
2. ``CREATE TABLE IF NOT EXISTS`` the curated table, with a table comment and column comments (first
   push only, later a no-op; a table from before ``dataset_id`` gets that column with ``ALTER TABLE``),
   and a schemaless landing table ``<table>__landing``;
3. upload the batch as Parquet to the Volume: ``<DATABRICKS_UC_VOLUME>/<catalog>.<schema>.<table>/<batch_id>.parquet``
   (the name holds the batch id, so a retry overwrites the same file);
4. ``COPY INTO`` the landing table ``FILES = ('<batch_id>.parquet')``: COPY INTO skips files it already
   loaded, so a replay adds nothing;
5. ``MERGE WITH SCHEMA EVOLUTION INTO`` the curated table from the landing rows of this batch, keyed
   by ``(row_id, dataset_id)``, rewriting only rows whose ``content_hash`` changed: a replay changes
   nothing, and a new question adds its column. A dataset version's batch also deletes, in the same
   MERGE, the rows of that dataset the version no longer holds (``WHEN NOT MATCHED BY SOURCE AND
   t.dataset_id = <id> THEN DELETE``); feed batches never delete;
6. read back the table info (columns, comment, last commit version).

Before step 2 it reads the warehouse and the table (``GET``): wrong credentials or an unknown
warehouse fail there, before any write.

Our ledger (``Push.batch_id`` succeeded) skips a batch already delivered before step 2.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipelines.adapters.databricks import DatabricksConfig
from pipelines.adapters.delta import COLUMN_COMMENTS, MERGE_CHANGED, merge_on, mirror_delete
from pipelines.adapters.errors import PermanentPipelineError

SYSTEM = "unity_catalog"
# Identifiers we accept: letters, digits and underscores (Unity Catalog folds them to lower case),
# each part backtick-quoted in every statement we send.
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
VOLUME = re.compile(r"/Volumes/[A-Za-z0-9_\-]+/[A-Za-z0-9_\-]+/[A-Za-z0-9_\-]+(/[A-Za-z0-9_.\-]+)*")
BATCH_ID = re.compile(r"[A-Za-z0-9_\-]{1,64}")
LANDING_SUFFIX = "__landing"


def uc_name_validate(name: str) -> str | None:
    """Why ``name`` is not a usable ``catalog.schema.table``, or None."""
    parts = (name or "").split(".")
    if len(parts) != 3:
        return "Give a Unity Catalog table as catalog.schema.table (three names separated by dots)."
    for label, part in zip(("catalog", "schema", "table"), parts, strict=True):
        part = part.strip("`") if part.startswith("`") and part.endswith("`") else part
        if not IDENTIFIER.fullmatch(part):
            return (
                f"The {label} name {part!r} is not valid: use letters, digits and underscores, "
                "starting with a letter or underscore."
            )
    if len(parts[2]) + len(LANDING_SUFFIX) > 255:
        return "The table name is too long."
    return None


def _parts(name: str) -> list[str]:
    return [p.strip("`").lower() for p in name.split(".")]


def uc_quote(name: str) -> str:
    return ".".join(f"`{p}`" for p in _parts(name))


def uc_push_check(config: DatabricksConfig, *, full_name: str) -> None:
    """Raise PermanentPipelineError naming what is missing, before anything is uploaded or run.

    ``config``: the workspace, its SQL warehouse (``warehouse_id``) and the Volume batches land in
    (``uc_volume``).
    """
    problem = uc_name_validate(full_name)
    if problem:
        raise PermanentPipelineError(f"invalid Unity Catalog table name {full_name!r}: {problem}", system=SYSTEM)
    if not config.configured:
        raise PermanentPipelineError("Databricks is not configured: set DATABRICKS_HOST", system=SYSTEM)
    if not config.token:
        raise PermanentPipelineError("no Databricks credentials: set DATABRICKS_TOKEN", system=SYSTEM)
    if not config.warehouse_id:
        raise PermanentPipelineError(
            "no SQL warehouse configured: set DATABRICKS_WAREHOUSE_ID (Unity Catalog pushes run COPY INTO and MERGE)",
            system=SYSTEM,
        )
    if not VOLUME.fullmatch(config.uc_volume or ""):
        raise PermanentPipelineError(
            f"DATABRICKS_UC_VOLUME={config.uc_volume!r} is not a Volume path "
            "(/Volumes/<catalog>/<schema>/<volume>[/folder])",
            system=SYSTEM,
        )


def sql_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_list(arrow_type):
        return f"ARRAY<{sql_type(arrow_type.value_type)}>"
    if pa.types.is_boolean(arrow_type):
        return "BOOLEAN"
    if pa.types.is_integer(arrow_type):
        return "BIGINT"
    if pa.types.is_floating(arrow_type):
        return "DOUBLE"
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMP"
    return "STRING"


def sql_string(text: str) -> str:
    """A single-quoted Databricks SQL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def create_table_sql(*, full_name: str, schema: pa.Schema, comment: str, column_comments: dict[str, str]) -> str:
    columns = ",\n  ".join(
        f"`{f.name}` {sql_type(f.type)}"
        + (" NOT NULL" if f.name == "row_id" else "")
        + (f" COMMENT {sql_string(column_comments[f.name])}" if column_comments.get(f.name) else "")
        for f in schema
    )
    return f"CREATE TABLE IF NOT EXISTS {uc_quote(full_name)} (\n  {columns}\n) COMMENT {sql_string(comment)}"


def merge_sql(*, full_name: str, landing: str, batch_id: str, dataset_id: int | None = None) -> str:
    """The batch's MERGE; a version's batch (``dataset_id``) also deletes its dataset's rows it no longer holds."""
    # Identifiers are validated and backtick-quoted, the batch id a validated literal, the dataset id
    # an int: no injection.
    statement = (
        f"MERGE WITH SCHEMA EVOLUTION INTO {uc_quote(full_name)} t\n"  # noqa: S608
        f"USING (SELECT * FROM {uc_quote(landing)} WHERE batch_id = {sql_string(batch_id)} "
        "QUALIFY ROW_NUMBER() OVER (PARTITION BY row_id ORDER BY pushed_at DESC) = 1) s\n"
        f"ON {merge_on(dataset_id=dataset_id)}\n"
        f"WHEN MATCHED AND ({MERGE_CHANGED}) THEN UPDATE SET *\n"
        "WHEN NOT MATCHED THEN INSERT *"
    )
    if dataset_id is not None:
        statement += f"\nWHEN NOT MATCHED BY SOURCE AND {mirror_delete(dataset_id=dataset_id)} THEN DELETE"
    return statement


def uc_push_batch(
    config: DatabricksConfig,
    *,
    full_name: str,
    batch_id: str,
    parquet: Path,
    comment: str,
    column_comments: dict[str, str],
    dataset_id: int | None = None,
) -> dict[str, Any]:
    """Deliver one batch (steps in the module docstring).

    Returns ``{"rows_written", "rows_deleted", "table_version", "table"}``.

    ``dataset_id``: the batch is that dataset's version, and the table's rows of the dataset mirror it.
    """
    import pyarrow.parquet as pq

    from pipelines.adapters.databricks import sql_statement_run, sql_warehouse_get, uc_file_upload, uc_table_get

    uc_push_check(config, full_name=full_name)
    if not BATCH_ID.fullmatch(batch_id):
        raise PermanentPipelineError(f"invalid batch id {batch_id!r}", system=SYSTEM)
    warehouse = config.warehouse_id
    catalog, schema_name, name = _parts(full_name)
    landing = f"{catalog}.{schema_name}.{name}{LANDING_SUFFIX}"
    folder = f"{config.uc_volume}/{catalog}.{schema_name}.{name}"

    # Reads first: wrong credentials or an unknown warehouse fail here, before any write request.
    if sql_warehouse_get(config, warehouse_id=warehouse) is None:
        raise PermanentPipelineError(
            f"SQL warehouse {warehouse!r} does not exist in this workspace (DATABRICKS_WAREHOUSE_ID)", system=SYSTEM
        )
    existing = uc_table_get(config, full_name=f"{catalog}.{schema_name}.{name}")
    schema = pq.read_schema(parquet)
    if existing is None:  # first push: the table, with its comments
        sql_statement_run(
            config,
            statement=create_table_sql(
                full_name=full_name, schema=schema, comment=comment, column_comments=column_comments
            ),
            warehouse_id=warehouse,
        )
    elif "dataset_id" not in {c.get("name") for c in existing.get("columns") or []}:
        # A table from before the column: the MERGE's conditions name it (old rows read null).
        sql_statement_run(
            config,
            statement=f"ALTER TABLE {uc_quote(full_name)} ADD COLUMNS "
            f"(`dataset_id` BIGINT COMMENT {sql_string(COLUMN_COMMENTS['dataset_id'])})",
            warehouse_id=warehouse,
        )
    sql_statement_run(
        config,
        statement=f"CREATE TABLE IF NOT EXISTS {uc_quote(landing)} COMMENT "
        + sql_string(f"Landing table of {catalog}.{schema_name}.{name}: raw Reviewdesk push batches (COPY INTO)."),
        warehouse_id=warehouse,
    )
    uc_file_upload(config, path=f"{folder}/{batch_id}.parquet", data=parquet.read_bytes())
    sql_statement_run(
        config,
        statement=f"COPY INTO {uc_quote(landing)} FROM {sql_string(folder)} FILEFORMAT = PARQUET "
        f"FILES = ({sql_string(batch_id + '.parquet')}) COPY_OPTIONS ('mergeSchema' = 'true')",
        warehouse_id=warehouse,
    )
    merged = sql_statement_run(
        config,
        statement=merge_sql(full_name=full_name, landing=landing, batch_id=batch_id, dataset_id=dataset_id),
        warehouse_id=warehouse,
    )
    figures = dict(zip(merged["columns"], merged["rows"][0], strict=False)) if merged["rows"] else {}
    info = uc_table_get(config, full_name=f"{catalog}.{schema_name}.{name}") or {}
    version = (info.get("properties") or {}).get("delta.lastCommitVersion")
    return {
        "rows_written": int(figures.get("num_inserted_rows", 0)) + int(figures.get("num_updated_rows", 0)),
        "rows_deleted": int(figures.get("num_deleted_rows", 0)),
        "table_version": int(version) if version is not None and str(version).isdigit() else None,
        "table": info,
    }
