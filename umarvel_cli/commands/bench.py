"""`umarvel bench NAME|all`: speed benchmarks with a baseline measured in the same run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import typer

from umarvel_cli.errors import UmarvelError

app = typer.Typer(no_args_is_help=True)


def _run(names: list[str], size: str, json_out: Path | None) -> None:
    from rich.table import Table

    from umarvel_cli import bench
    from umarvel_cli.console import err_console

    results = []
    for name in names:
        module = bench.load(name)
        if module is not None and size not in getattr(module, "SIZES", (size,)):
            raise UmarvelError(
                f"bench {name} has no size {size!r}", field="--size", expected=" | ".join(module.SIZES)
            )
        if module is None:
            err_console.print(f"[yellow]bench {name}: not implemented yet, skipped[/]")
            continue
        err_console.print(f"[bold]bench {name}[/] ({size}) ...")
        result = module.run(size=size)
        results.append(result)
        if result.rows:
            table = Table(title=f"bench {name}")
            for col in result.rows[0]:
                table.add_column(str(col))
            for row in result.rows:
                table.add_row(*[f"{v:,.3f}" if isinstance(v, float) else str(v) for v in row.values()])
            err_console.print(table)
        typer.echo(f"{name}: {result.summary}")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(
            json.dumps(
                [{"name": r.name, "summary": r.summary, "rows": r.rows, "extra": r.extra} for r in results],
                indent=2,
            )
        )


def _make(name: str):
    def command(
        size: Literal["tiny", "quick", "default"] = typer.Option(
            "default", "--size", help="quick (seconds) or default; tiny where a benchmark has it (mine)."
        ),
        json_out: Path | None = typer.Option(None, "--json", help="Also write the results as JSON here."),
    ) -> None:
        if size not in ("tiny", "quick", "default"):
            raise UmarvelError(f"unknown --size {size!r}", field="--size", expected="tiny, quick or default")
        from umarvel_cli import bench

        _run(list(bench.REGISTRY) if name == "all" else [name], size, json_out)

    command.__doc__ = f"Run the '{name}' benchmark." if name != "all" else "Run every benchmark."
    return command


for _name in ["prepare", "embed", "search", "train", "loss", "mine", "all"]:
    app.command(_name)(_make(_name))
