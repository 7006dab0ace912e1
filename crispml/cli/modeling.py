"""``crispml train``: one run, as the Modeling page starts it, followed until it ends."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from crispml.cli._common import UserOption, open_services, usage_error

if TYPE_CHECKING:
    from crispml.core.auth import User
    from crispml.core.modeling import Run
    from crispml.services import Services


def _follow_run(services: Services, owner: User, run_id: str) -> Run:
    """Print the run's log and its metrics as they come, until it ends."""
    import json
    import time

    from crispml.core.tracking.reading import LineReader

    folder = services.modeling.run_folder(services.modeling.get(owner.id, run_id))
    readers = {name: LineReader(folder / name) for name in ("output.log", "metrics.jsonl")}
    while True:
        run = services.modeling.get(owner.id, run_id)
        for name, reader in readers.items():
            blocks = [reader.read_block()]
            while reader.behind:  # a backlog is read in steps
                blocks.append(reader.read_block())
            for line in b"".join(blocks).decode("utf-8", "replace").splitlines():
                if name == "output.log":
                    typer.echo(line)
                    continue
                record = json.loads(line)
                values = record.get("metrics") or {}
                if values and "step" in record:
                    shown = "  ".join(f"{k}={v:.4g}" for k, v in values.items() if v is not None)
                    typer.echo(f"  step {record['step']}: {shown}")
        if run.finished:
            return run
        time.sleep(0.5)


def train(
    algorithm: Annotated[
        str, typer.Option(help="An installed algorithm (crispml algorithms list).")
    ],
    data: Annotated[
        str, typer.Option(help="A prepared dataset's id or name, a dataset, or sample:NAME.")
    ],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="A hyperparameter, key=value.")
    ] = None,
    env: Annotated[str, typer.Option(help="The environment to train in.")] = "system",
    project: Annotated[str | None, typer.Option(help="Project name (default: the latest).")] = None,
    register: Annotated[
        str | None, typer.Option(help="Register the model under this name if it succeeds.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed handed to the algorithm.")] = 0,
    user: UserOption = None,
) -> None:
    """Train as the Modeling page does: one run (a job), followed until it ends."""
    from crispml.core.errors import InvalidInput

    params = {}
    for item in param or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            usage_error(f"--param {item!r}: write it as key=value.")
        params[key.strip()] = value.strip()
    with open_services() as services:
        owner = services.resolve_user(user)
        chosen = services.projects.resolve(owner, project)
        dataset = services.modeling.resolve_data(owner, chosen.id, data)
        if register is not None and not register:
            raise InvalidInput("--register needs a model name.")
        run = services.modeling.start(owner, dataset.id, algorithm, params, env, seed=seed)
        typer.echo(f"Run {run.id}: {algorithm} on '{dataset.name}' in {env}; following it.")
        try:
            run = _follow_run(services, owner, run.id)
        except KeyboardInterrupt:
            typer.echo(f"\nThe run goes on as job {run.id}: crispml jobs logs -f {run.id}")
            raise typer.Exit(130) from None
        if run.status != "succeeded":
            typer.secho(f"Error: run {run.id} {run.status}: {run.error}", fg="red", err=True)
            raise typer.Exit(1)
        typer.echo(f"Run {run.id} succeeded in {run.duration_s or 0:.1f} s.")
        for name, value in sorted(run.metrics.items()):
            typer.echo(
                f"  {name:<28} {value:.4f}" if isinstance(value, float) else f"  {name} {value}"
            )
        if register:
            model = services.modeling.register(owner, run.id, register)
            typer.echo(f"Registered {model.name} version {model.version}.")
