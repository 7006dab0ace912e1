"""``crispml doctor``: what this machine offers the sandbox users' code runs in."""

from __future__ import annotations

import typer

from crispml.cli._common import open_services


def doctor() -> None:
    """What this machine offers the sandbox users' code runs in; exit 1 when it has none."""
    from crispml.core.sandbox import JobLimits, bwrap_path

    with open_services() as services:
        capability = services.jobs.runtime.capability()
        settings = services.jobs.runtime.sandbox
    typer.echo(f"bubblewrap: {bwrap_path() or 'not installed (apt-get install bubblewrap)'}")
    typer.echo(f"sandbox:    {capability.kind}: {capability.message}")
    limits = JobLimits("doctor", settings.memory_mb, settings.processes)
    limits.remove()
    typer.echo(
        f"limits:     {limits.kind}: {settings.memory_mb} MiB of memory and "
        f"{settings.processes} processes per job"
    )
    if not capability.available:
        raise typer.Exit(1)
