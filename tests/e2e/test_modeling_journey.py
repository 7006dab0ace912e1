"""In a real browser: iris sample, prepare, train two runs with different settings, compare
them, register the best."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import log_in, settle, shot, wait_for_shell
from tests.helpers import Server

pytestmark = pytest.mark.e2e


def test_train_two_runs_compare_and_register_the_best(server: Server, new_page) -> None:
    page = new_page()
    page.goto(server.url + "/data-understanding")
    log_in(page, server)
    wait_for_shell(page)
    settle(page)
    page.get_by_role("button", name="Add sample").click()
    expect(page.get_by_text("Added the sample 'Iris'").first).to_be_visible()
    page.get_by_role("link", name="Data preparation").click()
    expect(page.get_by_role("heading", name="Data preparation")).to_be_visible()
    settle(page)
    page.get_by_role("button", name="Prepare").click()
    expect(page.get_by_text("Prepared 'Iris · prepared 1'").first).to_be_visible()

    page.get_by_role("link", name="Modeling").click()
    expect(page.get_by_role("heading", name="Modeling")).to_be_visible()
    settle(page)
    page.get_by_test_id("stSelectbox").filter(has_text="Algorithm").click()
    page.get_by_role("option", name="k nearest neighbours").click()
    settle(page)
    for neighbours in ("100", "5"):  # 100 of 105 training rows: nearly a majority vote
        field = page.get_by_label("n_neighbors", exact=True)
        field.fill(neighbours)
        field.press("Enter")
        settle(page)
        page.get_by_role("button", name="Train").click()
        expect(page.get_by_text("Started run").first).to_be_visible()
        settle(page)
    # The runs table refreshes itself until both have succeeded.
    expect(page.get_by_text("2 run(s), 0 queued or running.")).to_be_visible(timeout=90_000)
    settle(page)  # the training curves rerun the page once when the last run ends
    page.get_by_role("heading", name="Runs").scroll_into_view_if_needed()
    shot(page, "modeling")

    page.get_by_role("link", name="Evaluation").click()
    expect(page.get_by_role("heading", name="Evaluation")).to_be_visible()
    settle(page)
    expect(page.get_by_text("Sorted by validation_accuracy, best first")).to_be_visible()
    page.get_by_label("Model name").fill("iris-best")
    page.get_by_label("Model name").press("Enter")
    settle(page)
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_text("Registered iris-best version 1.").first).to_be_visible()
    settle(page)
    expect(page.get_by_role("heading", name="Model registry")).to_be_visible()
    page.get_by_text("Runs to compare").scroll_into_view_if_needed()
    shot(page, "evaluation")
    shown = server.cli("models", "show", "iris-best")
    assert '"n_neighbors": 5' in shown  # the better of the two runs was registered
