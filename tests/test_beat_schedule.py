"""Every sweeper in the code base runs on beat: a sweeper nothing schedules leaves work stuck."""

from __future__ import annotations

import re

from reviewapp.celery import app


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
