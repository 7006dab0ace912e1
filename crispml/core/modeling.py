"""Training runs and the model registry.

A run is a job (kind "training", the same id) that runs ``python -m crispml_train`` in the
algorithm's environment with ``run.json`` (algorithm, hyperparameters, where the prepared data
is). Everything is checked before the job is submitted: the algorithm, its hyperparameters, the
dataset's task, and that the environment holds what the algorithm requires. When the job ends,
the run takes its final metrics, details and duration from ``result.json``.

Registering a run's model copies its artifacts to ``<home>/models/<name>/<version>/``; versions
count up per name and a number is never given twice, even after its version was deleted; a
stage (staging, production, archived) marks which version serves. A name's versions are one
kind of model: the same task and the same input (the columns a row needs, or images), so a
client calling the name always sends what every version understands.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import random
import re
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crispml.core.algorithms import AlgorithmRegistry, AlgorithmSpec
from crispml.core.audit import AuditLog
from crispml.core.auth import User
from crispml.core.clock import Clock, utcnow
from crispml.core.data.service import Dataset, DatasetService
from crispml.core.envs.requirements import unmet
from crispml.core.envs.service import EnvironmentService
from crispml.core.errors import (
    Conflict,
    CrispmlError,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from crispml.core.jobs import ACTIVE, FINISHED, JobService, JobSpec
from crispml.core.paging import PAGE_SIZE, Page, fetch
from crispml.core.records import read_job_file
from crispml.store.db import Database
from crispml.store.tables import AuditEventRow, DeploymentRow, ModelRow, RunRow

log = logging.getLogger(__name__)

STAGES = ("", "staging", "production", "archived")
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_SWEEP = 200


@dataclass(frozen=True)
class Run:
    id: str
    project_id: int
    owner_id: int
    algorithm: str
    task: str
    params: dict[str, Any]
    env: str
    dataset_id: str
    dataset_name: str
    dataset_version: str
    sweep: str | None
    status: str
    metrics: dict[str, Any]
    details: dict[str, Any]
    error: str
    duration_s: float | None
    created_at: datetime
    finished_at: datetime | None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


PREPROCESSING = "preprocessing.json"  # in a model version's folder: the data's fitted steps


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    run_id: str
    algorithm: str
    task: str
    env: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    info: dict[str, Any]
    path: str
    stage: str
    owner_id: int
    created_at: datetime
    module: str = field(default="")

    @property
    def inputs(self) -> dict[str, Any]:
        """What a prediction takes: ``{"kind": "images"}`` or ``{"kind": "table", "columns":
        [...]}`` (the raw columns before preparation, else the model's features)."""
        recorded = self.info.get("inputs")
        if isinstance(recorded, dict) and recorded.get("kind"):
            return recorded
        fitted: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError, AttributeError):  # older versions
            fitted = json.loads((Path(self.path) / PREPROCESSING).read_text()).get("fitted") or {}
        return _inputs(self.task, list(fitted), self.info.get("features") or [])


def _inputs(task: str, raw: list[str], features: list[Any]) -> dict[str, Any]:
    if task == "segmentation":
        return {"kind": "images"}
    return {"kind": "table", "columns": [str(c) for c in (raw or features)]}


def _describe(inputs: Mapping[str, Any]) -> str:
    if inputs.get("kind") == "images":
        return "images"
    columns = list(inputs.get("columns") or [])
    shown = ", ".join(columns[:8]) + (f" and {len(columns) - 8} more" if len(columns) > 8 else "")
    return f"rows of {shown}" if columns else "rows"


def _grid_point(names: list[str], options: list[list[Any]], index: int) -> dict[str, Any]:
    """The ``index``-th point of the grid, in itertools.product's order, without building it."""
    point: dict[str, Any] = {}
    for name, choices in zip(reversed(names), reversed(options), strict=True):
        index, position = divmod(index, len(choices))
        point[name] = choices[position]
    return {n: point[n] for n in names}


def _to_run(row: RunRow) -> Run:
    return Run(
        row.id,
        row.project_id,
        row.owner_id,
        row.algorithm,
        row.task,
        json.loads(row.params),
        row.env,
        row.dataset_id,
        row.dataset_name,
        row.dataset_version,
        row.sweep,
        row.status,
        json.loads(row.metrics),
        json.loads(row.details),
        row.error,
        row.duration_s,
        row.created_at,
        row.finished_at,
    )


def _to_model(row: ModelRow) -> ModelVersion:
    info = json.loads(row.info)
    return ModelVersion(
        row.name,
        row.version,
        row.run_id,
        row.algorithm,
        row.task,
        row.env,
        json.loads(row.params),
        json.loads(row.metrics),
        info,
        row.path,
        row.stage,
        row.owner_id,
        row.created_at,
        info.get("module", ""),
    )


class ModelingService:
    def __init__(
        self,
        db: Database,
        home: Path,
        jobs: JobService,
        datasets: DatasetService,
        environments: EnvironmentService,
        algorithms: AlgorithmRegistry,
        audit: AuditLog,
        clock: Clock = utcnow,
    ) -> None:
        self._db = db
        self._home = home
        self._jobs = jobs
        self._datasets = datasets
        self._envs = environments
        self.algorithms = algorithms
        self._audit = audit
        self._clock = clock

    # --- checks ------------------------------------------------------------------------------

    def environment_problems(self, env: str, spec: AlgorithmSpec) -> list[str]:
        """What ``env`` lacks for ``spec`` (checked with its own interpreter once, then from
        what that check found)."""
        try:
            environment = self._envs.get(env)
        except NotFound:
            return [f"the environment '{env}' does not exist"]
        if not environment.ready:
            return [f"the environment '{env}' is still being built"]
        if environment.checked_at is None and environment.kind != "system":
            self._envs.check(env)
            environment = self._envs.get(env)
        return unmet(spec.requirements, environment.packages, environment.python_version)

    def suitable_environments(self, spec: AlgorithmSpec) -> list[str]:
        return [e.name for e in self._envs.satisfying(spec.requirements)]

    def _prepared(self, user: User, dataset_id: str, spec: AlgorithmSpec) -> Dataset:
        dataset = self._datasets.get(user.id, dataset_id)
        if dataset.role != "prepared":
            raise InvalidInput(
                f"'{dataset.name}' is not prepared: train on a version made in Data preparation."
            )
        task = dataset.details.get("task")
        size = dataset.details.get("image_size")
        if dataset.kind == "images" and isinstance(size, int) and size % 8:
            raise InvalidInput(
                f"'{dataset.name}' resizes images to {size} pixels; segmentation needs a "
                "multiple of 8 (e.g. 64): prepare it again."
            )
        if task != spec.task:
            raise InvalidInput(
                f"{spec.title} is for {spec.task}, but '{dataset.name}' is prepared for {task}."
            )
        return dataset

    def _data_block(self, dataset: Dataset) -> dict[str, Any]:
        details = dataset.details
        block: dict[str, Any] = {
            "task": details.get("task"),
            "target": details.get("target"),
            "classes": details.get("classes", []),
            "version": dataset.version,
        }
        folder = self._datasets.folder(dataset.id)
        if dataset.kind == "table":
            block["kind"] = "table"
            block["parts"] = {
                p: str(folder / f"{p}.parquet") for p in ("train", "validation", "test")
            }
        else:
            assert dataset.parent_id is not None
            block.update(
                kind="images",
                root=str(self._datasets.folder(dataset.parent_id)),
                images=dataset.recipe.get("parts", {}),
                image_size=dataset.recipe.get("size", 64),
                augment=dataset.recipe.get("augment", []),
            )
        return block

    def resolve_data(self, user: User, project_id: int, ref: str) -> Dataset:
        """A prepared dataset from what a user types: ``sample:iris`` (the sample, added and
        prepared with its default recipe once), a dataset's id or name (raw ones are prepared
        with the default recipe, once)."""
        from crispml.core.data.prepare import ImageRecipe, Recipe
        from crispml.core.data.samples import SAMPLES

        datasets = self._datasets.all(user.id, project_id)
        if ref.startswith("sample:"):
            sample = ref.removeprefix("sample:")
            if sample not in SAMPLES:
                raise InvalidInput(f"No sample named '{sample}'; there are: {', '.join(SAMPLES)}.")
            found = [d for d in datasets if d.role == "raw" and d.source.startswith(ref)]
            raw = found[0] if found else self._datasets.add_sample(user, project_id, sample)
        else:
            matches = [d for d in datasets if ref in (d.id, d.name)]
            if not matches:
                raise NotFound(f"No dataset '{ref}' in this project.")
            raw = matches[0]
        if raw.role == "prepared":
            return raw
        children = [d for d in datasets if d.parent_id == raw.id]
        if children:
            return children[-1]  # the latest prepared version
        if raw.kind == "images":
            return self._datasets.prepare_images(user, raw.id, ImageRecipe())
        target = str(raw.details.get("target") or raw.columns[-1])
        task = str(raw.details.get("task") or "")
        if task not in ("classification", "regression"):
            numeric = raw.kinds().get(target) == "numeric"
            distinct = self._datasets.frame(raw)[target].nunique()
            task = "regression" if numeric and distinct > 20 else "classification"
        features = [c for c in raw.columns if c != target]
        return self._datasets.prepare(user, raw.id, Recipe(target, features, task))

    # --- runs --------------------------------------------------------------------------------

    def start(
        self,
        user: User,
        dataset_id: str,
        algorithm: str,
        params: Mapping[str, Any],
        env: str = "system",
        *,
        sweep: str | None = None,
        seed: int = 0,
    ) -> Run:
        """Check everything, then start a training job; the run shares the job's id."""
        spec = self.algorithms.get(algorithm)
        dataset = self._prepared(user, dataset_id, spec)
        checked = spec.check_params(params)
        problems = self.environment_problems(env, spec)
        if problems:
            raise InvalidInput(
                f"{spec.title} cannot run in '{env}': {'; '.join(problems)}. Choose an "
                "environment that has what it needs, or build one (Environments)."
            )
        data = self._data_block(dataset)
        run_spec = {
            "algorithm": spec.name,
            "entry": spec.entry,
            "params": checked,
            "seed": seed,
            "data": data,
        }
        shown = ", ".join(f"{k}={v}" for k, v in checked.items())
        given = [data["root"]] if "root" in data else list(data.get("parts", {}).values())
        job = self._jobs.submit(
            user.id,
            user.username,
            JobSpec(
                ["python", "-m", "crispml_train"],
                f"{spec.name} on {dataset.name} ({shown})"[:200],
                "sweep trial" if sweep else "training",
                env,
                files={"run.json": json.dumps(run_spec, indent=2)},
                mounts=[(str(path), "ro") for path in given],  # exactly the data it is given
            ),
        )
        with self._db.session() as s:
            s.add(
                RunRow(
                    id=job.id,
                    project_id=dataset.project_id,
                    owner_id=user.id,
                    algorithm=spec.name,
                    task=spec.task,
                    params=json.dumps(checked),
                    env=env,
                    dataset_id=dataset.id,
                    dataset_name=dataset.name,
                    dataset_version=dataset.version,
                    sweep=sweep,
                    status=job.status,
                    created_at=self._clock(),
                )
            )
            self._audit.add(s, user.username, "run.start", job.id, spec.name)
        return self.get(user.id, job.id)

    def sweep(
        self,
        user: User,
        dataset_id: str,
        algorithm: str,
        base: Mapping[str, Any],
        values: Mapping[str, Sequence[Any]],
        env: str = "system",
        *,
        random_points: int = 0,
        seed: int = 0,
    ) -> list[Run]:
        """One run per point: the grid of ``values`` (every combination), or ``random_points``
        points drawn from it. All points are checked before the first job starts; the jobs
        then queue under the concurrency limit."""
        spec = self.algorithms.get(algorithm)
        if not values:
            raise InvalidInput("Choose at least one hyperparameter to sweep and its values.")
        names = list(values)
        if any(len(values[n]) > 10_000 for n in names):
            raise InvalidInput("Give at most 10,000 values per hyperparameter.")
        options = [list(dict.fromkeys(spec.param(n).parse(v) for v in values[n])) for n in names]
        if any(not o for o in options):
            raise InvalidInput("Give each swept hyperparameter at least one value.")
        size = math.prod(len(o) for o in options)  # counted, never built, before the limit
        wanted = min(random_points, size) if random_points else size
        if wanted > MAX_SWEEP:
            raise InvalidInput(f"That sweep has {wanted:,} points; at most {MAX_SWEEP}.")
        if random_points:
            rng = random.Random(seed)  # noqa: S311 - sampling a grid, not security
            picked = rng.sample(range(size), wanted)
            grid = [_grid_point(names, options, index) for index in picked]
        else:
            grid = [dict(zip(names, combo, strict=True)) for combo in itertools.product(*options)]
        points = [spec.check_params({**base, **point}) for point in grid]
        self._prepared(user, dataset_id, spec)
        sweep_id = uuid.uuid4().hex[:12]
        return [
            self.start(user, dataset_id, algorithm, p, env, sweep=sweep_id, seed=seed)
            for p in points
        ]

    def _settle(self, rows: list[RunRow]) -> None:
        for row in rows:
            if row.status in FINISHED:
                continue
            try:
                job = self._jobs.get(0, row.id, admin=True)
            except NotFound:
                row.status, row.error = "lost", "its job was deleted"
                continue
            row.status = job.status
            if not job.finished:
                continue
            row.finished_at = job.ended_at
            try:
                result = json.loads(read_job_file(Path(job.workdir) / "result.json", 64_000_000))
            except (OSError, ValueError):
                result = {}
            row.metrics = json.dumps(result.get("metrics", {}))
            row.details = json.dumps(result.get("details", {}))
            row.duration_s = result.get("duration_s")
            row.error = str(result.get("error") or (job.error if job.status != "succeeded" else ""))

    def all(self, user_id: int, project_id: int) -> list[Run]:
        with self._db.session() as s:
            rows = list(
                s.scalars(
                    select(RunRow)
                    .where(RunRow.owner_id == user_id, RunRow.project_id == project_id)
                    .order_by(RunRow.created_at.desc())
                )
            )
            self._settle(rows)
            return [_to_run(r) for r in rows]

    def recent(
        self,
        user_id: int,
        project_id: int,
        *,
        succeeded: bool = False,
        number: int = 1,
        size: int = PAGE_SIZE,
    ) -> Page[Run]:
        """One page of the project's runs (only the succeeded ones with ``succeeded``), newest
        first. Only the page's runs are brought up to date with their jobs."""
        query = (
            select(RunRow)
            .where(RunRow.owner_id == user_id, RunRow.project_id == project_id)
            .order_by(RunRow.created_at.desc(), RunRow.id.desc())
        )
        if succeeded:
            query = query.where(RunRow.status == "succeeded")
        with self._db.session() as s:
            rows: Page[RunRow] = fetch(s, query, lambda row: row, number=number, size=size)
            self._settle(rows.items)
            return Page(
                [_to_run(r) for r in rows.items], rows.total, rows.number, rows.size, rows.more
            )

    def active(self, user_id: int, project_id: int) -> list[Run]:
        """The project's runs that are queued or running, newest first (settled first: a run
        whose job has ended since it was last read is not among them)."""
        # Unordered in SQL, so the status index finds the few (ordering there would walk the
        # project's runs by time instead); ordered here.
        query = select(RunRow).where(
            RunRow.owner_id == user_id,
            RunRow.project_id == project_id,
            RunRow.status.in_(ACTIVE),
        )
        with self._db.session() as s:
            rows = sorted(s.scalars(query), key=lambda r: (r.created_at, r.id), reverse=True)
            self._settle(rows)
            return [_to_run(r) for r in rows if r.status not in FINISHED]

    def get(self, user_id: int, run_id: str) -> Run:
        with self._db.session() as s:
            row = s.get(RunRow, run_id)
            if row is None or row.owner_id != user_id:
                raise NotFound(f"No run {run_id}.")
            self._settle([row])
            return _to_run(row)

    def run_folder(self, run: Run) -> Path:
        return self._jobs.runtime.workdir(run.id)

    # --- the model registry ---------------------------------------------------------------

    def register(self, user: User, run_id: str, name: str, *, stage: str = "") -> ModelVersion:
        """Copy a succeeded run's model into the registry as the next version of ``name``.

        Refused when ``name`` belongs to another user, or when its versions are of another
        task or take other input than this run's model (see ``_refuse_mixed``)."""
        run = self.get(user.id, run_id)
        if not MODEL_NAME.fullmatch(name or ""):
            raise InvalidInput(
                f"'{name}' cannot name a model: 1 to 64 letters, digits, '.', '_' or '-'."
            )
        if stage not in STAGES:
            raise InvalidInput(f"Unknown stage '{stage}'; use one of: {', '.join(STAGES[1:])}.")
        if run.status != "succeeded":
            raise Conflict(f"Run {run.id} is {run.status}: only a succeeded run has a model.")
        self._check_owner(user, name)
        artifacts = self.run_folder(run) / "artifacts"
        if not artifacts.is_dir() or not any(artifacts.iterdir()):
            raise Conflict(f"Run {run.id} saved no model artifacts.")
        spec = self.algorithms.get(run.algorithm)
        meta_path = artifacts / "model.json"
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        recipe = self._datasets.folder(run.dataset_id) / "recipe.json"
        fitted = json.loads(recipe.read_text()).get("fitted") if recipe.exists() else None
        inputs = _inputs(run.task, list(fitted or {}), meta.get("features") or [])
        info = {
            "classes": meta.get("classes", []),
            "target": meta.get("target", ""),
            "features": meta.get("features", []),
            "inputs": inputs,
            "dataset": {
                "id": run.dataset_id,
                "name": run.dataset_name,
                "version": run.dataset_version,
            },
            "module": spec.module,
            "format": meta.get("format", ""),
        }
        with self._db.session() as s:  # before copying anything; again when the row is added
            _refuse_mixed(s, name, run, inputs)
        for _ in range(5):  # two registrations of the same name at once: the loser retries
            with self._db.session() as s:
                version = _highest_version(s, name) + 1
            while (self._home / "models" / name / str(version)).exists():
                version += 1  # a folder a crash left behind: never reuse it
            target = self._home / "models" / name / str(version)
            try:
                shutil.copytree(artifacts, target)
                if recipe.exists():  # how raw rows become the model's input, for serving
                    shutil.copyfile(recipe, target / PREPROCESSING)
            except FileExistsError:
                continue
            except OSError as exc:
                shutil.rmtree(target, ignore_errors=True)
                raise Conflict(f"The model's files could not be copied: {exc}") from exc
            try:
                with self._db.session() as s:
                    _refuse_mixed(s, name, run, inputs)
                    s.add(
                        ModelRow(
                            name=name,
                            version=version,
                            owner_id=user.id,
                            run_id=run.id,
                            algorithm=run.algorithm,
                            task=run.task,
                            env=run.env,
                            params=json.dumps(run.params),
                            metrics=json.dumps(run.metrics),
                            info=json.dumps(info),
                            path=str(target),
                            stage="",
                            created_at=self._clock(),
                        )
                    )
                    self._audit.add(s, user.username, "model.register", f"{name}:{version}", run.id)
            except IntegrityError:
                shutil.rmtree(target, ignore_errors=True)
                continue
            except CrispmlError:
                shutil.rmtree(target, ignore_errors=True)
                raise
            if stage:
                self.set_stage(user, name, version, stage)
            return self.model(name, version)
        raise Conflict(f"Could not register '{name}': too many registrations at once; try again.")

    def delete_version(self, user: User, name: str, version: int) -> ModelVersion:
        """Remove a version from the registry and its folder from disk (its owner or an admin).

        Refused while the version is deployed. Its number is not given again."""
        model = self.model(name, version)
        if not user.is_admin and model.owner_id != user.id:
            raise PermissionDenied(
                f"{name}:{version} belongs to another user: only its owner or an admin may "
                "delete it."
            )
        with self._db.session() as s:
            row = s.scalar(
                select(ModelRow).where(ModelRow.name == name, ModelRow.version == version)
            )
            if row is None:
                raise NotFound(f"No model '{name}' version {version}.")
            if s.scalar(select(DeploymentRow.id).where(DeploymentRow.model_id == row.id)):
                raise Conflict(
                    f"{name}:{version} is deployed: undeploy it first (Deployment page, or "
                    f"crispml models undeploy {name}:{version}), then delete it."
                )
            s.delete(row)
            self._audit.add(s, user.username, "model.delete", f"{name}:{version}", model.run_id)
        folder = Path(model.path)
        models = (self._home / "models").resolve()
        if folder.resolve().parent.parent == models:  # only ever a folder of the registry
            shutil.rmtree(folder, ignore_errors=True)
            if folder.exists():
                log.warning("could not remove all of %s", folder)
            with contextlib.suppress(OSError):
                folder.parent.rmdir()  # the name's folder, once its last version is gone
        return model

    def _check_owner(self, user: User, name: str) -> None:
        """A model name belongs to whoever registered its first version (and to admins)."""
        if user.is_admin:
            return
        with self._db.session() as s:
            first = s.scalar(
                select(ModelRow.owner_id).where(ModelRow.name == name).order_by(ModelRow.version)
            )
        if first is not None and first != user.id:
            raise PermissionDenied(
                f"The model '{name}' belongs to another user; choose another name."
            )

    def models(self) -> list[ModelVersion]:
        """Every version of every model, by name, newest version first."""
        with self._db.session() as s:
            rows = s.scalars(select(ModelRow).order_by(ModelRow.name, ModelRow.version.desc()))
            return [_to_model(r) for r in rows]

    def versions_page(self, *, number: int = 1, size: int = PAGE_SIZE) -> Page[ModelVersion]:
        """One page of the registry: every model's versions, the newest registered first."""
        query = select(ModelRow).order_by(ModelRow.id.desc())
        with self._db.session() as s:
            return fetch(s, query, _to_model, number=number, size=size)

    def model_names(
        self, owner_id: int | None = None, *, starting: str = "", limit: int = 200
    ) -> list[str]:
        """The registered models' names, by name: the first ``limit`` of those that start
        with ``starting`` (of one owner's models, with ``owner_id``).

        A loose index scan: one index seek per name (a recursive query, on both databases),
        so the cost follows the names returned, not the versions behind them."""
        owner = ModelRow.owner_id == owner_id if owner_id is not None else true()
        first = select(func.min(ModelRow.name)).where(owner, ModelRow.name >= starting)
        names = select(first.scalar_subquery().label("name")).cte("names", recursive=True)
        following = select(func.min(ModelRow.name)).where(owner, ModelRow.name > names.c.name)
        names = names.union_all(
            select(following.scalar_subquery()).where(
                names.c.name.is_not(None), names.c.name.startswith(starting, autoescape=True)
            )
        )
        query = select(names.c.name).where(
            names.c.name.is_not(None), names.c.name.startswith(starting, autoescape=True)
        )
        with self._db.session() as s:
            return list(s.scalars(query.limit(limit)))

    def versions(self, name: str, limit: int = 200) -> list[ModelVersion]:
        """A model's newest versions, newest first."""
        query = (
            select(ModelRow)
            .where(ModelRow.name == name)
            .order_by(ModelRow.version.desc())
            .limit(limit)
        )
        with self._db.session() as s:
            return [_to_model(r) for r in s.scalars(query)]

    def model(self, name: str, version: int | None = None) -> ModelVersion:
        """A version, or the production one (else the newest) when ``version`` is None."""
        with self._db.session() as s:
            query = select(ModelRow).where(ModelRow.name == name)
            if version is not None:
                row = s.scalar(query.where(ModelRow.version == version))
            else:
                row = s.scalar(query.where(ModelRow.stage == "production")) or s.scalar(
                    query.order_by(ModelRow.version.desc()).limit(1)
                )
            if row is None:
                which = f" version {version}" if version is not None else ""
                raise NotFound(f"No model '{name}'{which}.")
            return _to_model(row)

    def set_stage(self, user: User, name: str, version: int, stage: str) -> ModelVersion:
        """Set a version's stage; a new production version archives the previous one."""
        if stage not in STAGES:
            raise InvalidInput(f"Unknown stage '{stage}'; use one of: {', '.join(STAGES[1:])}.")
        self.model(name, version)
        self._check_owner(user, name)
        with self._db.session() as s:
            if stage == "production":
                for other in s.scalars(
                    select(ModelRow).where(ModelRow.name == name, ModelRow.stage == "production")
                ):
                    other.stage = "archived"
            row = s.scalar(
                select(ModelRow).where(ModelRow.name == name, ModelRow.version == version)
            )
            assert row is not None
            row.stage = stage
            self._audit.add(s, user.username, "model.stage", f"{name}:{version}", stage or "none")
        return self.model(name, version)


def _highest_version(s: Session, name: str) -> int:
    """The highest version number ``name`` ever had: its rows', and its deleted versions' (the
    audit log records every registration in the same transaction as its row)."""
    highest = s.scalar(select(func.max(ModelRow.version)).where(ModelRow.name == name)) or 0
    targets = s.scalars(
        select(AuditEventRow.target).where(
            AuditEventRow.action == "model.register",
            AuditEventRow.target.startswith(f"{name}:", autoescape=True),
        )
    )
    for target in targets:
        number = target.rpartition(":")[2]
        if number.isdigit():
            highest = max(highest, int(number))
    return highest


def _refuse_mixed(s: Session, name: str, run: Run, inputs: Mapping[str, Any]) -> None:
    """A name's versions share one task and one input: refuse a run of another."""
    row = s.scalar(select(ModelRow).where(ModelRow.name == name).order_by(ModelRow.version))
    if row is None:
        return
    first = _to_model(row)
    held = first.inputs
    if first.task != run.task:
        raise InvalidInput(
            f"'{name}' holds {first.task} models (version {first.version}: {first.algorithm}, "
            f"taking {_describe(held)}); run {run.id} is a {run.task} model ({run.algorithm} "
            f"on {run.dataset_name}). A name's versions must share a task: register it under "
            "another name."
        )
    same = held.get("kind") == inputs.get("kind") and sorted(held.get("columns") or []) == sorted(
        inputs.get("columns") or []
    )
    if not same:
        raise InvalidInput(
            f"'{name}' holds {first.task} models taking {_describe(held)}; run {run.id}'s "
            f"{run.task} model ({run.algorithm} on {run.dataset_name}) takes "
            f"{_describe(inputs)}. A name's versions must take the same input: register it "
            "under another name."
        )
