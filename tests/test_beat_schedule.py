"""Every sweeper in the code base runs on beat: a sweeper nothing schedules leaves work stuck."""

from __future__ import annotations

import dataclasses
import os
import re
import shelve
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from reviewapp.celery import app
from tests.workers import wait_for


def registered_task_names() -> set[str]:
    app.loader.import_default_modules()  # autodiscovery: every app's tasks module
    return {name for name in app.tasks if not name.startswith("celery.")}


def test_every_sweeper_task_is_in_the_beat_schedule():
    sweepers = {name for name in registered_task_names() if re.search(r"sweep|reclaim", name)}
    assert "reviewapp.jobs_sweep" in sweepers
    scheduled = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert sweepers - scheduled == set()


def test_every_scheduled_task_exists():
    names = registered_task_names()
    for key, entry in app.conf.beat_schedule.items():
        assert entry["task"] in names, key
        assert float(entry["schedule"]) > 0, key


def sweeper_entries(schedule: dict[str, Any]) -> dict[str, tuple[float, set[str]]]:
    """The jobs kernel's sweeper entries: name -> (seconds, kinds swept)."""
    out = {}
    for key, entry in schedule.items():
        task = entry["task"] if isinstance(entry, dict) else entry.task
        if task != "reviewapp.jobs_sweep":
            continue
        every = entry["schedule"] if isinstance(entry, dict) else entry.schedule.run_every.total_seconds()
        kwargs = entry.get("kwargs", {}) if isinstance(entry, dict) else entry.kwargs
        out[key] = (float(every), set(kwargs["kinds"]))
    return out


def assert_every_kind_swept_at_its_interval(entries: dict[str, tuple[float, set[str]]]) -> None:
    from reviewapp.jobs import job_kinds

    kinds = job_kinds()
    assert kinds
    for kind in kinds:
        interval = float(kind.sweep_seconds() if callable(kind.sweep_seconds) else kind.sweep_seconds)
        holding = [(every, names) for every, names in entries.values() if kind.name in names]
        assert [every for every, _ in holding] == [interval], (kind.name, entries)  # one entry, its interval
    assert set().union(*(names for _, names in entries.values())) == {k.name for k in kinds}


def test_the_sweeper_entries_are_derived_from_the_registry() -> None:
    registered_task_names()
    assert_every_kind_swept_at_its_interval(sweeper_entries(app.conf.beat_schedule))


def test_a_kind_with_its_own_interval_gets_its_own_entry(settings) -> None:  # type: ignore[no-untyped-def]
    from reviewapp.jobs import job_kind_register, job_kinds, jobs_sweep_schedule

    settings.JOBS_SWEEP_SECONDS = 45
    original = job_kinds()[0]
    job_kind_register(dataclasses.replace(original, sweep_seconds=lambda: 7))
    try:
        entries = sweeper_entries(jobs_sweep_schedule())
        assert entries["sweep-jobs-every-7s"] == (7.0, {original.name})
        assert entries["sweep-jobs"] == (45.0, {k.name for k in job_kinds()} - {original.name})
        assert_every_kind_swept_at_its_interval(entries)
    finally:
        job_kind_register(original)
    assert set(sweeper_entries(jobs_sweep_schedule())) == {"sweep-jobs"}


@pytest.mark.slow  # starts `celery beat` (Django set up in a subprocess: a few seconds)
def test_celery_beat_loads_a_sweeper_entry_for_every_registered_kind(tmp_path: Path) -> None:
    """The real ``celery -A reviewapp beat`` (as docker-compose runs it), its persisted schedule read back."""
    from django.conf import settings

    schedule_file = tmp_path / "celerybeat-schedule"
    env = {
        **os.environ,
        "REVIEWDESK_VAR_DIR": str(tmp_path / "var"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'beat.sqlite3'}",
        "CELERY_BROKER_URL": "filesystem://",
        "JOBS_SWEEP_SECONDS": "17",  # read from the environment by the beat process
    }
    beat = subprocess.Popen(
        [
            str(settings.BASE_DIR / ".venv/bin/celery"),
            "-A",
            "reviewapp",
            "beat",
            "-l",
            "DEBUG",
            "-s",
            str(schedule_file),
        ],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(beat.stdout or []), daemon=True).start()
    try:
        assert wait_for(lambda: any("beat: Starting" in line for line in lines), timeout=90), "".join(lines)
        time.sleep(1)  # past the scheduler's set-up, which writes the schedule file
    finally:
        beat.terminate()  # beat syncs its schedule file on SIGTERM
        beat.wait(timeout=30)
    with shelve.open(str(schedule_file), flag="r") as stored:  # noqa: S301 - the file beat just wrote
        entries = sweeper_entries(dict(stored["entries"]))
    assert {every for every, _ in entries.values()} == {17.0}, "".join(lines)
    with override_settings(JOBS_SWEEP_SECONDS=17):
        assert_every_kind_swept_at_its_interval(entries)
