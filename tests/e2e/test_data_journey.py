"""In a real browser, at first start: the demo project's iris sample is there; look at its
profile, prepare it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in, settle, shot, wait_for_shell
from tests.helpers import Server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A first start as ``./dev start`` makes it: the demo project with its sample data."""
    home = tmp_path_factory.mktemp("seeded") / "home"
    server = Server(home, env_extra={"CRISPML_SEED_SAMPLE_DATA": "true"}).start()
    yield server
    server.stop()


def test_iris_from_sample_to_prepared_version(seeded: Server, new_page) -> None:
    server = seeded
    page = new_page()
    page.goto(server.url + "/data-understanding")
    log_in(page, server)
    wait_for_shell(page)
    expect(page.get_by_role("heading", name="Data understanding")).to_be_visible()
    settle(page)
    # Seeded on first start: shapes and iris, the newest (iris) shown.
    expect(page.get_by_role("combobox", name="Dataset")).to_have_value("Iris (table, 150 rows)")
    expect(page.get_by_test_id("stMetric").filter(has_text="Rows")).to_contain_text("150")
    page.get_by_role("tab", name="Target").click()
    expect(page.get_by_text("3 classes; the smallest has 100% of the rows")).to_be_visible()
    page.get_by_role("tab", name="Correlations").click()
    expect(page.get_by_text("Pearson correlation between numeric columns.")).to_be_visible()
    page.get_by_role("tab", name="Distributions").click()
    chart = page.get_by_test_id("stVegaLiteChart").first
    expect(chart).to_be_visible()
    chart.scroll_into_view_if_needed()
    shot(page, "data-understanding")

    page.get_by_role("link", name="Data preparation").click()
    expect(page.get_by_role("heading", name="Data preparation")).to_be_visible()
    settle(page)
    expect(page.get_by_text("Split: 70% train, 15% validation, 15% test.")).to_be_visible()
    page.get_by_role("button", name="Prepare").click()
    expect(
        page.get_by_text("Prepared 'Iris · prepared 1': 105 train, 22 validation, 23 test.").first
    ).to_be_visible()
    settle(page)
    expect(page.get_by_role("heading", name="Prepared versions")).to_be_visible()
    page.get_by_text("Recipe and fitted values").click()
    expect(page.get_by_test_id("stJson")).to_contain_text("species")
    page.get_by_role("heading", name="Prepared versions").scroll_into_view_if_needed()
    shot(page, "data-preparation")
    page.reload()  # every choice and the result are still there
    wait_for_shell(page)
    expect(page.get_by_role("heading", name="Prepared versions")).to_be_visible()
