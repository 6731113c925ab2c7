"""REST API: curated datasets, versions, diffs, row listings and exports (streamed or as a background job).

Exports are streamed (StreamingHttpResponse over a server-side cursor) in ``jsonl``, ``csv`` or
``parquet`` and in the ``mlflow``, ``agent-eval``, ``sft`` or ``preference`` shape (pipelines.datasets.exports).
Compression: ``?compression=gzip`` (or ``Accept-Encoding: gzip`` when ``compression`` is not given)
sends ``Content-Encoding: gzip``; ``?compression=none`` never compresses. A version's export has a
strong ``ETag`` per (version, shape, format, compression) and answers ``If-None-Match`` with 304.
"""

from pipelines.api.datasets.urls import urlpatterns

__all__ = ["urlpatterns"]
