"""Patterns that find metrics in a job's output log, for commands that do not write
``metrics.jsonl``. Standard library only: the settings import it.

Each pattern is a regular expression with named groups: ``name`` and ``value`` (one metric per
match), or any other group name (that metric, with the group's text as its value). The names
``step`` (also global_step, iter, iteration, it), ``epoch``, ``total`` (steps or epochs in all),
``batch`` and ``batches`` (a line whose batch is not the last is an intermediate progress line)
are not metrics but say where the line belongs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

DEFAULT_LOG_PATTERNS: tuple[str, ...] = (
    # Keras: "Epoch 3/10" starts an epoch; "32/32 [====] - 1s - loss: 0.41 - val_loss: 0.5" ends it.
    r"^\s*Epoch (?P<epoch>\d+)/(?P<total>\d+)\s*$",
    r"^\s*(?P<batch>\d+)/(?P<batches>\d+) ",
    # key=value and key: value, where the value is a whole number ("eta: 00:01" is not one).
    r"(?<![\w./-])(?P<name>[A-Za-z_][\w./-]*)\s*[=:]\s*"
    r"(?P<value>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?![\w.:/])",
)
STEP_NAMES = frozenset({"step", "global_step", "iter", "iteration", "it"})


def compile_patterns(patterns: Sequence[str]) -> list[re.Pattern[str]]:
    """Check and compile log patterns; a ValueError names the one that is wrong."""
    compiled = []
    for text in patterns:
        try:
            pattern = re.compile(text)
        except re.error as exc:
            raise ValueError(f"log pattern {text!r} is not a regular expression: {exc}") from exc
        if not pattern.groupindex:
            raise ValueError(f"log pattern {text!r} has no named group (?P<name>...)")
        if ("name" in pattern.groupindex) != ("value" in pattern.groupindex):
            raise ValueError(f"log pattern {text!r} needs both (?P<name>...) and (?P<value>...)")
        compiled.append(pattern)
    return compiled
