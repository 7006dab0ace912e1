"""Algorithms as plugins: what an algorithm declares, and the registry that finds them.

An algorithm declares its name, task, typed hyperparameters (defaults, ranges, help), the
requirements of its environment, and where its job-side code lives: ``train`` (run by
``crispml_train`` in the algorithm's environment) and ``load``/``predict`` for serving. The
declaration is plain data read by the server; the job-side module is imported only inside the
job, so it may need libraries the server does not have. Algorithms are found through the
``crispml.algorithms`` entry-point group (each entry point names an ``AlgorithmSpec`` or a list
of them); the built-in ones are registered there like any plugin.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from crispml.core.errors import InvalidInput, NotFound

TASKS = ("classification", "regression", "segmentation")
PARAM_KINDS = ("int", "float", "choice", "bool")


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # int, float, choice or bool
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    help: str = ""
    log: bool = False  # searched on a log scale in random sweeps

    def parse(self, value: Any) -> Any:
        """The value checked against the declaration (strings from the CLI are converted)."""
        try:
            if self.kind == "bool":
                if isinstance(value, str):
                    if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                        raise ValueError(value)
                    return value.lower() in ("true", "1", "yes")
                return bool(value)
            if self.kind == "choice":
                if str(value) not in self.choices:
                    raise ValueError(value)
                return str(value)
            number = float(value)
            if not math.isfinite(number):
                raise ValueError(value)
            if self.kind == "int":
                if number != int(number):
                    raise ValueError(value)
                number = int(number)
        except (TypeError, ValueError):
            if self.choices:
                expected = f"one of {', '.join(self.choices)}"
            else:
                expected = ("a whole number" if self.kind == "int" else "a number") + self.range
            raise InvalidInput(f"{self.name}: '{value}' is not {expected}.") from None
        if isinstance(number, float) and not math.isfinite(number):
            raise InvalidInput(f"{self.name}: '{value}' is not a finite number.")
        if (self.low is not None and number < self.low) or (
            self.high is not None and number > self.high
        ):
            raise InvalidInput(f"{self.name} = {value} is out of range: it must be{self.range}.")
        return number

    @property
    def range(self) -> str:
        """' between 1 and 10000', ' at least 0' ... ('' without bounds)."""
        low, high = (self.show(b) if b is not None else None for b in (self.low, self.high))
        if low is not None and high is not None:
            return f" between {low} and {high}"
        if low is not None:
            return f" at least {low}"
        return f" at most {high}" if high is not None else ""

    def show(self, value: Any) -> str:
        """A value as a form shows it (and parses it back exactly)."""
        if self.kind == "int" and isinstance(value, (int, float)):
            return str(int(value))
        return repr(float(value)) if self.kind == "float" else str(value)


@dataclass(frozen=True)
class AlgorithmSpec:
    name: str
    title: str
    task: str
    params: tuple[Param, ...]
    requirements: tuple[str, ...]
    module: str  # job-side module with train(ctx), load(folder) and predict(model, inputs)
    description: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        known = ", ".join(p.name for p in self.params) or "none"
        raise InvalidInput(f"{self.name} has no hyperparameter '{name}' (it has: {known}).")

    def check_params(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Every hyperparameter, given ones checked and the rest at their defaults."""
        checked = {p.name: p.default for p in self.params}
        for name, value in values.items():
            checked[name] = self.param(name).parse(value)
        return checked

    @property
    def entry(self) -> str:
        return f"{self.module}:train"


def _specs(value: Any) -> list[AlgorithmSpec]:
    if callable(value) and not isinstance(value, AlgorithmSpec):
        value = value()
    items = value if isinstance(value, (list, tuple)) else [value]
    return [v for v in items if isinstance(v, AlgorithmSpec)]


class AlgorithmRegistry:
    """The installed algorithms, by name (built-ins and plugins)."""

    def __init__(self, extra: Iterable[AlgorithmSpec] = ()) -> None:
        self._extra = list(extra)
        self._found: dict[str, AlgorithmSpec] | None = None
        self.problems: list[str] = []

    def _load(self) -> dict[str, AlgorithmSpec]:
        if self._found is None:
            found: dict[str, AlgorithmSpec] = {}
            for point in entry_points(group="crispml.algorithms"):
                try:
                    specs = _specs(point.load())
                except Exception as exc:  # a broken plugin must not break the others
                    self.problems.append(f"plugin {point.name}: {type(exc).__name__}: {exc}")
                    continue
                for spec in specs:
                    found.setdefault(spec.name, spec)
            if not found:  # a source tree without installed metadata
                from crispml.core.builtin_algorithms import ALGORITHMS

                found = {a.name: a for a in ALGORITHMS}
            for spec in self._extra:
                found[spec.name] = spec
            self._found = found
        return self._found

    def all(self, task: str | None = None) -> list[AlgorithmSpec]:
        return [a for a in self._load().values() if task is None or a.task == task]

    def get(self, name: str) -> AlgorithmSpec:
        found = self._load().get(name)
        if found is None:
            known = ", ".join(sorted(self._load())) or "none"
            raise NotFound(f"No algorithm named '{name}'. Installed: {known}.")
        return found

    def reload(self) -> None:
        self._found = None
