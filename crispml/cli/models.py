"""``crispml models``: the model registry and its deployments."""

from __future__ import annotations

from typing import Annotated

import typer

from crispml.cli._common import UserOption, open_services, usage_error

app = typer.Typer(no_args_is_help=True, help="The model registry.")


@app.command("list")
def models_list() -> None:
    """Registered models, every version: name, version, stage, deployment, algorithm, run."""
    with open_services() as services:
        deployed = {d.weight: d for d in services.deployments.all()}
        typer.echo(
            f"{'NAME':<24} {'VERSION':>7}  {'STAGE':<11} {'DEPLOYED':<9} {'ALGORITHM':<30} RUN"
        )
        for m in services.modeling.models():
            found = deployed.get(f"{m.name}:{m.version}")
            state = "" if found is None else ("public" if found.public else "yes")
            typer.echo(
                f"{m.name:<24} {m.version:>7}  {m.stage:<11} {state:<9} {m.algorithm:<30} "
                f"{m.run_id}"
            )


@app.command("deploy")
def models_deploy(
    model: Annotated[
        str, typer.Argument(help="NAME or NAME:VERSION (default: production, else newest).")
    ],
    public: Annotated[
        bool,
        typer.Option(help="No API key needed: anyone who reaches the API may use this model."),
    ] = False,
    user: UserOption = None,
) -> None:
    """Deploy a model version: the model API serves it (within seconds, no restart)."""
    from crispml.core.deployments import parse_weight

    with open_services() as services:
        name, version = parse_weight(model)
        found = services.deployments.deploy(
            services.resolve_user(user), name, version, public=public
        )
        if public:
            typer.secho(
                f"WARNING: {found.weight} is public: anyone who reaches the API may use it.",
                fg="yellow",
                err=True,
            )
        typer.echo(f"deployed {found.weight}" + (" (public)" if public else ""))


@app.command("undeploy")
def models_undeploy(
    model: Annotated[str, typer.Argument(help="NAME:VERSION")],
    user: UserOption = None,
) -> None:
    """Stop serving a model version."""
    from crispml.core.deployments import parse_weight

    with open_services() as services:
        name, version = parse_weight(model)
        if version is None:
            version = services.modeling.model(name).version
        services.deployments.undeploy(services.resolve_user(user), name, version)
        typer.echo(f"undeployed {name}:{version}")


@app.command("delete")
def models_delete(
    model: Annotated[str, typer.Argument(help="NAME:VERSION")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    user: UserOption = None,
) -> None:
    """Delete a model version and its files (its owner or an admin); refused while deployed."""
    from crispml.core.deployments import parse_weight

    with open_services() as services:
        name, version = parse_weight(model)
        if version is None:
            usage_error(f"'{model}': give the version to delete, as NAME:VERSION.")
        found = services.modeling.model(name, version)
        if not yes and not typer.confirm(
            f"Delete {name}:{version} ({found.algorithm}, run {found.run_id}) and its files?"
        ):
            raise typer.Exit(1)
        services.modeling.delete_version(services.resolve_user(user), name, version)
        typer.echo(f"deleted {name}:{version}")


@app.command("show")
def models_show(
    name: str,
    version: Annotated[int | None, typer.Option(help="Default: production, else newest.")] = None,
) -> None:
    """One model version: algorithm, parameters, metrics, classes, environment, artifacts."""
    import json

    with open_services() as services:
        m = services.modeling.model(name, version)
        typer.echo(
            json.dumps(
                {
                    "name": m.name,
                    "version": m.version,
                    "stage": m.stage,
                    "algorithm": m.algorithm,
                    "task": m.task,
                    "environment": m.env,
                    "run": m.run_id,
                    "params": m.params,
                    "metrics": m.metrics,
                    "classes": m.info.get("classes", []),
                    "dataset": m.info.get("dataset"),
                    "artifacts": m.path,
                    "created": m.created_at.isoformat(),
                },
                indent=2,
            )
        )
