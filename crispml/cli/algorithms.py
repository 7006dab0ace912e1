"""``crispml algorithms``: the installed algorithms (plugins)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Installed algorithms (plugins).")


@app.command("list")
def algorithms_list() -> None:
    """Installed algorithms: name, task, hyperparameters, requirements."""
    from crispml.core.algorithms import AlgorithmRegistry

    registry = AlgorithmRegistry()
    for spec in registry.all():
        typer.echo(f"{spec.name:<32} {spec.task:<15} {spec.title}")
        for p in spec.params:
            bounds = f" [{p.low}, {p.high}]" if p.low is not None else ""
            choices = f" {{{', '.join(p.choices)}}}" if p.choices else ""
            typer.echo(f"    {p.name}={p.default} ({p.kind}{bounds}{choices}) {p.help}")
        typer.echo(f"    requires: {', '.join(spec.requirements) or 'nothing'}")
    for problem in registry.problems:
        typer.secho(f"warning: {problem}", fg="yellow", err=True)
