"""Gives each pytest-xdist worker a var folder of its own (loaded with ``-p tests.xdist_env``).

The folder (REVIEWDESK_VAR_DIR, var/test by default) holds the default MLflow store, Delta tables,
the file cache, the filesystem broker and local serving state, so two workers sharing it would see
each other's files. pytest-django imports the settings before any conftest.py, so the variable is
set here, when pytest loads this plugin; Celery workers and commands that the tests start inherit it.
The test database gets its _gw0/_gw1 suffix from pytest-django.
"""

from __future__ import annotations

import os
from pathlib import Path

_worker = os.environ.get("PYTEST_XDIST_WORKER")  # set by xdist in each worker before pytest starts
if _worker and "REVIEWDESK_VAR_DIR" in os.environ:
    _base = Path(os.environ["REVIEWDESK_VAR_DIR"])
    if _base.name != _worker:
        os.environ["REVIEWDESK_VAR_DIR"] = str(_base / _worker)
