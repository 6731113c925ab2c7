"""The MLflow pyfunc entry point of the demo model (``loader_module``): no MLflow import needed here.

A logged model's ``data`` directory holds ``passages.json`` (the corpus snapshot the version was
built on) and ``settings.json`` (its :class:`RagSettings`). MLflow calls :func:`_load_pyfunc`
with that directory and calls ``predict(model_input, params)`` on what it returns.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from .chain import Passage, RagChain, RagSettings

PASSAGES_FILE = "passages.json"
SETTINGS_FILE = "settings.json"


def model_data_write(directory: Path, *, passages: list[Passage], settings: RagSettings) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / PASSAGES_FILE).write_text(json.dumps([asdict(p) for p in passages], ensure_ascii=False, indent=1))
    (directory / SETTINGS_FILE).write_text(json.dumps(asdict(settings), indent=1))


def _load_pyfunc(data_path: str) -> RagChain:
    directory = Path(data_path)
    passages = [Passage(**p) for p in json.loads((directory / PASSAGES_FILE).read_text(encoding="utf-8"))]
    settings = RagSettings(**json.loads((directory / SETTINGS_FILE).read_text(encoding="utf-8")))
    return RagChain(passages, settings)
