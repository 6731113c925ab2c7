"""Unity Catalog routes of the local Databricks workspace: Files API (Volumes), SQL statements, tables.

A mixin of :class:`tests.fakes.databricks_api.FakeDatabricks`; its state lives in plain dicts
created by ``_uc_init``. Faithful to the REST API as databricks-sdk 0.162.0 sends it (checked in
``databricks/sdk/mixins/files.py``, ``service/files.py``, ``service/sql.py``, ``service/catalog.py``):

- ``PUT /api/2.0/fs/files{path}?overwrite=true|false`` with the raw bytes as
  ``application/octet-stream`` (the path URL-quoted); ``GET`` of the same path returns the bytes;
  ``GET /api/2.0/fs/directories{path}`` lists a folder. Paths must be under ``/Volumes/<c>/<s>/<v>/``.
- ``POST /api/2.0/sql/statements`` (``statement``, ``warehouse_id``, ``wait_timeout`` "0s" or
  "5s".."50s") and ``GET /api/2.0/sql/statements/{id}``. A small SQL subset really runs:
  ``CREATE TABLE IF NOT EXISTS <t> [(cols)] [COMMENT '...']``, ``COPY INTO <t> FROM '<dir>'
  FILEFORMAT = PARQUET [FILES = (...)] [COPY_OPTIONS (...)]`` (reads the Parquet files with pyarrow
  and, like the real COPY INTO, skips files it already loaded), ``ALTER TABLE <t> ADD COLUMNS (cols)``,
  ``MERGE [WITH SCHEMA EVOLUTION] INTO <t> t USING (SELECT * FROM <landing> WHERE batch_id = '<id>'
  ...) s ON <cond> WHEN MATCHED AND <cond> THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT * [WHEN NOT
  MATCHED BY SOURCE [AND <cond>] THEN DELETE]``, ``SELECT COUNT(*) FROM <t>`` and ``SELECT <cols> FROM <t>
  [WHERE <cond>] [ORDER BY <col> [ASC|DESC], ...] [LIMIT <n>]`` whose conditions may compare with ``<``,
  ``>``, ``<=``, ``>=`` and use named parameter markers (``:name``), bound from the request's
  ``parameters`` (``{name, value, type}``; no value is NULL; type defaults to STRING and the value is
  cast to it, a value that does not cast fails with INVALID_PARAMETER_MARKER_VALUE, a marker without
  a parameter with UNBOUND_SQL_PARAMETER). Conditions really
  are evaluated, with SQL's three-valued logic (``=``, ``<>``, ``<=>``, ``IS [NOT] NULL``, ``IS [NOT]
  DISTINCT FROM``, ``AND``, ``OR``, ``NOT``, parentheses, ``t.``/``s.`` columns, integer and string
  literals); a column the table does not have is UNRESOLVED_COLUMN (the ON clause sees the target as
  it was before schema evolution), and a NOT MATCHED BY SOURCE condition may name target columns only,
  as on Databricks. A target row matched by two source rows fails the MERGE. Anything else FAILS with
  ``PARSE_SYNTAX_ERROR``. Column types are checked as Delta does: COPY INTO types the landing table's
  columns by what its Parquet files read as (``PARQUET_READS_AS``, this fake's own table), and a COPY or
  MERGE whose incoming column type differs from the table's declared one fails with
  ``DELTA_FAILED_TO_MERGE_FIELDS``, so a wrong type in a CREATE TABLE fails the push.
- ``GET /api/2.0/sql/warehouses/{id}``: the warehouse (RUNNING), 404 for an unknown id.
- ``GET /api/2.1/unity-catalog/tables/{full_name}``: a TableInfo with columns and comments.

Results are ``INLINE`` in ``JSON_ARRAY`` format (every value a string or null, as Databricks sends
them: numbers as text, TIMESTAMP as ISO 8601 UTC with a ``Z``, arrays and structs as JSON text) and
split into chunks of ``result_chunk_rows`` rows: the first inline in the statement (``result`` with
``next_chunk_index``/``next_chunk_internal_link``), the others from ``GET
/api/2.0/sql/statements/{id}/result/chunks/{n}``; the manifest lists the chunks and the column types.
Another disposition or format is refused with 400, as Databricks refuses INLINE with ARROW_STREAM/CSV
(EXTERNAL_LINKS is not served by this fake). ``table_create(name, columns, rows)`` seeds a table as if
another workspace job had written it.

``statement_polls = n`` makes each statement report PENDING/RUNNING for its first ``n`` reads, so
clients must poll ``get_statement``. Unknown warehouse → 404, wrong token → 401, as Databricks does.
"""

from __future__ import annotations

import io
import itertools
import re
import time
import uuid
from typing import Any
from urllib.parse import unquote

from tests.fakes.http import Reply, Request, route

# ruff: noqa: S608  (the regexes below parse SQL; nothing here builds a query)

STATEMENT_KEYS = {
    "statement",
    "warehouse_id",
    "wait_timeout",
    "on_wait_timeout",
    "catalog",
    "schema",
    "parameters",
    "disposition",
    "format",
    "byte_limit",
    "row_limit",
    "query_tags",
}
WAIT_TIMEOUT = re.compile(r"0s|([5-9]|[1-4][0-9]|50)s")
VOLUME_PATH = re.compile(r"/Volumes/[^/]+/[^/]+/[^/]+/.+")
NAME = r"(?P<{0}>(?:`[^`]+`|[A-Za-z0-9_]+)(?:\.(?:`[^`]+`|[A-Za-z0-9_]+)){{2}})"
FLAGS = re.I | re.S
CREATE = re.compile(
    r"\s*CREATE TABLE IF NOT EXISTS " + NAME.format("name") + r"(?:\s*\((?P<cols>.*)\))?"
    r"(?:\s*COMMENT\s+'(?P<comment>(?:[^'\\]|\\.)*)')?\s*;?\s*",
    FLAGS,
)
COPY = re.compile(
    r"\s*COPY INTO " + NAME.format("name") + r"\s+FROM\s+'(?P<dir>[^']+)'\s+FILEFORMAT\s*=\s*PARQUET"
    r"(?:\s+FILES\s*=\s*\((?P<files>[^)]*)\))?(?:\s+COPY_OPTIONS\s*\((?P<options>[^)]*)\))?\s*;?\s*",
    FLAGS,
)
MERGE = re.compile(
    r"\s*MERGE (?P<evolve>WITH SCHEMA EVOLUTION )?INTO " + NAME.format("target") + r"\s+(?:AS\s+)?t\s+"
    r"USING\s+\(\s*SELECT \* FROM " + NAME.format("source") + r"\s+WHERE\s+batch_id\s*=\s*'(?P<batch>[^']+)'"
    r"(?P<dedup>\s+QUALIFY\s+ROW_NUMBER\(\)\s+OVER\s*\(PARTITION BY row_id ORDER BY pushed_at DESC\)\s*=\s*1)?\s*\)"
    r"\s+(?:AS\s+)?s\s+ON\s+(?P<on>.+?)\s+"
    r"WHEN MATCHED AND (?P<changed>.+?) THEN UPDATE SET \*\s+"
    r"WHEN NOT MATCHED THEN INSERT \*"
    r"(?:\s+WHEN NOT MATCHED BY SOURCE(?:\s+AND\s+(?P<by_source>.+?))?\s+THEN\s+(?P<by_source_action>.+?))?\s*;?\s*",
    FLAGS,
)
ALTER = re.compile(r"\s*ALTER TABLE " + NAME.format("name") + r"\s+ADD COLUMNS?\s*\((?P<cols>.*)\)\s*;?\s*", FLAGS)
COUNT = re.compile(r"\s*SELECT COUNT\(\*\) FROM " + NAME.format("name") + r"\s*;?\s*", FLAGS)
SELECT = re.compile(
    r"\s*SELECT\s+(?P<cols>.+?)\s+FROM\s+" + NAME.format("name") + r"(?:\s+WHERE\s+(?P<where>.+?))?"
    r"(?:\s+ORDER BY\s+(?P<order>.+?))?(?:\s+LIMIT\s+(?P<limit>\d+))?\s*;?\s*",
    FLAGS,
)
IDENT = r"`[^`]+`|[A-Za-z_][A-Za-z0-9_]*"
ORDER_TERM = re.compile(rf"(?P<col>{IDENT})(?:\s+(?P<dir>ASC|DESC))?", re.I)
PARAMETER_TYPES = {"STRING", "BIGINT", "INT", "SMALLINT", "TINYINT", "TIMESTAMP", "TIMESTAMP_NTZ", "DATE", "DOUBLE"}
SCALAR_TYPES = {
    "BOOLEAN",
    "TINYINT",
    "SMALLINT",
    "INT",
    "BIGINT",
    "FLOAT",
    "DOUBLE",
    "STRING",
    "BINARY",
    "DATE",
    "TIMESTAMP",
    "TIMESTAMP_NTZ",
}
SQL_TYPES = SCALAR_TYPES | {f"ARRAY<{t}>" for t in SCALAR_TYPES}
# TableInfo's type_name for the types whose name differs from their SQL spelling.
TYPE_NAMES = {
    "TINYINT": "BYTE",
    "SMALLINT": "SHORT",
    "BIGINT": "LONG",
    **{f"ARRAY<{t}>": "ARRAY" for t in SCALAR_TYPES},
}
# What Databricks reads a Parquet column written by pyarrow as: the Parquet physical/logical type of
# each Arrow type (pyarrow's Parquet writer) and the Spark SQL type Databricks gives it when reading
# Parquet (Databricks SQL "Data types" reference: BOOLEAN, TINYINT, SMALLINT, INT, BIGINT, FLOAT,
# DOUBLE, STRING, BINARY, DATE, TIMESTAMP, TIMESTAMP_NTZ, ARRAY<elementType>). A timestamp adjusted
# to UTC (an Arrow timestamp with a time zone) reads as TIMESTAMP; one without reads as TIMESTAMP_NTZ;
# nanosecond timestamps and anything not listed are refused (Databricks cannot read them as such).
# Written out here on purpose, not derived from pipelines.adapters.unity_catalog: the fake checks
# the types production declares against this table, so a wrong mapping there fails like on Databricks.
PARQUET_READS_AS = {
    "bool": "BOOLEAN",
    "int8": "TINYINT",
    "int16": "SMALLINT",
    "int32": "INT",
    "int64": "BIGINT",
    "uint8": "SMALLINT",
    "uint16": "INT",
    "uint32": "BIGINT",
    "float": "FLOAT",
    "double": "DOUBLE",
    "string": "STRING",
    "large_string": "STRING",
    "binary": "BINARY",
    "large_binary": "BINARY",
    "date32[day]": "DATE",
    "timestamp[ms, tz=UTC]": "TIMESTAMP",
    "timestamp[us, tz=UTC]": "TIMESTAMP",
    "timestamp[ms]": "TIMESTAMP_NTZ",
    "timestamp[us]": "TIMESTAMP_NTZ",
}


def error(status: int, code: str, message: str) -> Reply:
    return Reply(status, {"error_code": code, "message": message})


def _unquote_name(name: str) -> str:
    return ".".join(part.strip("`") for part in re.findall(r"`[^`]+`|[A-Za-z0-9_]+", name)).lower()


def _split_columns(text: str) -> list[str]:
    """Top-level comma split, outside quotes and <...>."""
    parts, depth, quote, current, escaped = [], 0, False, [], False
    for char in text:
        if quote:
            current.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == "'":
                quote = False
            continue
        if char == "'":
            quote = True
        elif char == "<":
            depth += 1
        elif char == ">":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    if "".join(current).strip():
        parts.append("".join(current).strip())
    return parts


COLUMN = re.compile(
    r"(?P<name>`[^`]+`|[A-Za-z0-9_]+)\s+(?P<type>[A-Za-z_]+(?:<[A-Za-z_]+>)?)(?P<notnull>\s+NOT NULL)?"
    r"(?:\s+COMMENT\s+'(?P<comment>(?:[^'\\]|\\.)*)')?",
    FLAGS,
)


def _sql_string(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def parquet_column_type(arrow_type: Any) -> str:
    """The SQL type Databricks reads a Parquet column of ``arrow_type`` as (``PARQUET_READS_AS``)."""
    import pyarrow as pa

    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return f"ARRAY<{parquet_column_type(arrow_type.value_type)}>"
    name = str(arrow_type).replace("tz=+00:00", "tz=UTC")
    if name not in PARQUET_READS_AS:
        raise SqlError("UNSUPPORTED_DATATYPE", f"[UNSUPPORTED_DATATYPE] This workspace fake reads no Parquet {name}.")
    return PARQUET_READS_AS[name]


def _type_clash(name: str, ours: str, theirs: str) -> SqlError:
    # Delta merges the incoming schema into the table's and refuses a column whose type differs.
    return SqlError(
        "DELTA_FAILED_TO_MERGE_FIELDS",
        f"[DELTA_FAILED_TO_MERGE_FIELDS] Failed to merge fields '{name}' and '{name}': "
        f"the table has {ours}, the incoming data {theirs}.",
    )


class UnityCatalogMixin:
    token: str
    workspace_id: str

    def _uc_init(self) -> None:
        self.volume_files: dict[str, bytes] = {}
        # full name (lower case, unquoted) -> {"columns": [{"name","type","comment","nullable"}], "comment",
        #   "rows": {row_id: row} (or "landing": [rows] for tables written by COPY INTO), "loaded_files": set()}
        self.tables: dict[str, dict[str, Any]] = {}
        self.warehouses: set[str] = {"wh-reviewdesk"}
        self.statements: dict[str, dict[str, Any]] = {}
        self.statement_log: list[str] = []  # every SQL text received, in order
        self.parameter_log: list[list[dict[str, Any]]] = []  # the parameters of each, in order
        self.statement_chunks: dict[str, list[dict[str, Any]]] = {}
        self.statement_polls = 0
        self.result_chunk_rows = 1000  # rows per result chunk
        self._uc_ids = itertools.count(1)

    # --- helpers for tests -------------------------------------------------------------------

    def writes(self) -> list[Request]:
        """Requests that could change state: file uploads and SQL statements."""
        return [
            r  # type: ignore[attr-defined]
            for r in self.requests  # type: ignore[attr-defined]
            if (r.method == "PUT" and r.path.startswith("/api/2.0/fs/files"))
            or (r.method == "POST" and r.path == "/api/2.0/sql/statements")
        ]

    def table_create(self, full_name: str, columns: dict[str, str], rows: list[dict[str, Any]]) -> None:
        """A table with ``columns`` (name -> SQL type, e.g. "TIMESTAMP", "ARRAY<STRING>", "STRUCT<...>")
        and ``rows`` (Python values: aware datetimes for TIMESTAMP, lists/dicts for ARRAY/STRUCT)."""
        self.tables[_unquote_name(full_name)] = {
            "columns": [{"name": n, "type": t.upper(), "comment": "", "nullable": True} for n, t in columns.items()],
            "comment": "",
            "created_at": int(time.time() * 1000),
            "table_id": str(uuid.uuid4()),
            "version": 1,
            "rows": [dict(r) for r in rows],
        }

    def table_rows(self, full_name: str) -> list[dict[str, Any]]:
        table = self.tables[_unquote_name(full_name)]
        return list(table["rows"]) if "rows" in table else list(table["landing"])

    # --- Files API -----------------------------------------------------------------------------

    @route("PUT", r"/api/2\.0/fs/files(?P<path>/.+)")
    def files_upload(self, request: Request) -> Reply:
        denied = self.check_auth(request)  # type: ignore[attr-defined]
        if denied:
            return denied
        path = unquote(request.params["path"])
        if not VOLUME_PATH.fullmatch(path):
            return error(
                400, "INVALID_PARAMETER_VALUE", f"Path must be under /Volumes/<catalog>/<schema>/<volume>/: {path}"
            )
        if request.headers.get("content-type") != "application/octet-stream":
            return error(400, "INVALID_PARAMETER_VALUE", "The body must be application/octet-stream.")
        overwrite = request.query.get("overwrite", ["false"])[0]
        if overwrite not in ("true", "false"):
            return error(400, "INVALID_PARAMETER_VALUE", f"overwrite must be true or false, not {overwrite!r}")
        if path in self.volume_files and overwrite != "true":
            return error(409, "ALREADY_EXISTS", f"The file {path} already exists.")
        self.volume_files[path] = request.raw
        return Reply(204, None)

    @route("GET", r"/api/2\.0/fs/files(?P<path>/.+)")
    def files_download(self, request: Request) -> Reply:
        denied = self.check_auth(request)  # type: ignore[attr-defined]
        if denied:
            return denied
        path = unquote(request.params["path"])
        if path not in self.volume_files:
            return error(404, "NOT_FOUND", f"The file {path} does not exist.")
        data = self.volume_files[path]
        return Reply(200, data, headers={"Content-Type": "application/octet-stream"})

    @route("GET", r"/api/2\.0/fs/directories(?P<path>/.+)")
    def directories_list(self, request: Request) -> Reply:
        denied = self.check_auth(request)  # type: ignore[attr-defined]
        if denied:
            return denied
        folder = unquote(request.params["path"]).rstrip("/") + "/"
        contents = [
            {"path": p, "name": p.rsplit("/", 1)[1], "is_directory": False, "file_size": len(b)}
            for p, b in sorted(self.volume_files.items())
            if p.startswith(folder) and "/" not in p[len(folder) :]
        ]
        if not contents:
            return error(404, "NOT_FOUND", f"The directory {folder} does not exist.")
        return Reply(200, {"contents": contents})

    # --- SQL statements ---------------------------------------------------------------------

    @route("GET", r"/api/2\.0/sql/warehouses/(?P<id>[^/]+)")
    def warehouse_get(self, request: Request) -> Reply:
        denied = self.check_auth(request)  # type: ignore[attr-defined]
        if denied:
            return denied
        if request.params["id"] not in self.warehouses:
            return error(404, "RESOURCE_DOES_NOT_EXIST", f"Warehouse {request.params['id']} does not exist.")
        return Reply(
            200,
            {
                "id": request.params["id"],
                "name": "Reviewdesk warehouse",
                "state": "RUNNING",
                "cluster_size": "2X-Small",
                "warehouse_type": "PRO",
                "enable_serverless_compute": True,
            },
        )

    @route("POST", r"/api/2\.0/sql/statements/?")
    def statement_execute(self, request: Request) -> Reply:
        denied = self.check_auth(request)  # type: ignore[attr-defined]
        if denied:
            return denied
        body = request.json
        if not isinstance(body, dict):
            return error(400, "BAD_REQUEST", "The request body is not a JSON object.")
        unknown = set(body) - STATEMENT_KEYS
        if unknown:
            return error(400, "INVALID_PARAMETER_VALUE", f"Unknown fields: {', '.join(sorted(unknown))}")
        if not isinstance(body.get("statement"), str) or not body["statement"].strip():
            return error(400, "INVALID_PARAMETER_VALUE", "statement is required.")
        if not body.get("warehouse_id"):
            return error(400, "INVALID_PARAMETER_VALUE", "warehouse_id is required.")
        if body["warehouse_id"] not in self.warehouses:
            return error(404, "RESOURCE_DOES_NOT_EXIST", f"Warehouse {body['warehouse_id']} does not exist.")
        wait = body.get("wait_timeout", "10s")
        if not isinstance(wait, str) or not WAIT_TIMEOUT.fullmatch(wait):
            return error(400, "INVALID_PARAMETER_VALUE", f"wait_timeout must be 0s or 5s to 50s, not {wait!r}")
        disposition, fmt = body.get("disposition", "INLINE"), body.get("format", "JSON_ARRAY")
        if disposition not in ("INLINE", "EXTERNAL_LINKS"):
            return error(
                400, "INVALID_PARAMETER_VALUE", f"disposition must be INLINE or EXTERNAL_LINKS, not {disposition!r}"
            )
        if fmt not in ("JSON_ARRAY", "ARROW_STREAM", "CSV"):
            return error(400, "INVALID_PARAMETER_VALUE", f"format must be JSON_ARRAY, ARROW_STREAM or CSV, not {fmt!r}")
        if disposition == "INLINE" and fmt != "JSON_ARRAY":
            return error(400, "INVALID_PARAMETER_VALUE", f"The INLINE disposition only supports JSON_ARRAY, not {fmt}.")
        if disposition != "INLINE":
            return error(400, "NOT_IMPLEMENTED", "This workspace fake serves INLINE results only.")
        parameters = body.get("parameters", [])
        if not isinstance(parameters, list) or not all(
            isinstance(p, dict) and isinstance(p.get("name"), str) and set(p) <= {"name", "value", "type"}
            for p in parameters
        ):
            return error(400, "INVALID_PARAMETER_VALUE", "parameters must be a list of {name, value, type}.")
        statement_id = f"01ef-{uuid.uuid4().hex[:12]}"
        self.statement_log.append(body["statement"])
        self.parameter_log.append(parameters)
        result = self._run_sql(body["statement"], parameters)
        result["statement_id"] = statement_id
        chunks = result.pop("_chunks", None)
        if chunks is not None:
            self.statement_chunks[statement_id] = chunks
            for index, chunk in enumerate(chunks[:-1]):  # the last chunk has no next
                chunk["next_chunk_index"] = index + 1
                chunk["next_chunk_internal_link"] = f"/api/2.0/sql/statements/{statement_id}/result/chunks/{index + 1}"
            if chunks:
                result["result"] = chunks[0]
        self.statements[statement_id] = {"response": result, "polls_left": self.statement_polls}
        return Reply(200, self._statement_view(statement_id))

    @route("GET", r"/api/2\.0/sql/statements/(?P<id>[^/]+)")
    def statement_get(self, request: Request) -> Reply:
        denied = self.check_auth(request)  # type: ignore[attr-defined]
        if denied:
            return denied
        if request.params["id"] not in self.statements:
            return error(404, "RESOURCE_DOES_NOT_EXIST", f"Statement {request.params['id']} does not exist.")
        return Reply(200, self._statement_view(request.params["id"]))

    @route("GET", r"/api/2\.0/sql/statements/(?P<id>[^/]+)/result/chunks/(?P<index>\d+)")
    def statement_chunk_get(self, request: Request) -> Reply:
        denied = self.check_auth(request)  # type: ignore[attr-defined]
        if denied:
            return denied
        statement_id, index = request.params["id"], int(request.params["index"])
        if statement_id not in self.statements:
            return error(404, "RESOURCE_DOES_NOT_EXIST", f"Statement {statement_id} does not exist.")
        chunks = self.statement_chunks.get(statement_id, [])
        if self.statements[statement_id]["polls_left"] > 0:
            return error(400, "INVALID_PARAMETER_VALUE", f"Statement {statement_id} has not succeeded yet.")
        if index >= len(chunks):
            return error(400, "INVALID_PARAMETER_VALUE", f"Chunk index {index} is out of range.")
        return Reply(200, chunks[index])

    def _statement_view(self, statement_id: str) -> dict[str, Any]:
        entry = self.statements[statement_id]
        if entry["polls_left"] > 0:
            state = "PENDING" if entry["polls_left"] > 1 else "RUNNING"
            entry["polls_left"] -= 1
            return {"statement_id": statement_id, "status": {"state": state}}
        return entry["response"]

    def _run_sql(self, sql: str, parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        for pattern, handler in (
            (CREATE, self._sql_create),
            (COPY, self._sql_copy),
            (ALTER, self._sql_alter),
            (MERGE, self._sql_merge),
            (COUNT, self._sql_count),
            (SELECT, lambda m: self._sql_select(m, parameters or [])),
        ):
            match = pattern.fullmatch(sql)
            if match:
                try:
                    return handler(match)
                except SqlError as exc:
                    return _failed(exc.code, exc.message)
        return _failed("PARSE_SYNTAX_ERROR", f"[PARSE_SYNTAX_ERROR] Syntax error in: {sql[:200]}")

    def _sql_create(self, match: re.Match[str]) -> dict[str, Any]:
        name = _unquote_name(match["name"])
        if name not in self.tables:
            columns = _column_definitions(match["cols"] or "")
            self.tables[name] = {
                "columns": columns,
                "comment": _sql_string(match["comment"] or ""),
                "created_at": int(time.time() * 1000),
                "table_id": str(uuid.uuid4()),
                "version": 0,
                **({"rows": []} if columns else {"landing": [], "loaded_files": set()}),
            }
        return _succeeded([], [])

    def _table(self, raw: str) -> dict[str, Any]:
        name = _unquote_name(raw)
        if name not in self.tables:
            raise SqlError("TABLE_OR_VIEW_NOT_FOUND", f"[TABLE_OR_VIEW_NOT_FOUND] The table {raw} cannot be found.")
        return self.tables[name]

    def _sql_copy(self, match: re.Match[str]) -> dict[str, Any]:
        import pyarrow.parquet as pq

        table = self._table(match["name"])
        folder = match["dir"].rstrip("/") + "/"
        if match["files"]:
            names = [f.strip().strip("'") for f in match["files"].split(",")]
            paths = [folder + n for n in names]
            missing = [p for p in paths if p not in self.volume_files]
            if missing:
                raise SqlError("PATH_NOT_FOUND", f"[PATH_NOT_FOUND] Path does not exist: {missing[0]}")
        else:
            paths = sorted(p for p in self.volume_files if p.startswith(folder))
        evolve = "'mergeschema' = 'true'" in (match["options"] or "").lower()
        loaded = 0
        for path in paths:
            if path in table["loaded_files"]:
                continue  # COPY INTO is idempotent: files already loaded are skipped
            data = pq.read_table(io.BytesIO(self.volume_files[path]))
            known = {c["name"]: c["type"] for c in table["columns"]}
            incoming = {f.name: parquet_column_type(f.type) for f in data.schema}
            for name, typ in incoming.items():
                if name in known and known[name] != typ:
                    raise _type_clash(name, known[name], typ)
            new = [name for name in incoming if name not in known]
            if new and not evolve and table["columns"]:
                raise SqlError("DELTA_SCHEMA_CHANGE", f"[COPY_INTO_SCHEMA_MISMATCH] New columns: {new[0]}")
            for name in new:
                table["columns"].append({"name": name, "type": incoming[name], "comment": "", "nullable": True})
            rows = data.to_pylist()
            table["landing"].extend(rows)
            table["loaded_files"].add(path)
            loaded += len(rows)
        if loaded:
            table["version"] += 1
        return _succeeded(["num_affected_rows", "num_inserted_rows"], [[str(loaded), str(loaded)]])

    def _sql_alter(self, match: re.Match[str]) -> dict[str, Any]:
        table = self._table(match["name"])
        known = {c["name"].lower() for c in table["columns"]}
        added = _column_definitions(match["cols"])
        if not added:
            raise SqlError("PARSE_SYNTAX_ERROR", "[PARSE_SYNTAX_ERROR] ADD COLUMNS needs at least one column.")
        for column in added:
            if column["name"].lower() in known:
                raise SqlError(
                    "FIELDS_ALREADY_EXISTS", f"[FIELDS_ALREADY_EXISTS] Cannot add column `{column['name']}`: it exists."
                )
            if not column["nullable"]:
                raise SqlError("DELTA_NOT_NULL_CONSTRAINT_VIOLATED", "A column added to a table must be nullable.")
        table["columns"].extend(added)
        table["version"] += 1
        return _succeeded([], [])

    def _sql_merge(self, match: re.Match[str]) -> dict[str, Any]:
        target, source = self._table(match["target"]), self._table(match["source"])
        if match["by_source_action"] is not None and match["by_source_action"].strip().upper() != "DELETE":
            raise SqlError(
                "PARSE_SYNTAX_ERROR",
                f"[PARSE_SYNTAX_ERROR] WHEN NOT MATCHED BY SOURCE ... THEN {match['by_source_action']}: "
                "this workspace only runs DELETE there.",
            )
        # Conditions resolve against the target as it is before schema evolution and the source rows.
        target_names = {c["name"].lower() for c in target["columns"]}
        source_names = {c["name"].lower() for c in source["columns"]}
        on = _condition(match["on"], target=target_names, source=source_names)
        changed = _condition(match["changed"], target=target_names, source=source_names)
        by_source = _condition(match["by_source"], target=target_names, source=None) if match["by_source"] else None
        rows = [r for r in source.get("landing", source.get("rows", [])) if r.get("batch_id") == match["batch"]]
        if match["dedup"]:
            latest: dict[str, dict[str, Any]] = {}
            for row in rows:
                if row["row_id"] not in latest or str(row["pushed_at"]) >= str(latest[row["row_id"]]["pushed_at"]):
                    latest[row["row_id"]] = row
            rows = list(latest.values())
        known = {c["name"]: c["type"] for c in target["columns"]}
        for column in source["columns"]:  # the types production declared must be the ones its Parquet reads as
            if column["name"] in known and known[column["name"]] != column["type"]:
                raise _type_clash(column["name"], known[column["name"]], column["type"])
        source_columns = [c for c in source["columns"] if c["name"] not in known]
        if source_columns and rows:
            if not match["evolve"]:
                raise SqlError(
                    "DELTA_SCHEMA_CHANGE", f"[UNRESOLVED_COLUMN] {source_columns[0]['name']} is not in the target"
                )
        existing = list(target["rows"])
        matched_by: dict[int, int] = {}  # target row index -> how many source rows matched it
        to_update: list[tuple[dict[str, Any], dict[str, Any]]] = []
        to_insert: list[dict[str, Any]] = []
        for row in rows:
            hits = [i for i, current in enumerate(existing) if on(current, row) is True]
            if not hits:
                to_insert.append(dict(row))
            for i in hits:
                matched_by[i] = matched_by.get(i, 0) + 1
                if matched_by[i] > 1:
                    raise SqlError(
                        "DELTA_MULTIPLE_SOURCE_ROW_MATCHING_TARGET_ROW_IN_MERGE",
                        "[DELTA_MULTIPLE_SOURCE_ROW_MATCHING_TARGET_ROW_IN_MERGE] Several source rows matched one "
                        "target row.",
                    )
                if changed(existing[i], row) is True:
                    to_update.append((existing[i], row))
        deleted = [
            i
            for i, current in enumerate(existing)
            if match["by_source_action"] is not None
            and i not in matched_by
            and (by_source is None or by_source(current, {}) is True)
        ]
        if source_columns and rows:
            target["columns"].extend(dict(c) for c in source_columns)
        for current, row in to_update:
            current.update(row)
        gone = set(deleted)
        target["rows"] = [r for i, r in enumerate(existing) if i not in gone] + to_insert
        inserted, updated = len(to_insert), len(to_update)
        if inserted or updated or deleted:
            target["version"] += 1
        affected = inserted + updated + len(deleted)
        return _succeeded(
            ["num_affected_rows", "num_updated_rows", "num_deleted_rows", "num_inserted_rows"],
            [[str(affected), str(updated), str(len(deleted)), str(inserted)]],
        )

    def _sql_count(self, match: re.Match[str]) -> dict[str, Any]:
        table = self._table(match["name"])
        count = len(table["rows"]) if "rows" in table else len(table["landing"])
        return _succeeded(["count(1)"], [[str(count)]])

    def _sql_select(self, match: re.Match[str], parameters: list[dict[str, Any]]) -> dict[str, Any]:
        table = self._table(match["name"])
        if "rows" not in table:
            raise SqlError("PARSE_SYNTAX_ERROR", "[PARSE_SYNTAX_ERROR] This workspace fake selects from rows tables.")
        types = {c["name"].lower(): c["type"] for c in table["columns"]}
        names = {c["name"].lower(): c["name"] for c in table["columns"]}
        if match["cols"].strip() == "*":
            selected = [c["name"] for c in table["columns"]]
        else:
            selected = []
            for part in _split_columns(match["cols"]):
                if not re.fullmatch(IDENT, part):
                    raise SqlError("PARSE_SYNTAX_ERROR", f"[PARSE_SYNTAX_ERROR] Syntax error at {part[:40]!r}")
                column = part.strip("`").lower()
                if column not in names:
                    raise _unresolved(part)
                selected.append(names[column])
        bound = _bind(parameters)
        rows = [{k.lower(): v for k, v in r.items()} for r in table["rows"]]
        if match["where"]:
            condition = _condition(_qualify(match["where"], bound), target=set(types), source=set(bound))
            try:
                rows = [r for r in rows if condition(r, bound) is True]
            except TypeError as exc:
                raise SqlError("DATATYPE_MISMATCH", f"[DATATYPE_MISMATCH] Cannot compare: {exc}") from None
        for term in reversed(_split_columns(match["order"] or "")):
            found = ORDER_TERM.fullmatch(term)
            if found is None:
                raise SqlError("PARSE_SYNTAX_ERROR", f"[PARSE_SYNTAX_ERROR] Syntax error at {term[:40]!r}")
            column = found["col"].strip("`").lower()
            if column not in types:
                raise _unresolved(found["col"])
            descending = (found["dir"] or "").upper() == "DESC"
            # NULLS FIRST for ASC and NULLS LAST for DESC, as Databricks orders them by default.
            rows.sort(key=lambda r, c=column: (r.get(c) is not None, r.get(c)), reverse=descending)
        if match["limit"] is not None:
            rows = rows[: int(match["limit"])]
        column_types = [types[c.lower()] for c in selected]
        data = [
            [_json_array_text(r.get(c.lower()), t) for c, t in zip(selected, column_types, strict=True)] for r in rows
        ]
        return _select_result(selected, column_types, data, chunk_rows=self.result_chunk_rows)

    # --- tables ----------------------------------------------------------------------------------

    @route("GET", r"/api/2\.1/unity-catalog/tables/(?P<name>[^/]+)")
    def table_get(self, request: Request) -> Reply:
        denied = self.check_auth(request)  # type: ignore[attr-defined]
        if denied:
            return denied
        raw = unquote(request.params["name"])
        table = self.tables.get(raw.lower())
        if table is None:
            return error(404, "TABLE_DOES_NOT_EXIST", f"Table '{raw}' does not exist.")
        catalog, schema, name = raw.split(".")
        return Reply(
            200,
            {
                "name": name,
                "catalog_name": catalog,
                "schema_name": schema,
                "full_name": raw,
                "table_type": "MANAGED",
                "data_source_format": "DELTA",
                "comment": table["comment"] or None,
                "columns": [
                    {
                        "name": c["name"],
                        "type_text": c["type"].lower(),
                        "type_name": TYPE_NAMES.get(c["type"], _type_name(c["type"])),
                        "position": i,
                        "nullable": c["nullable"],
                        **({"comment": c["comment"]} if c["comment"] else {}),
                    }
                    for i, c in enumerate(table["columns"])
                ],
                "storage_location": f"s3://fake-metastore/{table['table_id']}",
                "table_id": table["table_id"],
                "owner": "reviewdesk-sp",
                "created_at": table["created_at"],
                "updated_at": int(time.time() * 1000),
                "properties": {"delta.lastCommitVersion": str(table["version"])},
            },
        )


class SqlError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _failed(code: str, message: str) -> dict[str, Any]:
    # As Databricks reports a SQL error: the service error code (ServiceErrorCode) is BAD_REQUEST and
    # the SQL error class leads the message in brackets.
    if not message.startswith(f"[{code}"):
        message = f"[{code}] {message}"
    return {"status": {"state": "FAILED", "error": {"error_code": "BAD_REQUEST", "message": message}}}


def _succeeded(columns: list[str], rows: list[list[str]]) -> dict[str, Any]:
    return {
        "status": {"state": "SUCCEEDED"},
        "manifest": {
            "format": "JSON_ARRAY",
            "schema": {
                "column_count": len(columns),
                "columns": [
                    {"name": c, "type_name": "LONG", "type_text": "BIGINT", "position": i}
                    for i, c in enumerate(columns)
                ],
            },
            "total_row_count": len(rows),
            "total_chunk_count": 1 if rows else 0,
            "truncated": False,
        },
        "result": {"chunk_index": 0, "row_offset": 0, "row_count": len(rows), "data_array": rows} if rows else {},
    }


def _unresolved(column: str) -> SqlError:
    return SqlError(
        "UNRESOLVED_COLUMN", f"[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column with name {column} cannot be resolved."
    )


def _bind(parameters: list[dict[str, Any]]) -> dict[str, Any]:
    """Parameter name -> its value cast to its type, keyed ``:name`` (the condition's source row)."""
    from datetime import UTC, date, datetime

    bound: dict[str, Any] = {}
    for parameter in parameters:
        typ = str(parameter.get("type") or "STRING").upper()
        value = parameter.get("value")
        if typ not in PARAMETER_TYPES:
            raise SqlError("INVALID_PARAMETER_MARKER_VALUE", f"[INVALID_PARAMETER_MARKER_VALUE] Unknown type {typ}.")
        try:
            if value is None:
                cast: Any = None
            elif typ in ("BIGINT", "INT", "SMALLINT", "TINYINT"):
                cast = int(value)
            elif typ == "DOUBLE":
                cast = float(value)
            elif typ == "DATE":
                cast = date.fromisoformat(value)
            elif typ in ("TIMESTAMP", "TIMESTAMP_NTZ"):
                cast = datetime.fromisoformat(value.replace("Z", "+00:00"))
                if typ == "TIMESTAMP":  # the session time zone is UTC
                    cast = cast.replace(tzinfo=UTC) if cast.tzinfo is None else cast.astimezone(UTC)
                else:
                    cast = cast.replace(tzinfo=None)
            else:
                cast = str(value)
        except (ValueError, TypeError, AttributeError):
            raise SqlError(
                "INVALID_PARAMETER_MARKER_VALUE",
                f"[INVALID_PARAMETER_MARKER_VALUE.INVALID_VALUE_FOR_DATA_TYPE] {value!r} cannot be cast to {typ} "
                f"(parameter {parameter['name']}).",
            ) from None
        bound[f":{parameter['name'].lower()}"] = cast
    return bound


MARKER = re.compile(r"'(?:[^'\\]|\\.)*'|:(?P<marker>[A-Za-z_]\w*)|(?P<ident>`[^`]+`|[A-Za-z_]\w*)")
KEYWORDS = {"AND", "OR", "NOT", "IS", "NULL", "DISTINCT", "FROM", "TRUE", "FALSE"}


def _qualify(where: str, bound: dict[str, Any]) -> str:
    """A SELECT's WHERE in the MERGE evaluator's terms: columns as ``t.<col>``, markers as ``s.`:name```."""

    def replace(found: re.Match[str]) -> str:
        if found["marker"]:
            key = f":{found['marker'].lower()}"
            if key not in bound:
                raise SqlError(
                    "UNBOUND_SQL_PARAMETER", f"[UNBOUND_SQL_PARAMETER] Found the unbound parameter: {found['marker']}."
                )
            return f"s.`{key}`"
        if found["ident"] and found["ident"].upper() not in KEYWORDS:
            return f"t.{found['ident']}"
        return found[0]

    return MARKER.sub(replace, where)


def _json_array_text(value: Any, typ: str) -> str | None:
    """A value as the JSON_ARRAY format carries it: text, or null."""
    import json
    from datetime import UTC, date, datetime

    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        if typ == "TIMESTAMP":
            value = value.astimezone(UTC)
            spec = "milliseconds" if value.microsecond % 1000 == 0 else "microseconds"
            return value.replace(tzinfo=None).isoformat(timespec=spec) + "Z"
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | dict):
        return json.dumps(value, default=str)
    return str(value)


def _select_result(columns: list[str], types: list[str], rows: list[list[Any]], *, chunk_rows: int) -> dict[str, Any]:
    chunks = [
        {
            "chunk_index": i,
            "row_offset": start,
            "row_count": len(rows[start : start + chunk_rows]),
            "data_array": rows[start : start + chunk_rows],
        }
        for i, start in enumerate(range(0, len(rows), chunk_rows))
    ]
    return {
        "status": {"state": "SUCCEEDED"},
        "manifest": {
            "format": "JSON_ARRAY",
            "schema": {
                "column_count": len(columns),
                "columns": [
                    {
                        "name": c,
                        "type_name": _type_name(t),
                        "type_text": t,
                        "position": i,
                    }
                    for i, (c, t) in enumerate(zip(columns, types, strict=True))
                ],
            },
            "total_row_count": len(rows),
            "total_chunk_count": len(chunks),
            "chunks": [{k: c[k] for k in ("chunk_index", "row_offset", "row_count")} for c in chunks],
            "truncated": False,
        },
        "_chunks": chunks,
    }


def _type_name(sql_type: str) -> str:
    """ColumnInfo's type_name for a SQL type: BIGINT is LONG, ARRAY<...> is ARRAY, STRUCT<...> is STRUCT."""
    base = sql_type.split("<", 1)[0].upper()
    return {"TINYINT": "BYTE", "SMALLINT": "SHORT", "BIGINT": "LONG"}.get(base, base)


def _column_definitions(text: str) -> list[dict[str, Any]]:
    columns = []
    for definition in _split_columns(text):
        col = COLUMN.fullmatch(definition)
        if col is None or col["type"].upper() not in SQL_TYPES:
            raise SqlError("PARSE_SYNTAX_ERROR", f"[PARSE_SYNTAX_ERROR] Bad column definition: {definition}")
        columns.append(
            {
                "name": col["name"].strip("`"),
                "type": col["type"].upper(),
                "comment": _sql_string(col["comment"] or ""),
                "nullable": not col["notnull"],
            }
        )
    return columns


# --- MERGE conditions: a small SQL boolean-expression evaluator with three-valued logic ---------------

TOKEN = re.compile(
    r"\s*(?:(?P<num>-?\d+(?:\.\d+)?)(?![\w.])|(?P<str>'(?:[^'\\]|\\.)*')"
    r"|(?P<col>(?P<alias>[A-Za-z_]\w*)\.(?P<column>`[^`]+`|[A-Za-z_]\w*))"
    r"|(?P<op><=>|<>|!=|<=|>=|=|<|>|\(|\))|(?P<word>[A-Za-z_]\w*))",
)
Row = dict[str, Any]
Condition = Any  # (target row, source row) -> True | False | None


def _condition(text: str, *, target: set[str], source: set[str] | None) -> Condition:
    """``text`` compiled to a function of (target row, source row); ``source=None``: no source in scope."""
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        if not text[position:].strip():
            break
        found = TOKEN.match(text, position)
        if found is None or found.end() == position:
            raise SqlError("PARSE_SYNTAX_ERROR", f"[PARSE_SYNTAX_ERROR] Syntax error at {text[position:][:40]!r}")
        kind = next(k for k in ("num", "str", "col", "op", "word") if found[k] is not None)
        if kind == "col":
            alias, column = found["alias"].lower(), found["column"].strip("`").lower()
            scope = {"t": target, "s": source}.get(alias)
            if alias not in ("t", "s"):
                raise SqlError("UNRESOLVED_COLUMN", f"[UNRESOLVED_COLUMN] {found['col']}: unknown alias {alias!r}.")
            if scope is None:
                raise SqlError(
                    "DELTA_MERGE_UNRESOLVED_EXPRESSION",
                    f"[DELTA_MERGE_UNRESOLVED_EXPRESSION] Cannot resolve {found['col']} in the search condition "
                    "of WHEN NOT MATCHED BY SOURCE: only target columns are in scope.",
                )
            if column not in scope:
                raise SqlError(
                    "UNRESOLVED_COLUMN",
                    f"[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column with name {found['col']} cannot be resolved.",
                )
            tokens.append(("col", f"{alias}.{column}"))
        elif kind == "word":
            tokens.append(("word", found["word"].upper()))
        else:
            tokens.append((kind, found[kind]))
        position = found.end()
    parser = _ConditionParser(tokens, text)
    compiled = parser.expression()
    if parser.index != len(tokens):
        raise SqlError("PARSE_SYNTAX_ERROR", f"[PARSE_SYNTAX_ERROR] Syntax error in condition: {text[:200]}")
    return compiled


class _ConditionParser:
    """expr := and (OR and)*; and := not (AND not)*; not := NOT not | '(' expr ')' | comparison."""

    def __init__(self, tokens: list[tuple[str, str]], text: str) -> None:
        self.tokens, self.text, self.index = tokens, text, 0

    def _peek(self, *values: str) -> bool:
        return self.index < len(self.tokens) and self.tokens[self.index][1] in values

    def _take(self, *values: str) -> str:
        if not self._peek(*values):
            raise SqlError("PARSE_SYNTAX_ERROR", f"[PARSE_SYNTAX_ERROR] Syntax error in condition: {self.text[:200]}")
        self.index += 1
        return self.tokens[self.index - 1][1]

    def expression(self) -> Condition:
        parts = [self._and()]
        while self._peek("OR"):
            self._take("OR")
            parts.append(self._and())
        if len(parts) == 1:
            return parts[0]

        def either(t: Row, s: Row) -> bool | None:
            values = [p(t, s) for p in parts]
            return True if True in values else (None if None in values else False)

        return either

    def _and(self) -> Condition:
        parts = [self._not()]
        while self._peek("AND"):
            self._take("AND")
            parts.append(self._not())
        if len(parts) == 1:
            return parts[0]

        def both(t: Row, s: Row) -> bool | None:
            values = [p(t, s) for p in parts]
            return False if False in values else (None if None in values else True)

        return both

    def _not(self) -> Condition:
        if self._peek("NOT"):
            self._take("NOT")
            inner = self._not()
            return lambda t, s: None if (v := inner(t, s)) is None else not v
        if self._peek("("):
            self._take("(")
            inner = self.expression()
            self._take(")")
            return inner
        return self._comparison()

    def _operand(self) -> Any:
        if self.index >= len(self.tokens):
            raise SqlError("PARSE_SYNTAX_ERROR", f"[PARSE_SYNTAX_ERROR] Syntax error in condition: {self.text[:200]}")
        kind, value = self.tokens[self.index]
        self.index += 1
        if kind == "col":
            alias, column = value.split(".", 1)
            return lambda t, s: (t if alias == "t" else s).get(column)
        if kind == "num":
            number = float(value) if "." in value else int(value)
            return lambda t, s: number
        if kind == "str":
            text = _sql_string(value[1:-1])
            return lambda t, s: text
        if value == "NULL":
            return lambda t, s: None
        raise SqlError("PARSE_SYNTAX_ERROR", f"[PARSE_SYNTAX_ERROR] Unexpected {value!r} in: {self.text[:200]}")

    def _comparison(self) -> Condition:
        left = self._operand()
        if self._peek("IS"):
            self._take("IS")
            negated = self._peek("NOT") and bool(self._take("NOT"))
            if self._peek("NULL"):
                self._take("NULL")
                return lambda t, s: (left(t, s) is None) != negated
            self._take("DISTINCT")
            self._take("FROM")
            right = self._operand()
            return lambda t, s: (left(t, s) != right(t, s)) != negated  # null-safe, never unknown
        op = self._take("=", "<>", "!=", "<=>", "<", ">", "<=", ">=")
        right = self._operand()
        if op == "<=>":
            return lambda t, s: left(t, s) == right(t, s)

        def compare(t: Row, s: Row) -> bool | None:
            a, b = left(t, s), right(t, s)
            if a is None or b is None:
                return None
            if op == "=":
                return bool(a == b)
            if op in ("<>", "!="):
                return bool(a != b)
            return bool({"<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[op])

        return compare
