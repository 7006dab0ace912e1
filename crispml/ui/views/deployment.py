"""Deployment: registered models behind the REST API. Deploy a version (private or public),
see request counts, start the standalone API server, copy client examples, try a model on an
image or a row, and manage API keys."""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Callable
from typing import Any, TypeVar

import pandas as pd
import streamlit as st

from crispml.core.apikeys import ApiKey
from crispml.core.auth import User
from crispml.core.deployments import Deployment
from crispml.core.errors import CrispmlError, InvalidInput
from crispml.core.modeling import ModelVersion
from crispml.services import Services
from crispml.serving.api import shared_api
from crispml.serving.models import input_columns
from crispml.ui import context
from crispml.ui.widgets import feedback, pager
from crispml.ui.widgets.confirm import confirm_button

T = TypeVar("T")
PUBLIC_WARNING = (
    "A public deployment needs no API key: anyone who can reach the API (this app's /api/ or "
    "the API server's port) may send it data and read its predictions, as often as they like."
)
NEW_KEY = "_crispml.deployment.new_key"  # the key just created, shown once (never autosaved)
NAMES = 200  # model names offered in a box
KEYS_PAGE = "deploy.keys.page"
KEYS_PAGE_SIZE = 20


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _app_api_url() -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(st.context.url or "http://127.0.0.1:8501/")
    return f"{parts.scheme}://{parts.netloc}/api"


def render() -> None:
    user = context.current_user()
    services = context.services()
    st.title("Deployment")
    st.caption(
        "Serve registered models over REST (the article's /models, /configs, /base64 and "
        "/predict, and MLflow's /invocations), behind API keys."
    )
    feedback.show_pending()
    if not services.modeling.model_names(limit=1):
        st.info(
            "No model is registered yet: train one on **Modeling**, then register it on "
            "**Evaluation**.",
            icon=":material/info:",
        )
        return
    _server(services, user)
    _deploy(services, user)
    deployments = services.deployments.all()
    _table(deployments)
    if deployments:
        chosen = _manage(services, user, deployments)
        if chosen is not None:
            # Stateful tabs: a rerun (a prediction) keeps the one open; only it runs.
            examples, trying = st.tabs(
                ["Client examples", "Try it"], key="deploy.tabs", on_change="rerun"
            )
            if examples.open:
                with examples:
                    _examples(services, chosen)
            if trying.open:
                with trying:
                    _try(services, user, chosen)
    _keys(services, user, [d.model.name for d in deployments])


def _server(services: Services, user: User) -> None:
    state = services.api_server.state()
    st.subheader("API")
    st.markdown(
        f"- In this app, always on: `{_app_api_url()}/` (docs at `/api/docs`)\n"
        f"- API server (port {services.api_server.port}): {state.message}"
        + (f" `{services.api_server.url}/`" if state.answering else "")
    )
    row = st.container(horizontal=True)
    try:
        if not state.running and row.button(
            "Start API server", icon=":material/play_arrow:", key="deploy.server.start"
        ):
            services.api_server.start(user)
            feedback.done(f"Started the API server on port {services.api_server.port}.")
        if state.running:
            stop = confirm_button(
                "Stop API server",
                key="deploy.server.stop",
                message="Stop the API server? Its clients get no answer on port "
                f"{services.api_server.port} until it is started again (the API under "
                "/api/ of this app keeps answering).",
                icon=":material/stop:",
                place=row,
            )
            if stop:
                services.api_server.stop(user)
                feedback.done("Stopping the API server.")
        if state.running and row.button(
            "Refresh", icon=":material/refresh:", key="deploy.server.refresh"
        ):
            st.rerun()
    except CrispmlError as exc:
        feedback.error(exc)


def _deploy(services: Services, user: User) -> None:
    st.subheader("Deploy a model")
    starting = str(st.session_state.get("deploy.find") or "")
    names = services.modeling.model_names(
        None if user.is_admin else user.id, starting=starting, limit=NAMES
    )
    if len(names) == NAMES or starting:  # more than a box should hold: narrow it by name
        st.text_input(
            "Only the models whose name starts with",
            key="deploy.find",
            help=f"The box offers the first {NAMES} names in order.",
        )
    if not names and starting:
        st.caption(f"No model you may deploy has a name starting with '{starting}'.")
        return
    if not names:
        st.info(
            "None of the registered models is yours to deploy: register one of your runs on "
            "**Evaluation** (a model's owner, or an admin, deploys it).",
            icon=":material/info:",
        )
        return
    left, right = st.columns(2)
    name = left.selectbox("Model", names, key="wsu.deploy.model")
    versions = services.modeling.versions(name) if name is not None else []
    version = right.selectbox(
        "Version",
        versions,
        key=f"deploy.version.{name}",
        format_func=lambda m: (
            f"{m.version}"
            + (f" ({m.stage})" if m.stage else "")
            + f" · {m.algorithm} · "
            + ", ".join(f"{k} {v:.3g}" for k, v in list(m.metrics.items())[:2] if _number(v))
        ),
    )
    public = st.checkbox("Public: no API key needed", key="deploy.public")
    if public:
        st.warning(PUBLIC_WARNING, icon=":material/public:")
    if st.button("Deploy", type="primary", icon=":material/rocket_launch:", key="deploy.go"):
        try:
            found = services.deployments.deploy(user, name, version.version, public=public)
        except CrispmlError as exc:
            feedback.error(exc)
        else:
            st.session_state["wsu.deploy.chosen"] = found.weight  # show what was just deployed
            feedback.done(
                f"Deployed {found.weight}" + (" (public)" if found.public else "")
                + ". The API serves it within seconds."
            )  # fmt: skip


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _table(deployments: list[Deployment]) -> None:
    st.subheader("Deployed")
    if not deployments:
        st.caption("Nothing is deployed yet: choose a model above and press **Deploy**.")
        return
    rows = [
        {
            "Model": d.weight,
            "Algorithm": d.model.algorithm,
            "Input": "images" if d.model.task == "segmentation" else "table rows",
            "Access": "public" if d.public else "API key",
            "Requests": d.requests,
            "Errors": d.errors,
            "Last request": _when(d.last_request_at),
            "Environment": d.model.env,
            "Deployed by": d.owner,
        }
        for d in deployments
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="deploy.table")


def _manage(services: Services, user: User, deployments: list[Deployment]) -> Deployment | None:
    # One's own deployments first, so the examples show a model one's keys may call.
    weights = [d.weight for d in sorted(deployments, key=lambda d: d.model.owner_id != user.id)]
    chosen_weight = st.selectbox("Deployment", weights, key="wsu.deploy.chosen")
    chosen = next((d for d in deployments if d.weight == chosen_weight), None)
    if chosen is None:
        return None
    name, version = chosen.model.name, chosen.model.version
    row = st.container(horizontal=True)
    try:
        if confirm_button(
            "Undeploy",
            key=f"deploy.undeploy.{chosen.weight}",
            message=f"Stop serving {chosen.weight}? Clients using it get 404 from then on.",
            place=row,
        ):
            services.deployments.undeploy(user, name, version)
            feedback.done(f"Undeployed {chosen.weight}.")
        if chosen.public:
            if row.button("Make private", key=f"deploy.private.{chosen.weight}"):
                services.deployments.set_public(user, name, version, False)
                feedback.done(f"{chosen.weight} now needs an API key.")
        elif confirm_button(
            "Make public",
            key=f"deploy.makepublic.{chosen.weight}",
            message=PUBLIC_WARNING,
            place=row,
        ):
            services.deployments.set_public(user, name, version, True)
            feedback.done(f"{chosen.weight} is public.")
    except CrispmlError as exc:
        feedback.error(exc)
    return chosen


def _example_row(services: Services, user: User, model: ModelVersion) -> dict[str, Any]:
    columns = input_columns(model)
    row: dict[str, Any] = {c: 0.0 for c in columns}
    try:  # the first row of the data it was trained on, when it has the raw columns
        dataset = services.datasets.get(user.id, str(model.info["dataset"]["id"]))
        frame = services.datasets.sample_rows(dataset, 1)
        if set(columns) <= set(frame.columns):
            row = {c: frame.iloc[0][c].item() if hasattr(frame.iloc[0][c], "item")
                   else frame.iloc[0][c] for c in columns}  # fmt: skip
    except (CrispmlError, KeyError, OSError, ValueError, IndexError, TypeError):
        pass
    return row


def _examples(services: Services, chosen: Deployment) -> None:
    model = chosen.model
    base = _app_api_url()
    key_line = "" if chosen.public else ' -H "Authorization: Bearer $CRISPML_API_KEY"'
    py_key = "" if chosen.public else ', headers={"Authorization": f"Bearer {KEY}"}'
    py_head = "import requests\n" + (
        "" if chosen.public else 'KEY = "cml_..."  # an API key (see API keys below)\n'
    )
    st.caption(
        f"Through this app at `{base}`; the API server (when started) answers the same at "
        f"`{services.api_server.url}`."
    )
    if model.task == "segmentation":
        curl = (
            "base64 -w0 picture.png > picture.b64\n"
            f'curl -X POST "{base}/predict"{key_line} \\\n'
            f'  -F "images=<picture.b64" -F "Model_path={model.name}" \\\n'
            f'  -F "weight={chosen.weight}" -F "create_images=True"'
        )
        python = (
            py_head
            + "import base64\n\n"
            + f'URL = "{base}"\n'
            + 'params = {"images": [base64.b64encode(open("picture.png", "rb").read()).decode()],\n'
            + f'          "Model_path": "{model.name}", "weight": "{chosen.weight}",\n'
            + '          "create_images": True}\n'
            + f'res = requests.post(f"{{URL}}/predict", data=params{py_key})\n'
            + 'result, image = res.json()["Responses"][0]\n'
            + 'print(result["results"]["class_name"], result["results"]["scores"])'
        )
    else:
        row = json.dumps({c: 0.0 for c in input_columns(model)} or {"feature": 0.0})
        curl = (
            f'curl -X POST "{base}/invocations?model={chosen.weight}"{key_line} \\\n'
            f"  -H 'Content-Type: application/json' \\\n"
            f"  -d '{{\"dataframe_records\": [{row}]}}'"
        )
        python = (
            py_head
            + f'\nURL = "{base}"\n'
            + f"rows = [{row}]\n"
            + f'res = requests.post(f"{{URL}}/predict?model={chosen.weight}", json=rows'
            + f"{py_key})\n"
            + 'print(res.json()["predictions"])'
        )
    st.markdown("**curl**")
    st.code(curl, language="bash")
    st.markdown("**Python** (`requests`, in the article's style)")
    st.code(python, language="python")


def _parse_rows(text: str) -> list[dict[str, Any]]:
    text = text.strip()
    if not text:
        raise InvalidInput("Paste a row first.")
    if text[0] in "[{":
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise InvalidInput(f"That is not valid JSON: {exc}.") from None
        rows = value if isinstance(value, list) else [value]
        if not all(isinstance(r, dict) for r in rows):
            raise InvalidInput("Give a JSON object (feature to value) or a list of them.")
        return rows
    reader = csv.DictReader(io.StringIO(text))  # CSV with a header line
    rows = [dict(r) for r in reader]
    if not rows:
        raise InvalidInput("Give a header line and at least one row of values.")
    return rows


def _answer(spinner: str, call: Callable[[], T]) -> T | None:
    """``call()`` under a spinner, or None after saying why it failed: the input's fault (a
    CrispmlError) as it is, the model's own failure with a reference (never a traceback)."""
    try:
        with st.spinner(spinner):
            return call()
    except CrispmlError as exc:
        feedback.error(exc)
    except Exception as exc:
        feedback.unexpected(exc, "The model could not answer")
    return None


def _try(services: Services, user: User, chosen: Deployment) -> None:
    api = shared_api(services)
    # Loaded once per model and process.
    served = _answer(f"Loading {chosen.weight}…", lambda: api.served(chosen.model))
    if served is None:
        return
    if served.images:
        upload = st.file_uploader(
            "An image", type=["png", "jpg", "jpeg", "bmp", "webp"], key="deploy.try.image"
        )
        confidence = st.slider(
            "DETECTION_MIN_CONFIDENCE", 0.0, 1.0, 0.0, 0.05, key="deploy.try.confidence"
        )
        if upload is None or not st.button("Predict", type="primary", key="deploy.try.go"):
            return

        data = upload.getvalue()
        answer = _answer("Predicting…", lambda: api.try_image(served, data, confidence))
        if answer is None:
            return
        result, overlay = answer
        left, right = st.columns(2)
        left.image(upload.getvalue(), caption="Sent", width="stretch")
        if overlay:
            right.image(base64.b64decode(overlay), caption="Prediction", width="stretch")
        st.json(result)
        return
    example = json.dumps(_example_row(services, user, chosen.model))
    text = st.text_area(
        "A row (JSON object, list of objects, or CSV with a header line)",
        value=example,
        key=f"deploy.try.rows.{chosen.weight}",
        height=110,
    )
    if st.button("Predict", type="primary", key="deploy.try.go"):
        predictions = _answer("Predicting…", lambda: served.predict_rows(_parse_rows(text)))
        if predictions is None:
            return
        st.success(
            "Prediction: " + ", ".join(f"**{p}**" for p in predictions),
            icon=":material/check_circle:",
        )
        st.json({"predictions": predictions, "weight": chosen.weight})


def _keys(services: Services, user: User, deployed: list[str]) -> None:
    st.subheader("API keys")
    new = st.session_state.get(NEW_KEY)
    if new:
        st.warning(
            "Copy this key now: it is shown only this once (crispml keeps only its SHA-256).",
            icon=":material/key:",
        )
        st.code(new, language=None)
        if st.button("I have copied it", key="deploy.key.dismiss"):
            st.session_state.pop(NEW_KEY, None)
            st.rerun()
    with st.form("deploy.key.form", clear_on_submit=True, border=True):
        name = st.text_input("Name of the new key", placeholder="e.g. reporting dashboard")
        reach = "every deployed model" if user.is_admin else "each of your deployed models"
        scope = st.multiselect(
            f"Models it may use (none chosen: {reach})",
            sorted(
                set(services.modeling.model_names(None if user.is_admin else user.id))
                | {name for name in deployed if user.is_admin}
            ),
        )
        if st.form_submit_button("Create key", icon=":material/add:"):
            try:
                _, plain = services.apikeys.create(user, name, scope)
            except CrispmlError as exc:
                feedback.error(exc)
            else:
                st.session_state[NEW_KEY] = plain
                st.rerun()
    page = services.apikeys.page(user, number=pager.number(KEYS_PAGE), size=KEYS_PAGE_SIZE)
    keys = page.items
    if not keys:
        st.caption("No API keys yet: name one above and press **Create key**.")
        return
    st.dataframe(
        pd.DataFrame([_key_row(k, shows_owner=user.is_admin) for k in keys]),
        hide_index=True,
        width="stretch",
        key="deploy.keys.table",
    )
    pager.pager(KEYS_PAGE, page, "keys")
    active = [k for k in keys if k.active]
    if not active:
        return
    chosen = st.selectbox(
        "Key", active, format_func=lambda k: f"{k.name} ({k.shown})", key="deploy.key.chosen"
    )
    if chosen is not None and confirm_button(
        "Revoke",
        key=f"deploy.key.revoke.{chosen.key_id}",
        message=f"Revoke '{chosen.name}'? Clients using it get 401 from then on.",
    ):
        try:
            services.apikeys.revoke(user, chosen.key_id)
        except CrispmlError as exc:
            feedback.error(exc)
        else:
            feedback.done(f"Revoked '{chosen.name}'.")


def _key_row(key: ApiKey, *, shows_owner: bool) -> dict[str, Any]:
    row = {
        "Key": key.shown,
        "Name": key.name,
        "Models": ", ".join(key.models)
        or ("every deployed" if key.owner_is_admin else "its owner's deployed"),
        "Created": _when(key.created_at),
        "Last used": _when(key.last_used_at) or "never",
        "Status": "active" if key.active else f"revoked {_when(key.revoked_at)}",
    }
    if shows_owner:
        row["Owner"] = key.owner
    return row
