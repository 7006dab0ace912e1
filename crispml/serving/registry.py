"""The served models: the deployments (or the versions named on the command line) loaded once
per process and followed, which model a request means and whether its caller may use it, and
the request counts the Deployment page shows."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import HTTPException

from crispml.core.apikeys import ApiKey
from crispml.core.deployments import parse_weight
from crispml.core.envs.registry import SYSTEM, Environment
from crispml.core.errors import CrispmlError, InvalidInput, NotFound
from crispml.core.modeling import ModelVersion
from crispml.core.sandbox import SandboxSpec
from crispml.services import Services
from crispml.serving.keys import unauthorized
from crispml.serving.models import Served, load

MODEL_WORKER = "model worker"  # a kind of process the sandbox holds, like a job's
RETRY_S = 30.0  # a version that failed to load is tried again this often

log = logging.getLogger("crispml.serving")
T = TypeVar("T")


@dataclass(frozen=True)
class Wanted:
    version: ModelVersion
    public: bool


class Registry:
    """The served models (the deployments, or the versions named), who may use them and
    their request counts. The deployments are re-read at most every ``REFRESH_S`` seconds, so
    deploys and undeploys take effect without a restart."""

    REFRESH_S = 1.0

    def __init__(
        self,
        services: Services,
        selection: list[str] | None = None,
        *,
        public: bool = False,
        threads: int = 1,
        timeout_s: float = 60.0,
        dropped: Callable[[str], None] = lambda weight: None,
    ) -> None:
        self.services = services
        self.selection = selection or []
        self.public = public
        self.threads = threads
        self.timeout_s = timeout_s  # a worker's longest answer
        self.dropped = dropped  # told each weight no longer served
        self.models: dict[str, Served] = {}  # weight (name:version) -> loaded model
        self.public_models: set[str] = set()
        self.failed: dict[str, str] = {}  # weight -> why it could not be loaded
        self._retry_at: dict[str, float] = {}  # weight -> when to try loading it again
        self._counts: dict[str, list[int]] = {}  # weight -> [requests, errors] not yet recorded
        self._checked = -math.inf
        self._refreshing = threading.Lock()
        self._closed = threading.Event()
        self._follower: threading.Thread | None = None

    # --- following the deployments -----------------------------------------------------------

    def wanted(self) -> dict[str, Wanted]:
        modeling = self.services.modeling
        if self.selection:
            found = {}
            for item in self.selection:
                name, version = parse_weight(item)
                model = modeling.model(name, version)
                found[f"{model.name}:{model.version}"] = Wanted(model, self.public)
            return found
        return {
            d.weight: Wanted(d.model, d.public or self.public)
            for d in self.services.deployments.all()
        }

    def due(self) -> bool:
        return time.monotonic() - self._checked >= self.REFRESH_S

    def refresh(self, *, force: bool = False) -> None:
        """Follow the deployments (load new versions, drop undeployed ones) and record the
        request counts. The first call loads everything; later ones never make requests wait
        for each other (a refresh already under way is skipped)."""
        first = self._checked == -math.inf
        if not self._refreshing.acquire(blocking=first or force):
            return
        try:
            if not force and not first and not self.due():
                return
            self.flush()
            wanted = self.wanted()
            # Access first: a version made private or undeployed is refused from now on.
            self.public_models = {w for w, want in wanted.items() if want.public}
            self._drop_unwanted(wanted)
            self._load_wanted(wanted, first=first)
            self._checked = time.monotonic()
            if self._follower is None:
                self._follower = threading.Thread(
                    target=self._follow, name="crispml-api-follow", daemon=True
                )
                self._follower.start()
        finally:
            self._refreshing.release()

    def _drop_unwanted(self, wanted: dict[str, Wanted]) -> None:
        for weight in [w for w in self.models if w not in wanted]:
            self.models.pop(weight).close()
            self.dropped(weight)
            log.info("stopped serving %s", weight)
        for weight in [w for w in self.failed if w not in wanted]:
            del self.failed[weight]  # undeployed: no longer a reason to be unready

    def _load_wanted(self, wanted: dict[str, Wanted], *, first: bool) -> None:
        now = time.monotonic()
        for weight, want in wanted.items():
            if weight in self.models or self._retry_at.get(weight, 0) > now:
                continue
            try:
                environment = self._environment(want.version)
                self.models[weight] = load(
                    want.version,
                    environment,
                    self.threads,
                    self.timeout_s,
                    self._sandbox(want.version, environment),
                )
                self.failed.pop(weight, None)
                log.info("serving %s (%s)", weight, want.version.algorithm)
            except Exception as exc:  # one model that cannot load must not stop the others
                if self.selection and first and isinstance(exc, CrispmlError):
                    raise
                if self.failed.get(weight) != str(exc):
                    log.error("cannot serve %s: %s", weight, exc)
                self.failed[weight] = str(exc) or type(exc).__name__
                self._retry_at[weight] = now + RETRY_S

    def _follow(self) -> None:
        """Refresh in the background too, so counts are recorded and deploys picked up while
        no request comes."""
        while not self._closed.wait(self.REFRESH_S):
            try:
                self.refresh()
            except Exception:  # a database hiccup must not end the follower
                log.exception("could not follow the deployments")

    def _environment(self, version: ModelVersion) -> Environment | None:
        if version.env in ("", SYSTEM):
            return None
        env = self.services.environments.get(version.env)
        if not env.ready:
            raise InvalidInput(f"The environment '{version.env}' is not ready ({env.status}).")
        return env

    def _sandbox(self, version: ModelVersion, env: Environment | None) -> SandboxSpec | None:
        """A worker in another environment runs that environment's packages, which users may
        have chosen: in a sandbox as the model's owner, seeing the model read-only."""
        runtime = self.services.jobs.runtime
        if env is None or not runtime.sandboxed(MODEL_WORKER, "local"):
            return None
        return runtime.owner_sandbox(
            version.owner_id, env, readable=[version.path], writable=[], files=False
        )

    def served(self, version: ModelVersion) -> Served:
        """A deployed version, loaded (the Deployment page's try-it form shares the API's
        copy: one copy of each model per process)."""
        weight = f"{version.name}:{version.version}"
        if weight not in self.models:
            self.refresh(force=True)
        if weight in self.failed:
            raise InvalidInput(f"{weight} cannot be served: {self.failed[weight]}")
        if weight not in self.models:
            raise NotFound(f"{weight} is not deployed.")
        return self.models[weight]

    def close(self) -> None:
        self._closed.set()
        with self._refreshing:
            self.flush()
            for served in list(self.models.values()):
                served.close()
            self.models.clear()

    # --- request counts ----------------------------------------------------------------------

    def count(self, weight: str, *, error: bool = False) -> None:
        counts = self._counts.setdefault(weight, [0, 0])
        counts[0] += 1
        counts[1] += int(error)

    def flush(self) -> None:
        counts, self._counts = self._counts, {}
        if counts and not self.selection:
            try:
                self.services.deployments.record({w: (r, e) for w, (r, e) in counts.items()})
            except Exception:  # counts are not worth failing a request for
                log.exception("could not record request counts")

    async def counted(self, served: Served, call: Awaitable[T]) -> T:
        """Await a prediction, counting it (and its failure) for the Deployment page."""
        try:
            result = await call
        except Exception:
            self.count(served.weight, error=True)
            raise
        self.count(served.weight)
        return result

    # --- which model, and who may use it -----------------------------------------------------

    def find(self, config: dict[str, Any], key: ApiKey | None = None) -> Served:
        """The model a request means: its ``weight``, else ``Model_path`` (newest version),
        else ``algorithm`` when only one model the caller may use has it, else the only one."""
        weight = str(config.get("weight") or "").strip()
        if weight and weight.lower() != "none":
            if weight not in self.models:
                raise NotFound(f"Unknown weight '{weight}': this server has {self._weights(key)}.")
            return self.authorized(key, self.models[weight])
        name = str(config.get("Model_path") or "").strip()
        algorithm = str(config.get("algorithm") or "").strip()
        candidates = list(self.models.values())  # a snapshot: refresh runs in a thread
        if name:
            candidates = [m for m in candidates if m.name == name]
            if not candidates:
                raise NotFound(f"Unknown Model_path '{name}': this server has {self._names(key)}.")
        else:
            candidates = [m for m in candidates if self.may_use(key, m)]
        if algorithm:
            candidates = [m for m in candidates if m.version.algorithm == algorithm]
            if not candidates:
                raise NotFound(
                    f"Unknown algorithm '{algorithm}'"
                    + (f" for Model_path '{name}'" if name else "")
                    + f": this server has {', '.join(self.algorithms(key)) or 'none'}."
                )
        if not candidates:
            raise NotFound("This server has no model loaded.")
        if len({m.name for m in candidates}) > 1:
            raise InvalidInput(
                f"Several models match; say which with Model_path ({self._names(key)}) or weight."
            )
        return self.authorized(key, max(candidates, key=lambda m: m.version.version))

    def may_use(self, key: ApiKey | None, served: Served) -> bool:
        if key is None:
            return served.weight in self.public_models
        return key.allows(served.name, served.version.owner_id)

    def authorized(self, key: ApiKey | None, served: Served) -> Served:
        """``served``, if the caller may use it (a 401 without a key, a 403 with one)."""
        if key is None and served.weight not in self.public_models:
            raise unauthorized()
        if key is not None and not key.allows(served.name, served.version.owner_id):
            raise HTTPException(403, f"This API key may not use the model '{served.name}'.")
        return served

    def versions(self, name: str) -> list[str]:
        """The weights served of the model ``name``."""
        return sorted(m.weight for m in list(self.models.values()) if m.name == name)

    def algorithms(self, key: ApiKey | None = None) -> list[str]:
        """The algorithms of the models the caller may use."""
        return sorted({m.version.algorithm for m in self._usable(key)})

    def public_weights(self) -> list[str]:
        """The loaded versions anyone may use."""
        return sorted(self.public_models & set(self.models))

    def _usable(self, key: ApiKey | None) -> list[Served]:
        return [m for m in list(self.models.values()) if self.may_use(key, m)]

    def _weights(self, key: ApiKey | None = None) -> str:
        """What the caller may use, for messages (others' private models stay unnamed)."""
        return ", ".join(sorted(m.weight for m in self._usable(key))) or "none you may use"

    def _names(self, key: ApiKey | None = None) -> str:
        return ", ".join(sorted({m.name for m in self._usable(key)})) or "none you may use"
