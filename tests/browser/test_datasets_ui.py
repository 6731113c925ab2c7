"""A curator creates a dataset, takes two versions, sees the diff, and runs a background export whose
progress bar completes, in a real Chromium against the live server and a real Celery worker."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from pipelines.models import DatasetVersion, ExportJob
from reviewapp.models import Review
from reviewapp.services.reviews import review_edit
from tests.pipelines.datasets_helpers import build_curated
from tests.pipelines.test_exports_jobs import worker  # noqa: F401 - a fixture

pytestmark = [pytest.mark.browser, pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_dataset_page_versions_diff_and_background_export(
    page: Page,
    live_server,
    login,
    project,
    reviewer,
    reviewer2,
    curator,
    worker,  # noqa: F811
):
    build_curated(project, reviewer, reviewer2, curator)
    login("cora")
    page.goto(f"{live_server.url}/projects/support/datasets/")
    page.fill("input[name=name]", "passing answers")
    page.fill("input[name=answers]", '{"correct": "pass"}')
    page.click("[data-create-dataset]")
    expect(page.locator("h1")).to_contain_text("passing answers")

    page.click("[data-create-version]")
    expect(page.locator(".messages")).to_contain_text("Version 1 taken: 3 rows.")
    # A reviewer changes their mind: ext-1 now has a different helpfulness, so v2 differs.
    review_edit(
        review=Review.objects.get(item__external_id="ext-1", reviewer=reviewer),
        user=reviewer,
        answers={"correct": True, "helpfulness": 4},
    )
    page.click("[data-create-version]")
    expect(page.locator(".messages")).to_contain_text("Version 2 taken: 3 rows.")
    expect(page.locator("[data-version]")).to_have_count(2)

    page.select_option("select[name=old]", "1")
    page.select_option("select[name=new]", "2")
    page.click("[data-show-diff]")
    expect(page.locator("#dataset-diff [data-changed]")).to_have_text("1")
    expect(page.locator("#dataset-diff")).to_contain_text("feedback helpfulness")

    page.select_option("form[hx-post] select[name=version]", "2")
    page.select_option("form[hx-post] select[name=format]", "parquet")
    page.click("[data-start-export]")
    job = page.locator("[data-export-job]").first
    expect(job).to_have_attribute("data-status", "done", timeout=60_000)
    expect(job.locator("[data-percent]")).to_have_text("100%")
    expect(job.locator(".progress")).to_have_attribute("aria-valuenow", "100")
    with page.expect_download() as download_info:
        job.locator("[data-download]").click()
    assert re.fullmatch(r"support-passing-answers-v2-mlflow\.parquet", download_info.value.suggested_filename)
    finished = ExportJob.objects.get()
    assert finished.version == DatasetVersion.objects.get(number=2) and finished.rows_done == 3
