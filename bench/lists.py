"""Benchmark: lists that do not grow with the rows behind them (issue 23).

Each list's page is rendered with 1,000 rows behind it (the baseline, measured in the same run),
then with 100,000 (saved work also at 10,000). Targets, checked and printed:
- every list's page at 100,000 rows costs at most 1.2x its page at 1,000;
- the Saved work page with 10,000 entries costs at most 150 ms of script time.
Lists: saved work, users (the admin's Users page), the audit log, API keys (everyone's, as an
admin sees them), runs (Modeling's table and the runs offered to plot), model versions (the
registry on Evaluation and Deployment's model and version boxes; 100 versions a model) and
datasets (Data understanding's table and the datasets offered). Rows are inserted in bulk, as
they would be after months of use.

Script time is timed inside the page's script (AppTest, real services on a real database); each
figure is the median of ``--repeats`` renders after one warm-up, and the range column shows how
noisy the machine was.

    .venv/bin/python bench/lists.py [--repeats 15] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, text
from streamlit.testing.v1 import AppTest

from crispml import services as services_module
from crispml.services import Services, bootstrap, build_services
from crispml.settings import Settings
from crispml.store.tables import (
    ApiKeyRow,
    AuditEventRow,
    DatasetRow,
    ModelRow,
    RunRow,
    SavedWorkRow,
    UserRow,
)
from crispml.ui import context

PASSWORD = "bench-password-4821"
PROJECT = 1  # the demo project bootstrap makes
SCRIPTS = {
    "saved work": "from crispml.ui.views import saved_work\nsaved_work.render()",
    "users": "from crispml.ui.views import admin\nadmin.render_users()",
    "audit log": "from crispml.ui.views import admin\nadmin.render_audit()",
    "API keys": (
        "from crispml.ui.views import deployment\n"
        "deployment._keys(context.services(), context.current_user(), [])"
    ),
    # The list parts of their pages: the rest of those pages reads the chosen run's or
    # dataset's files, which bulk-inserted rows do not have.
    "runs": (
        "from crispml.ui.views import modeling\nu = context.current_user()\n"
        f"modeling._runs({PROJECT})\nmodeling.recent_runs(u.id, {PROJECT})"
    ),
    "model versions": (
        "from crispml.ui.views import deployment, evaluation\nevaluation._registry()\n"
        "deployment._deploy(context.services(), context.current_user())"
    ),
    "datasets": (
        "from crispml.ui.views import data_understanding as du\nfrom crispml.ui.widgets import"
        " pager\nu = context.current_user()\n"
        f"p = context.services().datasets.recent(u.id, {PROJECT}, role='raw')\n"
        "du._datasets_table(p.items)\npager.pager('p', p)\n"
        f"du.dataset_choices(u.id, {PROJECT}, 'raw', None)"
    ),
}


def page_time(script: str, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats + 1):  # the first render warms caches up and is dropped
        at = AppTest.from_string(
            "import time\nimport streamlit as st\nfrom crispml.ui import context\n"
            "context.require_login()\nt = time.perf_counter()\n"
            f"{script}\nst.session_state['_t'] = time.perf_counter() - t\n",
            default_timeout=120,
        ).run()
        if at.exception:
            raise RuntimeError(at.exception[0].message)
        times.append(at.session_state["_t"])
    return times[1:]


def rows(kind: str, svc: Services, first: int, count: int, admin_id: int) -> Iterator[dict]:
    now = datetime.now(UTC)
    for i in range(first, first + count):
        at = now - timedelta(seconds=i)
        if kind == "saved work":
            document = json.dumps({"schema": 1, "page": "business", "refs": [],
                                   "values": {f"ws.v{j}": j for j in range(20)}})  # fmt: skip
            yield {"owner_id": admin_id, "name": f"work {i}", "description": "", "project_id": None,
                   "project_name": "Iris", "document": document, "holds": "20 values",
                   "size_bytes": len(document), "created_at": at, "updated_at": at}  # fmt: skip
        elif kind == "users":
            yield {"username": f"user{i:06d}", "password_hash": "x", "role": "user",
                   "active": True, "code": False, "network": False, "created_at": at,
                   "password_changed_at": at}  # fmt: skip
        elif kind == "audit log":
            yield {"at": at, "actor": f"user{i % 500}", "action": "project.update",
                   "target": f"project {i}", "detail": ""}  # fmt: skip
        elif kind == "API keys":
            yield {"key_id": uuid.uuid4().hex[:12], "owner_id": admin_id, "name": f"key {i}",
                   "key_hash": "0" * 64, "models": "[]", "created_at": at}  # fmt: skip
        elif kind == "runs":
            yield {"id": uuid.uuid4().hex[:12], "project_id": PROJECT, "owner_id": admin_id,
                   "algorithm": "logistic_regression", "task": "classification",
                   "params": '{"C": 1.0}', "env": "system", "dataset_id": "d",
                   "dataset_name": "Iris", "dataset_version": "v", "status": "succeeded",
                   "metrics": '{"validation_accuracy": 0.95}', "details": "{}", "error": "",
                   "duration_s": 1.5, "created_at": at, "finished_at": at}  # fmt: skip
        elif kind == "model versions":
            yield {"name": f"model-{i // 100:04d}", "version": i % 100 + 1,
                   "owner_id": admin_id, "run_id": "r", "algorithm": "logistic_regression",
                   "task": "classification", "env": "system", "params": "{}",
                   "metrics": '{"test_accuracy": 0.9}', "info": "{}", "path": "/nowhere",
                   "stage": "", "created_at": at}  # fmt: skip
        else:
            yield {"id": uuid.uuid4().hex[:12], "project_id": PROJECT, "owner_id": admin_id,
                   "name": f"data {i}", "kind": "table", "role": "raw", "source": "sample:iris",
                   "format": "csv", "schema": "[]", "rows": 150, "size_bytes": 5000,
                   "version": "v" * 16, "created_at": at}  # fmt: skip


TABLES: dict[str, Any] = {
    "saved work": SavedWorkRow, "users": UserRow, "audit log": AuditEventRow,
    "API keys": ApiKeyRow, "runs": RunRow, "model versions": ModelRow, "datasets": DatasetRow,
}  # fmt: skip


def grow(svc: Services, kind: str, to: int, admin_id: int) -> None:
    table = TABLES[kind]
    with svc.db.session() as s:
        have = s.scalar(select(func.count()).select_from(table)) or 0
    batch = list(rows(kind, svc, have, to - have, admin_id))
    with svc.db.session() as s:
        for start in range(0, len(batch), 10_000):
            s.execute(insert(table), batch[start : start + 10_000])
    if svc.db.engine.dialect.name == "postgresql":  # what autovacuum does within a minute
        with svc.db.engine.connect() as connection:
            connection.execute(text("ANALYZE " + table.__tablename__))
            connection.commit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--database-url", default="", help="default: SQLite in a new home")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="crispml-bench-lists-"))
    settings = Settings(home=tmp / "home", admin_password=PASSWORD, seed_sample_data=False,
                        database_url=args.database_url)  # fmt: skip
    svc = build_services(settings)
    bootstrap(svc)
    services_module.install(svc)
    token = svc.auth.login("admin", PASSWORD).token
    context.use_token_source(lambda: token)
    admin_id = svc.auth.first_admin().id
    assert [p.id for p in svc.projects.list(admin_id)] == [PROJECT], "a fresh home expected"

    sizes = {kind: [1_000, 100_000] for kind in SCRIPTS}
    sizes["saved work"] = [1_000, 10_000, 100_000]
    results: dict[tuple[str, int], list[float]] = {}
    for kind, script in SCRIPTS.items():
        for size in sizes[kind]:
            grow(svc, kind, size, admin_id)
            results[kind, size] = page_time(script, args.repeats)
            print(f"{kind} at {size:,} done", file=sys.stderr)

    ms: Callable[[list[float]], str] = lambda v: f"{statistics.median(v) * 1000:.1f}"  # noqa: E731
    spread: Callable[[list[float]], str] = lambda v: f"{min(v) * 1000:.0f}-{max(v) * 1000:.0f}"  # noqa: E731
    print(f"Lists on {svc.db.engine.dialect.name}, script time of the page, "
          f"{args.repeats} renders each\n")  # fmt: skip
    print("| list | rows | median (ms) | range (ms) | vs 1,000 rows | target |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    met = True
    for kind in SCRIPTS:
        base = statistics.median(results[kind, 1_000])
        for size in sizes[kind]:
            times = results[kind, size]
            ratio = statistics.median(times) / base
            target = ""
            if size == 100_000:
                ok = ratio <= 1.2
                met &= ok
                target = f"≤ 1.2x {'met' if ok else 'NOT met'}"
            if kind == "saved work" and size == 10_000:
                ok = statistics.median(times) <= 0.150
                met &= ok
                target = f"≤ 150 ms {'met' if ok else 'NOT met'}"
            print(f"| {kind} | {size:,} | {ms(times)} | {spread(times)} | {ratio:.2f}x | "
                  f"{target} |")  # fmt: skip
    print(f"\ntargets {'met' if met else 'NOT met'}")
    svc.db.dispose()
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
