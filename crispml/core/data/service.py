"""Datasets of a project: registered from the user's files or built from a sample, each an
immutable copy under ``<home>/datasets/<id>/`` with its schema, size and a content version;
profiles cached by version (computed as a job for large tables); prepared versions with their
recipe."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from crispml.core import records
from crispml.core.audit import AuditLog
from crispml.core.auth import User
from crispml.core.clock import Clock, utcnow
from crispml.core.data import loaders
from crispml.core.data import prepare as recipes
from crispml.core.data.profile import column_kind, profile_table
from crispml.core.data.profile_job import PROFILE_FILE
from crispml.core.data.samples import SAMPLES, table_sample
from crispml.core.errors import Conflict, InvalidInput, NotFound
from crispml.core.jobs import Job, JobService, JobSpec
from crispml.core.paging import PAGE_SIZE, Page, fetch
from crispml.store.db import Database
from crispml.store.tables import DatasetRow

if TYPE_CHECKING:
    import pandas as pd

# Tables with more cells than this are profiled as a job, smaller ones at once: about 0.1 us a
# cell here (bench/data_profile.py: 8 million cells in 0.8 s), so a page waits a second or two.
PROFILE_INLINE_CELLS = 10_000_000
MAX_PROFILE_BYTES = 64_000_000  # a profile job's result, read back from its folder
TABLE_FILE = "data.parquet"
PARTS = ("train", "validation", "test")

MAX_CLASSES_GUESSED = 20  # a numeric target with at most this many values: classes


@dataclass(frozen=True)
class Dataset:
    id: str
    project_id: int
    owner_id: int
    name: str
    kind: str  # table or images
    role: str  # raw or prepared
    source: str
    format: str
    schema: list[dict[str, str]]
    rows: int
    size_bytes: int
    version: str
    created_at: datetime
    parent_id: str | None = None
    recipe: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        return [c["name"] for c in self.schema]

    def kinds(self) -> dict[str, str]:
        return {c["name"]: c["kind"] for c in self.schema}


def _to_dataset(row: DatasetRow) -> Dataset:
    return Dataset(
        row.id,
        row.project_id,
        row.owner_id,
        row.name,
        row.kind,
        row.role,
        row.source,
        row.format,
        json.loads(row.schema),
        row.rows,
        row.size_bytes,
        row.version,
        row.created_at,
        row.parent_id,
        json.loads(row.recipe),
        json.loads(row.details),
    )


def _schema(frame: pd.DataFrame) -> list[dict[str, str]]:
    return [
        {"name": str(c), "dtype": str(frame[c].dtype), "kind": column_kind(frame[c])}
        for c in frame.columns
    ]


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _file_digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(path.name.encode())
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


@lru_cache(maxsize=8)
def _read_parquet(path: str, version: str) -> pd.DataFrame:
    import pandas as pd

    return pd.read_parquet(path)


@lru_cache(maxsize=8)
def _sample(path: str, version: str, n: int) -> pd.DataFrame:
    frame = _read_parquet(path, version)
    return frame.sample(n=min(n, len(frame)), random_state=0).sort_index()


class DatasetService:
    def __init__(
        self,
        db: Database,
        home: Path,
        jobs: JobService,
        audit: AuditLog,
        project_exists: Callable[[int, int], bool],
        clock: Clock = utcnow,
    ) -> None:
        self._db = db
        self.root = home / "datasets"
        self._jobs = jobs
        self._audit = audit
        self._project_exists = project_exists
        self._clock = clock

    def folder(self, dataset_id: str) -> Path:
        return self.root / dataset_id

    # --- reading ------------------------------------------------------------------------------

    def all(self, user_id: int, project_id: int, role: str | None = None) -> list[Dataset]:
        with self._db.session() as s:
            query = (
                select(DatasetRow)
                .where(DatasetRow.owner_id == user_id, DatasetRow.project_id == project_id)
                .order_by(DatasetRow.created_at, DatasetRow.name)
            )
            if role:
                query = query.where(DatasetRow.role == role)
            return [_to_dataset(r) for r in s.scalars(query)]

    def recent(
        self,
        user_id: int,
        project_id: int,
        *,
        role: str | None = None,
        number: int = 1,
        size: int = PAGE_SIZE,
    ) -> Page[Dataset]:
        """One page of the project's datasets (of one role: raw or prepared), newest first."""
        query = (
            select(DatasetRow)
            .where(DatasetRow.owner_id == user_id, DatasetRow.project_id == project_id)
            .order_by(DatasetRow.created_at.desc(), DatasetRow.id.desc())
        )
        if role:
            query = query.where(DatasetRow.role == role)
        with self._db.session() as s:
            return fetch(s, query, _to_dataset, number=number, size=size)

    def prepared_from(self, user_id: int, source_id: str, limit: int = 200) -> list[Dataset]:
        """The newest prepared versions of a dataset, oldest of them first."""
        query = (
            select(DatasetRow)
            .where(DatasetRow.owner_id == user_id, DatasetRow.parent_id == source_id)
            .order_by(DatasetRow.created_at.desc(), DatasetRow.id.desc())
            .limit(limit)
        )
        with self._db.session() as s:
            return [_to_dataset(r) for r in s.scalars(query)][::-1]

    def get(self, user_id: int, dataset_id: str) -> Dataset:
        with self._db.session() as s:
            row = s.get(DatasetRow, dataset_id)
            if row is None or row.owner_id != user_id:
                raise NotFound(f"No dataset {dataset_id}.")
            return _to_dataset(row)

    def guess_task(self, dataset: Dataset, target: str) -> str:
        """The task a target suggests: the one the dataset was prepared for with that target,
        else classification for a non-numeric target or one of at most 20 distinct values,
        else regression."""
        known = dataset.details.get("task")
        if known in recipes.TASKS and dataset.details.get("target") == target:
            return str(known)
        if dataset.kinds().get(target) != "numeric":
            return "classification"
        distinct = self.frame(dataset)[target].nunique()
        return "classification" if distinct <= MAX_CLASSES_GUESSED else "regression"

    def frame(self, dataset: Dataset, part: str = "") -> pd.DataFrame:
        """The table (or a prepared part: train, validation, test); read once per version."""
        if dataset.kind != "table":
            raise InvalidInput(f"{dataset.name} is an image set, not a table.")
        name = f"{part}.parquet" if part else TABLE_FILE
        return _read_parquet(str(self.folder(dataset.id) / name), dataset.version)

    def sample_rows(self, dataset: Dataset, n: int = 100) -> pd.DataFrame:
        """``n`` rows drawn at random (the same ones for a version), in their order."""
        return _sample(str(self.folder(dataset.id) / TABLE_FILE), dataset.version, n)

    def images(self, dataset: Dataset) -> list[loaders.ImageItem]:
        return loaders.scan_images(self.folder(dataset.id))

    def annotations(self, dataset: Dataset) -> dict[str, Any]:
        path = self.folder(dataset.id) / "annotations.json"
        return json.loads(path.read_text()) if path.exists() else {}

    # --- adding -------------------------------------------------------------------------------

    def add_sample(
        self,
        user: User,
        project_id: int,
        sample: str,
        *,
        name: str = "",
        seed: int = 0,
        count: int = 200,
        size: int = 64,
    ) -> Dataset:
        """A sample as a dataset of the project: a table from scikit-learn, or generated shapes."""
        spec = SAMPLES.get(sample)
        if spec is None:
            raise InvalidInput(f"No sample named '{sample}'; there are: {', '.join(SAMPLES)}.")
        name = self._check_name(user.id, project_id, name or spec.title)
        if spec.kind == "table":
            return self._add_table(
                user, project_id, name, table_sample(sample), f"sample:{sample}", "sample",
                {"target": spec.target, "task": spec.task},
            )  # fmt: skip
        if not 1 <= count <= 10_000 or not 32 <= size <= 1024:
            raise InvalidInput("Shapes: 1 to 10,000 images of 32 to 1,024 pixels.")
        from crispml.core.data import shapes  # numpy and Pillow: only when generating

        dataset_id = uuid.uuid4().hex[:12]
        folder = self.folder(dataset_id)
        try:
            coco = shapes.generate(folder, count, size, seed)
            items = loaders.scan_images(folder)
            version = _file_digest([i.image for i in items] + [folder / "annotations.json"])
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        details = {
            "target": "mask",
            "task": "segmentation",
            "classes": list(shapes.CLASSES),
            "seed": seed,
            "count": count,
            "image_size": size,
            "objects": len(coco["annotations"]),
        }
        return self._insert(
            user, dataset_id, project_id, name, "images", f"sample:shapes?seed={seed}&count="
            f"{count}&size={size}", "images", [], count, version, details,
        )  # fmt: skip

    def register(self, user: User, project_id: int, name: str, path: Path, label: str) -> Dataset:
        """A copy of a table file or an image folder (``path``, already confined to what the
        user may read; ``label`` is how the user names it, e.g. ``~alice/data/x.csv``)."""
        name = self._check_name(user.id, project_id, name or path.stem)
        if path.is_dir():
            items = loaders.scan_images(path)
            loaders.check_images(items)
            dataset_id = uuid.uuid4().hex[:12]
            folder = self.folder(dataset_id)
            try:
                (folder / "images").mkdir(parents=True)
                for item in items:
                    shutil.copy2(item.image, folder / "images" / item.image.name)
                    if item.mask is not None:
                        (folder / "masks").mkdir(exist_ok=True)
                        shutil.copy2(item.mask, folder / "masks" / item.mask.name)
                version = _file_digest(sorted((folder).rglob("*.*")))
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            masks = sum(i.mask is not None for i in items)
            details = {"masks": masks, "task": "segmentation" if masks else ""}
            return self._insert(
                user, dataset_id, project_id, name, "images", label, "images", [], len(items),
                version, details,
            )  # fmt: skip
        frame = loaders.read_table(path)
        return self._add_table(user, project_id, name, frame, label, loaders.table_format(path), {})

    def _add_table(
        self,
        user: User,
        project_id: int,
        name: str,
        frame: pd.DataFrame,
        source: str,
        fmt: str,
        details: dict[str, Any],
    ) -> Dataset:
        dataset_id = uuid.uuid4().hex[:12]
        folder = self.folder(dataset_id)
        folder.mkdir(parents=True)
        try:
            frame.to_parquet(folder / TABLE_FILE, index=False)
            version = recipes.digest({"data": frame})  # of the values, not of the file
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return self._insert(
            user, dataset_id, project_id, name, "table", source, fmt, _schema(frame),
            int(frame.shape[0]), version, details,
        )  # fmt: skip

    def _insert(
        self,
        user: User,
        dataset_id: str,
        project_id: int,
        name: str,
        kind: str,
        source: str,
        fmt: str,
        schema: list[dict[str, str]],
        rows: int,
        version: str,
        details: dict[str, Any],
        *,
        role: str = "raw",
        parent_id: str | None = None,
        recipe: dict[str, Any] | None = None,
    ) -> Dataset:
        """Record a dataset whose folder is written; on any failure the folder goes too."""
        try:
            (self.folder(dataset_id) / "version").write_text(version)  # for the profile job
            row = DatasetRow(
                id=dataset_id,
                project_id=project_id,
                owner_id=user.id,
                name=name,
                kind=kind,
                role=role,
                source=source,
                format=fmt,
                schema=json.dumps(schema),
                rows=rows,
                size_bytes=_folder_size(self.folder(dataset_id)),
                version=version,
                parent_id=parent_id,
                recipe=json.dumps(recipe or {}, default=str),
                details=json.dumps(details, default=str),
                created_at=self._clock(),
            )
            with self._db.session() as s:
                s.add(row)
                self._audit.add(s, user.username, f"dataset.{role}", dataset_id, name)
        except IntegrityError as exc:
            shutil.rmtree(self.folder(dataset_id), ignore_errors=True)
            raise Conflict(f"A dataset named '{name}' exists in this project already.") from exc
        except BaseException:
            shutil.rmtree(self.folder(dataset_id), ignore_errors=True)
            raise
        return self.get(user.id, dataset_id)

    def _check_name(self, user_id: int, project_id: int, name: str) -> str:
        name = " ".join(name.split())
        if not name or len(name) > 120:
            raise InvalidInput("A dataset needs a name of 1 to 120 characters.")
        if not self._project_exists(user_id, project_id):
            raise NotFound("Choose one of your projects first.")
        with self._db.session() as s:
            taken = s.scalar(
                select(DatasetRow.id).where(
                    DatasetRow.project_id == project_id, DatasetRow.name == name
                )
            )
        if taken:
            raise Conflict(f"A dataset named '{name}' exists in this project already.")
        return name

    def forget_project(self, project_id: int) -> Callable[[], None]:
        """Before a project is deleted: note its datasets; returns the removal of their folders,
        for after the delete (the rows go with the project)."""
        with self._db.session() as s:
            ids = list(s.scalars(select(DatasetRow.id).where(DatasetRow.project_id == project_id)))

        def remove() -> None:
            for dataset_id in ids:
                shutil.rmtree(self.folder(dataset_id), ignore_errors=True)

        return remove

    def delete(self, user: User, dataset_id: str) -> list[str]:
        """Delete a dataset and the versions prepared from it; returns the names deleted."""
        dataset = self.get(user.id, dataset_id)
        with self._db.session() as s:
            children = list(s.scalars(select(DatasetRow).where(DatasetRow.parent_id == dataset.id)))
            names = [c.name for c in children] + [dataset.name]
            ids = [c.id for c in children] + [dataset.id]
            for child in children:
                s.delete(child)
            row = s.get(DatasetRow, dataset.id)
            if row is not None:
                s.delete(row)
            self._audit.add(s, user.username, "dataset.delete", dataset.id, ", ".join(names))
        for removed in ids:
            shutil.rmtree(self.folder(removed), ignore_errors=True)
        return names

    # --- profiles -----------------------------------------------------------------------------

    def profile_path(self, dataset: Dataset) -> Path:
        return self.folder(dataset.id) / f"profile-{dataset.version}.json"

    def cached_profile(self, dataset: Dataset) -> dict[str, Any] | None:
        path = self.profile_path(dataset)
        return json.loads(path.read_text()) if path.exists() else None

    def needs_job(self, dataset: Dataset) -> bool:
        return dataset.rows * max(1, len(dataset.schema)) > PROFILE_INLINE_CELLS

    def profile(self, dataset: Dataset) -> dict[str, Any]:
        """Compute and keep the profile now (small tables, and the profile job itself)."""
        cached = self.cached_profile(dataset)
        if cached is not None:
            return cached
        result = profile_table(self.frame(dataset))
        path = self.profile_path(dataset)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result))
        tmp.replace(path)  # whole or not at all
        return result

    def start_profile_job(self, user: User, dataset: Dataset) -> Job:
        """Profile a large table as a job; the page shows it when the file appears."""
        folder = str(self.folder(dataset.id))
        for job in self._jobs.history(user.id, statuses=("queued", "starting", "running")):
            if job.kind == "profile" and job.argv[-1] == folder:
                return job  # already on its way
        argv = [sys.executable, "-m", "crispml.core.data.profile_job", folder]
        return self._jobs.submit(
            user.id,
            user.username,
            JobSpec(argv, f"profile {dataset.name}", "profile", mounts=[(folder, "ro")]),
        )

    def collect_profile(self, dataset: Dataset, job: Job) -> dict[str, Any] | None:
        """Keep what a succeeded profile job wrote (in its own folder) beside the dataset.
        The job ran the user's data through pandas in a sandbox: its file is read as data,
        without following links, and only a JSON object of the expected shape is kept."""
        if job.status != "succeeded" or job.kind != "profile":
            return self.cached_profile(dataset)
        try:
            raw = records.read_job_file(Path(job.workdir) / PROFILE_FILE, MAX_PROFILE_BYTES)
            result = json.loads(raw)
        except (OSError, ValueError):
            return None
        if not isinstance(result, dict) or "column_profiles" not in result:
            return None
        path = self.profile_path(dataset)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result))
        tmp.replace(path)
        return result

    # --- preparation --------------------------------------------------------------------------

    def prepare(
        self, user: User, dataset_id: str, recipe: recipes.Recipe, name: str = ""
    ) -> Dataset:
        """A prepared, immutable version of a table: train/validation/test parts and the
        recipe with what it fitted."""
        source = self.get(user.id, dataset_id)
        if source.role != "raw" or source.kind != "table":
            raise InvalidInput("Prepare a table dataset (not an image set or a prepared one).")
        frames, fitted = recipes.prepare_table(self.frame(source), recipe, source.kinds())
        siblings = [d for d in self.all(user.id, source.project_id) if d.parent_id == source.id]
        name = name or f"{source.name} · prepared {len(siblings) + 1}"
        name = self._check_name(user.id, source.project_id, name)
        dataset_id_new = uuid.uuid4().hex[:12]
        folder = self.folder(dataset_id_new)
        folder.mkdir(parents=True)
        try:
            for part, frame in frames.items():
                frame.to_parquet(folder / f"{part}.parquet", index=False)
            record = {
                "recipe": recipe.to_dict(),
                "fitted": fitted,
                "source": {"id": source.id, "name": source.name, "version": source.version},
            }
            (folder / "recipe.json").write_text(json.dumps(record, indent=2, default=str))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        details = {
            "target": recipe.target,
            "task": recipe.task,
            "parts": {p: len(f) for p, f in frames.items()},
            "classes": sorted(frames["train"][recipe.target].astype(str).unique().tolist())
            if recipe.task == "classification"
            else [],
        }
        return self._insert(
            user, dataset_id_new, source.project_id, name, "table", f"prepared:{source.id}",
            "parquet", _schema(frames["train"]), sum(len(f) for f in frames.values()),
            recipes.digest(frames), details, role="prepared", parent_id=source.id,
            recipe={**record["recipe"], "fitted": fitted},
        )  # fmt: skip

    def prepare_images(
        self, user: User, dataset_id: str, recipe: recipes.ImageRecipe, name: str = ""
    ) -> Dataset:
        """A prepared version of an image set: its seeded split and the recipe (resize,
        augmentations) training applies; the images stay in the source."""
        source = self.get(user.id, dataset_id)
        if source.role != "raw" or source.kind != "images":
            raise InvalidInput("Prepare an image set here (tables have their own recipe).")
        items = self.images(source)
        if not any(i.mask is not None for i in items):
            raise InvalidInput(f"{source.name} has no masks: segmentation needs them.")
        parts = recipes.split_images([i.image.name for i in items if i.mask is not None], recipe)
        siblings = [d for d in self.all(user.id, source.project_id) if d.parent_id == source.id]
        name = name or f"{source.name} · prepared {len(siblings) + 1}"
        name = self._check_name(user.id, source.project_id, name)
        new_id = uuid.uuid4().hex[:12]
        folder = self.folder(new_id)
        folder.mkdir(parents=True)
        record = {
            "recipe": recipe.to_dict(),
            "source": {"id": source.id, "name": source.name, "version": source.version},
            "parts": parts,
        }
        (folder / "recipe.json").write_text(json.dumps(record, indent=2))
        digest = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]
        details = {
            "target": "mask",
            "task": "segmentation",
            "parts": {p: len(v) for p, v in parts.items()},
            "classes": source.details.get("classes", []),
            "image_size": recipe.size,
        }
        return self._insert(
            user, new_id, source.project_id, name, "images", f"prepared:{source.id}", "images",
            [], sum(len(v) for v in parts.values()), digest, details, role="prepared",
            parent_id=source.id, recipe={**recipe.to_dict(), "parts": parts},
        )  # fmt: skip

    def rebuild(self, user: User, prepared_id: str) -> dict[str, pd.DataFrame]:
        """Apply a prepared version's recorded recipe to its source again."""
        prepared_set = self.get(user.id, prepared_id)
        if prepared_set.parent_id is None:
            raise InvalidInput(f"{prepared_set.name} is not a prepared version.")
        source = self.get(user.id, prepared_set.parent_id)
        recipe = {k: v for k, v in prepared_set.recipe.items() if k != "fitted"}
        frames, _ = recipes.prepare_table(
            self.frame(source), recipes.Recipe.from_dict(recipe), source.kinds()
        )
        return frames
