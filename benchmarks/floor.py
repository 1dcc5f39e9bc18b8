"""The start-up floor of a typer command: what any ``reconcile`` command pays before its own work.

    .venv/bin/python benchmarks/floor.py plan --stack x

A typer app with one command taking options of the kinds ``reconcile plan`` takes, which
validates one small pydantic model: typer 0.29 coerces every parameter through a pydantic
TypeAdapter, so pydantic is imported and its validators built however little the command
does.  benchmarks/compare.py times it beside each no-op case, so the ratios left to our own
code are visible.  Nothing of ``reconciler`` is imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import BaseModel, ConfigDict

app = typer.Typer(add_completion=True, pretty_exceptions_enable=False, rich_markup_mode=None)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    tag: str = "latest"


@app.callback()
def _root(debug: Annotated[bool, typer.Option("--debug")] = False) -> None:
    pass


@app.command()
def plan(
    stack: Annotated[str | None, typer.Option("--stack", "-s")] = None,
    out: Annotated[Path | None, typer.Option("--out")] = None,
    target: Annotated[list[str] | None, typer.Option("--target")] = None,
    parallelism: Annotated[int, typer.Option("--parallelism", min=1, max=32)] = 4,
    detailed_exitcode: Annotated[bool, typer.Option("--detailed-exitcode")] = False,
) -> None:
    Section.model_validate({"name": stack or "bench"})


if __name__ == "__main__":
    app()
