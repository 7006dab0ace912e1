"""The newcomer's path through the whole workbench, step by step, for one person in a real
browser (not a test file): log in, create a project, add the iris and shapes samples, prepare
the table, train two models at once in two environments while the charts follow them, refresh
mid-training, stop one run from the process table, compare the runs, register the best, deploy
it, call the API with the example the Deployment page shows, load the model in a notebook (in
JupyterLab in the page), open the license in a new tab, save the work, log out, and load the
work from another browser. A screenshot at each step.

Walked by an admin (test_newcomer_journey.py) and by a colleague without admin rights
(test_colleague_journey.py).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Locator, Page, WebSocket, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.e2e.conftest import choose, log_in, settle, shot, wait_for_shell
from tests.helpers import Server


@dataclass
class Newcomer:
    """One person on the path, with names of their own for what they make."""

    server: Server
    new_page: Callable[[], Page]
    tmp: Path
    username: str
    password: str
    project: str
    model: str
    key_name: str
    saved: str
    shots: str  # screenshot prefix
    page: Page = field(init=False)
    key: str = ""

    def step(self, number: int, name: str, page: Page | None = None) -> None:
        shot(page or self.page, f"{self.shots}-{number:02d}-{name}")

    def nav(self, label: str, page: Page | None = None) -> None:
        page = page or self.page
        link = (
            page.get_by_test_id("stSidebarNav")
            .get_by_role("link")
            .filter(has=page.get_by_text(label, exact=True))
        )
        heading = page.get_by_role("heading", name=label)
        for _ in range(3):
            link.click()
            try:  # the address changes at once when the app took the click
                page.wait_for_url(link.get_attribute("href") or "", timeout=10_000)
                break
            except PlaywrightTimeout:
                # Streamlit's frontend drops a page switch that lands while a fragment's
                # timed rerun (the process table, the live charts) is replacing the page.
                continue
        expect(heading).to_be_visible(timeout=60_000)
        settle(page)

    @property
    def sidebar(self) -> Locator:
        return self.page.get_by_test_id("stSidebar")


def options(page: Page, label: str) -> list[str]:
    """The options a selectbox offers (the grids are canvases; their selectboxes are not)."""
    box = page.get_by_test_id("stSelectbox").filter(has=page.get_by_text(label, exact=True))
    listed = page.get_by_role("option")
    for _ in range(3):  # a rerun landing with the click can close the list: try again
        settle(page)
        box.first.click()
        try:
            expect(listed.first).to_be_visible(timeout=5_000)
        except AssertionError:
            page.keyboard.press("Escape")
            continue
        texts = listed.all_inner_texts()
        page.keyboard.press("Escape")
        return texts
    raise AssertionError(f"the options of {label!r} never showed")


# The path, step by step -------------------------------------------------------------------------


def log_in_and_create_a_project(me: Newcomer) -> None:
    me.page = me.new_page()
    me.page.goto(me.server.url + "/")
    log_in(me.page, me.server, me.username, me.password)
    wait_for_shell(me.page)
    settle(me.page)
    me.step(1, "logged-in")
    # "New project" is open when one has no project yet; else open it.
    details = me.page.get_by_test_id("stExpander").filter(has_text="New project").locator("details")
    if details.get_attribute("open") is None:
        details.locator("summary").click()
    name = me.page.get_by_label("Name", exact=True).last
    expect(name).to_be_visible(timeout=60_000)  # a new server's first page can take a while
    name.fill(me.project)
    name.press("Tab")
    settle(me.page)
    me.page.get_by_role("button", name="Create project").click()
    expect(me.page.get_by_text(f"Created project '{me.project}'.").first).to_be_visible()
    settle(me.page)
    me.step(2, "project")


def add_the_samples(me: Newcomer) -> None:
    page = me.page
    me.nav("Data understanding")
    page.get_by_role("button", name="Add sample").click()  # iris, the default
    expect(page.get_by_text("Added the sample 'Iris' (150 rows).").first).to_be_visible()
    settle(page)
    if not page.get_by_role("combobox", name="Sample").is_visible():
        page.get_by_text("Add a sample").click()
    choose(page, "Sample", "Shapes")
    page.get_by_label("Images", exact=True).fill("24")
    page.get_by_label("Images", exact=True).press("Enter")
    settle(page)
    page.get_by_role("button", name="Add sample").click()
    expect(page.get_by_text("Added the sample 'Shapes'").first).to_be_visible()
    settle(page)
    me.step(3, "data")


def prepare_the_table(me: Newcomer) -> None:
    page = me.page
    me.nav("Data preparation")
    choose(page, "Dataset", "Iris")
    page.get_by_role("button", name="Prepare").click()
    expect(page.get_by_text("Prepared 'Iris · prepared 1'").first).to_be_visible()
    settle(page)
    me.step(4, "prepared")


def train_two_and_refresh(me: Newcomer) -> None:
    """Two runs at once, in two environments, with the live charts; then a refresh
    mid-training: the same page, the same choices, the runs still going."""
    page = me.page
    me.nav("Modeling")
    choose(page, "Algorithm", "Neural network, MLP")
    epochs = page.get_by_label("epochs", exact=True)
    # The run kept (the first) lasts until the other is stopped, with room for a loaded
    # machine (about 15 s alone, nearer a minute under the suite's load); the one stopped (the
    # newest, which the Jobs page offers first) would run for minutes.
    for env, count in (("system", "3000"), ("elsewhere", "10000")):
        epochs.fill(count)
        epochs.press("Enter")
        settle(page)
        choose(page, "Environment", f"^{env}")
        page.get_by_role("button", name="Train").click()
        expect(page.get_by_text("Started run").first).to_be_visible()
        settle(page)
    expect(me.sidebar.get_by_text("2 jobs active")).to_be_visible(timeout=30_000)
    chart = page.get_by_test_id("stVegaLiteChart").first
    # The first point needs a job started and torch imported: slow while the suite runs.
    expect(chart).to_be_visible(timeout=120_000)
    chart.scroll_into_view_if_needed()
    me.step(5, "training")
    if me.username == "admin":
        shot(page, "modeling")
    page.reload()
    wait_for_shell(page)
    expect(page.get_by_role("heading", name="Modeling")).to_be_visible()
    expect(page.get_by_role("combobox", name="Algorithm")).to_have_value(re.compile("MLP"))
    expect(page.get_by_label("epochs", exact=True)).to_have_value("10000")
    expect(me.sidebar.get_by_text("2 jobs active")).to_be_visible()
    settle(page)


def stop_one(me: Newcomer) -> None:
    page = me.page
    me.nav("Jobs")
    page.get_by_role("button", name="Stop job").click()
    page.get_by_role("button", name="Confirm").click()
    expect(me.sidebar.get_by_text("1 job active")).to_be_visible(timeout=30_000)
    me.step(6, "stopped-one")


def let_the_other_finish(me: Newcomer) -> None:
    me.nav("Modeling")
    expect(me.page.get_by_text("2 run(s), 0 queued or running.")).to_be_visible(timeout=240_000)
    settle(me.page)


def compare_and_register(me: Newcomer) -> None:
    page = me.page
    me.nav("Evaluation")
    expect(page.get_by_text(re.compile("Sorted by .*, best first"))).to_be_visible()
    page.get_by_label("Model name").fill(me.model)
    page.get_by_label("Model name").press("Enter")
    settle(page)
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_text(f"Registered {me.model} version 1.").first).to_be_visible()
    settle(page)
    me.step(7, "registered")
    if me.username == "admin":
        page.get_by_text("Runs to compare").scroll_into_view_if_needed()
        shot(page, "evaluation")


def deploy_and_call_it(me: Newcomer) -> None:
    """Deploy, make a key, and run the page's own Python example with it."""
    page = me.page
    me.nav("Deployment")
    choose(page, "Model", re.escape(me.model))
    page.get_by_role("button", name="Deploy", exact=True).click()
    expect(page.get_by_text(f"Deployed {me.model}:1").first).to_be_visible()
    settle(page)
    create_a_key(me)
    # The page shows the deployment just made (after the key's rerun too).
    expect(page.get_by_role("combobox", name="Deployment")).to_have_value(f"{me.model}:1")
    expect(page.locator("code.language-python").first).to_contain_text(f"{me.model}:1")
    example = page.locator("code.language-python").first.inner_text()
    assert 'KEY = "cml_..."' in example and me.model in example, example
    script = me.tmp / f"example-{me.username}.py"
    script.write_text(example.replace('KEY = "cml_..."', f'KEY = "{me.key}"'))
    ran = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert ran.returncode == 0, ran.stderr
    assert re.fullmatch(r"\['(setosa|versicolor|virginica)'\]\n", ran.stdout), ran.stdout
    me.step(8, "deployed")


def create_a_key(me: Newcomer) -> None:
    """On Deployment: a key, shown once."""
    page = me.page
    name = page.get_by_label("Name of the new key")
    name.fill(me.key_name)
    name.press("Tab")  # the value is committed when the field loses focus
    page.get_by_role("button", name="Create key").click()
    key = page.locator("code").filter(has_text=re.compile(r"^cml_")).first
    problem = page.get_by_test_id("stAlertContentError")
    expect(key.or_(problem).first).to_be_visible(timeout=60_000)  # a loaded machine is slow
    assert not problem.count(), problem.first.inner_text()
    me.key = key.inner_text().strip()
    page.get_by_role("button", name="I have copied it").click()
    settle(page)


def start_the_notebook(me: Newcomer) -> None:
    me.nav("Notebook")
    me.page.get_by_role("button", name="Start").click()


def load_the_model_in_a_notebook(me: Newcomer) -> None:
    """In JupyterLab inside the app: load the model, note its classes in a file."""
    page = me.page
    expect(page.get_by_text(re.compile(r"JupyterLab: Running"))).to_be_visible(timeout=90_000)
    frames: list[object] = []

    def follow(ws: WebSocket) -> None:
        if "/channels" in ws.url:
            ws.on("framereceived", lambda frame: frames.append(frame))

    page.on("websocket", follow)
    lab = page.frame_locator("iframe").first
    lab.locator(".jp-LauncherCard[data-category='Notebook']").first.click(timeout=90_000)
    editor = lab.locator(".jp-Notebook .jp-Cell .cm-content").first
    expect(editor).to_be_visible(timeout=60_000)
    # The kernel's channels are up (its first messages arrived) and the toolbar says idle.
    # (The idle indicator alone came too early once: the cell then never ran.)
    deadline = time.monotonic() + 90
    while len(frames) < 4:
        assert time.monotonic() < deadline, "the kernel's channels never opened"
        page.wait_for_timeout(100)
    idle = lab.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first
    expect(idle).to_be_attached(timeout=60_000)
    page.wait_for_timeout(1000)  # JupyterLab's own set-up after connecting has no signal
    editor.click()
    editor.type(
        "import crispml_job, pathlib\n"
        f'model = crispml_job.load_model("{me.model}")\n'
        f'pathlib.Path("{me.username}-classes.txt").write_text(str(model["meta"]["classes"]))\n'
        'print(model["meta"]["task"], model["meta"]["classes"])'
    )
    lab.get_by_title(re.compile("^Run this cell and advance")).first.click()
    expect(lab.locator(".jp-OutputArea-output").first).to_contain_text(
        "classification ['setosa', 'versicolor', 'virginica']", timeout=60_000
    )
    me.step(9, "notebook")
    if me.username == "admin":
        page.get_by_role("heading", name="Notebook").scroll_into_view_if_needed()
        shot(page, "notebook")
    link = page.get_by_role("link", name="Open in a new tab")
    assert link.get_attribute("href") == f"/jupyter/{me.username}/lab"
    page.get_by_role("button", name="Stop", exact=True).click()
    expect(page.get_by_text("Stop your JupyterLab? Its running kernels end")).to_be_visible()
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_text(re.compile(r"JupyterLab: Not running"))).to_be_visible(timeout=60_000)
    assert "Not running" in me.server.cli("notebook", "status", "--user", me.username)


def open_the_license(me: Newcomer) -> None:
    page = me.page
    page.get_by_role("link", name="About").click()
    expect(page.get_by_role("heading", name="About crispml")).to_be_visible()
    with page.expect_popup() as popup:
        page.get_by_role("link", name="License").click()
    license_page = popup.value
    license_page.wait_for_load_state()
    assert license_page.url.endswith("/files/about/LICENSE")
    expect(license_page.locator("body")).to_contain_text("License")
    license_page.close()


def save_and_log_out(me: Newcomer) -> None:
    page = me.page
    me.nav("Saved work")
    page.get_by_label("Name", exact=True).first.fill(me.saved)
    page.get_by_label("Name", exact=True).first.press("Tab")
    settle(page)
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text(f"Saved your workspace as '{me.saved}'.").first).to_be_visible()
    me.step(10, "saved")
    page.get_by_role("link", name="Log out").click()
    expect(page.locator("#username")).to_be_visible()


def load_it_in_another_browser(me: Newcomer) -> None:
    other = me.new_page()  # a browser context of its own: no cookies, no tabs
    other.goto(me.server.url + "/saved-work")
    log_in(other, me.server, me.username, me.password)
    wait_for_shell(other)
    expect(other.get_by_role("heading", name="Saved work")).to_be_visible()
    settle(other)
    expect(other.get_by_role("combobox", name="Saved work")).to_have_value(me.saved)
    other.get_by_role("button", name="Load", exact=True).click()
    loaded = other.get_by_text(f"Loaded '{me.saved}'.")
    confirm = other.get_by_role("button", name="Confirm")
    expect(loaded.or_(confirm).first).to_be_visible()
    if confirm.count():  # this browser's workspace had changes of its own: asked first
        confirm.click()
    expect(loaded.first).to_be_visible()
    me.nav("Modeling", other)  # the choices made on Modeling are back
    expect(other.get_by_role("combobox", name="Algorithm")).to_have_value(re.compile("MLP"))
    me.step(11, "loaded-elsewhere", other)
    me.page = other


NUMBERS = {  # the MLP's numeric fields: a value to set, and what each must refuse
    "hidden": "48",
    "layers": "2",
    "epochs": "3",
    "learning_rate": "0.02",
    "batch_size": "16",
    "weight_decay": "0.0",
}


def train_what_the_form_shows(me: Newcomer) -> dict[str, str]:
    """Two tabs of the browser that loaded the saved work: one changes the form, the other is
    told its workspace changed and reloads it; the fields hold the values chosen, never a
    minimum. A huge and a negative number in each numeric field: a message naming it, Train
    disabled. Then Train: returns the values on screen, which the run must have used."""
    first = me.page
    second = first.context.new_page()
    second.goto(me.server.url + "/modeling")
    wait_for_shell(second)
    expect(second.get_by_role("heading", name="Modeling")).to_be_visible()
    settle(second)
    me.nav("Modeling", first)
    for name, value in NUMBERS.items():
        box = first.get_by_label(name, exact=True)
        box.fill(value)
        box.press("Enter")
        settle(first)
    notice = second.get_by_text("Your workspace changed in another tab or browser.")
    expect(notice).to_be_visible(timeout=30_000)
    second.get_by_role("button", name="Reload workspace").click()
    settle(second)
    for name, value in NUMBERS.items():
        expect(second.get_by_label(name, exact=True)).to_have_value(value)
    train = second.get_by_role("button", name="Train")
    for name, value in NUMBERS.items():
        box = second.get_by_label(name, exact=True)
        for bad in ("99999999999999999999", "-5"):
            box.fill(bad)
            box.press("Enter")
            settle(second)
            expect(
                second.get_by_text(re.compile(rf"^{name} = {bad} is out of range"))
            ).to_be_visible()
            expect(train).to_be_disabled()
        box.fill(value)
        box.press("Enter")
        settle(second)
    expect(train).to_be_enabled()
    me.step(12, "form-checked", second)
    train.click()
    expect(second.get_by_text("Started run").first).to_be_visible()
    return dict(NUMBERS)


THE_PATH: tuple[Callable[[Newcomer], None], ...] = (
    log_in_and_create_a_project,
    add_the_samples,
    prepare_the_table,
    train_two_and_refresh,
    stop_one,
    let_the_other_finish,
    compare_and_register,
    deploy_and_call_it,
    start_the_notebook,
    load_the_model_in_a_notebook,
    open_the_license,
    save_and_log_out,
    load_it_in_another_browser,
)


def walk_the_path(me: Newcomer) -> None:
    for step in THE_PATH:
        started = time.monotonic()
        step(me)
        # Where a journey's minutes go, in the test's output (pytest -rA, or when it fails).
        print(f"{me.username}: {step.__name__} {time.monotonic() - started:.1f} s")
