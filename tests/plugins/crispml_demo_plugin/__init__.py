"""A third-party algorithm plugin, as a team would write one (used by the tests and shown in
docs/development.md): the declaration for crispml's registry, and the job-side code."""

from __future__ import annotations

from crispml.core.algorithms import AlgorithmSpec, Param

ALGORITHMS = [
    AlgorithmSpec(
        name="demo_majority",
        title="Majority class (demo plugin)",
        task="classification",
        params=(Param("smoothing", "float", 0.0, 0.0, 1.0, help="Unused; shows a parameter."),),
        requirements=("pandas>=2",),
        module="crispml_demo_plugin.job",
        description="Always predicts the most frequent training class.",
    ),
    AlgorithmSpec(
        name="demo_crash",
        title="Crashes (demo plugin)",
        task="classification",
        params=(),
        requirements=(),
        module="crispml_demo_plugin.job",
        description="Fails on purpose, to show how a crash is reported.",
    ),
]
