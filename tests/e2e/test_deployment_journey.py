"""In a real browser: deploy a registered model, create an API key (shown once) and call the API
with it, see the request counted, try a row and an image in the page, start and stop the API
server."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect

from tests.e2e.conftest import choose, log_in, settle, shot, wait_for_shell
from tests.helpers import Server, free_port
from tests.models import IRIS_ROW, Trained

pytestmark = [pytest.mark.e2e, pytest.mark.needs("torch")]


@pytest.fixture(scope="module")
def deploy_server(trained: Trained) -> Iterator[Server]:
    """A server whose home has two registered models: iris-lr (rows) and shapes-unet (images)."""
    for run, name in (("iris", "iris-lr"), ("unet", "shapes-unet")):
        trained.svc.modeling.register(trained.admin, trained.runs[run], name)
    trained.svc.db.dispose()
    server = Server(trained.home, env_extra={"CRISPML_API_PORT": str(free_port())}).start()
    yield server
    server.stop()


def test_deploy_key_call_try_and_serve(deploy_server: Server, new_page, tmp_path: Path) -> None:
    server = deploy_server
    page = new_page()
    page.goto(server.url + "/deployment")
    log_in(page, server)
    wait_for_shell(page)
    settle(page)
    expect(page.get_by_role("heading", name="Deployment")).to_be_visible()
    expect(page.get_by_text("Nothing is deployed yet")).to_be_visible()

    # Deploy iris-lr (the first model), privately.
    page.get_by_role("button", name="Deploy", exact=True).click()
    expect(page.get_by_text("Deployed iris-lr:1").first).to_be_visible()
    settle(page)

    # Try a row in the page.
    page.get_by_role("tab", name="Try it").click()
    settle(page)
    rows = page.get_by_label("A row (JSON object")
    rows.fill(json.dumps(IRIS_ROW))
    rows.press("Control+Enter")
    settle(page)
    page.get_by_role("button", name="Predict").click()
    expect(page.get_by_text("Prediction: virginica")).to_be_visible()

    # Without a key the API refuses; create one, shown once, and call the API with it.
    url = f"{server.url}/api/predict?model=iris-lr"
    assert requests.post(url, json=[IRIS_ROW], timeout=30).status_code == 401
    page.get_by_label("Name of the new key").fill("e2e client")
    page.get_by_role("button", name="Create key").click()
    expect(page.get_by_text("Copy this key now")).to_be_visible()
    key = page.locator("code").filter(has_text=re.compile(r"^cml_")).first.inner_text().strip()
    answer = requests.post(
        url, json=[IRIS_ROW], headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    assert answer.json()["predictions"] == ["virginica"]
    page.get_by_role("button", name="I have copied it").click()
    settle(page)
    expect(page.get_by_text("Copy this key now")).to_have_count(0)
    expect(page.locator("code").filter(has_text=key)).to_have_count(0)
    assert key not in page.content()  # shown once only

    # The request is counted in the table (recorded within a second or two).
    table = page.get_by_test_id("stDataFrame").first
    expect(table).to_contain_text("iris-lr:1")
    last_request = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")  # empty until one is counted
    for _ in range(10):
        page.reload()
        settle(page)
        if last_request.search(table.inner_text()):
            break
        time.sleep(0.5)
    expect(table).to_contain_text(last_request)

    # Deploy the U-Net too and try an image: the overlay comes back.
    choose(page, "Model", "shapes-unet")
    page.get_by_role("button", name="Deploy", exact=True).click()
    expect(page.get_by_text("Deployed shapes-unet:1").first).to_be_visible()
    settle(page)
    # The page now shows the deployment just made.
    expect(page.get_by_role("combobox", name="Deployment")).to_have_value("shapes-unet:1")
    page.get_by_role("tab", name="Try it").click()
    settle(page)
    picture = next((server.home / "datasets").glob("*/images/*.png"))
    page.locator("input[type=file]").first.set_input_files(str(picture))
    settle(page)
    page.get_by_role("button", name="Predict").click()
    expect(page.get_by_text("Prediction", exact=True)).to_be_visible()
    expect(page.get_by_test_id("stImage")).to_have_count(2)
    expect(page.get_by_text("class_name").first).to_be_visible()
    page.get_by_test_id("stDataFrame").first.scroll_into_view_if_needed()
    page.mouse.wheel(0, 420)
    page.wait_for_timeout(300)
    shot(page, "deployment")
    page.get_by_role("tab", name="Client examples").click()
    settle(page)
    expect(page.get_by_text('"weight": "shapes-unet:1"').first).to_be_visible()

    # Start the standalone API server as a job; it serves both models with the same key.
    page.get_by_role("button", name="Start API server").click()
    settle(page)
    port = server.env_extra["CRISPML_API_PORT"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            listed = requests.get(
                f"http://127.0.0.1:{port}/models",
                headers={"Authorization": f"Bearer {key}"},
                timeout=5,
            )
            if listed.status_code == 200:
                break
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    assert listed.json() == ["logistic_regression", "unet_segmentation"]
    page.get_by_role("button", name="Refresh").click()
    settle(page)  # the old run's buttons stay on the page until the rerun has replaced them
    expect(page.get_by_text(re.compile(r"API server \(port \d+\): Running"))).to_be_visible()
    stop = page.get_by_role("button", name="Stop API server")
    # Streamlit can show the previous run's button (stale) beside the new one for a moment.
    expect(stop).to_have_count(1)
    stop.click()
    page.get_by_role("button", name="Confirm").click()
    settle(page)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
        except requests.ConnectionError:
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the API server did not stop")
