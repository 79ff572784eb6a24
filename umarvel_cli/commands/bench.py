"""`umarvel bench NAME|all`: speed benchmarks with a baseline measured in the same run;
`umarvel bench tables DIR`: the markdown tables of the JSON records in DIR."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from umarvel_cli.errors import UmarvelError

app = typer.Typer(no_args_is_help=True)
NAMES = ["prepare", "embed", "search", "train", "loss", "mine", "rerank"]


def _make(name: str):
    def command(
        size: Literal["tiny", "quick", "default"] = typer.Option(
            "default",
            "--size",
            help="quick (seconds) or default; tiny where a benchmark has it (mine, rerank).",
        ),
        json_out: Path | None = typer.Option(None, "--json", help="Also write the results as JSON here."),
        out: Path | None = typer.Option(
            None, "--out", help="Folder for one NAME.json per benchmark and benchmarks.md (the tables)."
        ),
    ) -> None:
        if size not in ("tiny", "quick", "default"):
            raise UmarvelError(f"unknown --size {size!r}", field="--size", expected="tiny, quick or default")
        from umarvel_cli import bench
        from umarvel_cli.bench.runner import run_benches

        run_benches(list(bench.REGISTRY) if name == "all" else [name], size, json_out, out)

    command.__doc__ = f"Run the '{name}' benchmark." if name != "all" else "Run every benchmark."
    return command


for _name in [*NAMES, "all"]:
    app.command(_name)(_make(_name))


@app.command("tables")
def tables(
    folder: Path = typer.Argument(..., help="A folder of bench JSON records (--out or --json files)."),
    title: str = typer.Option("make bench", "--title", help="The section title of the tables."),
) -> None:
    """Write FOLDER/benchmarks.md from the JSON records in FOLDER (e.g. a GPU run's)."""
    from umarvel_cli import bench
    from umarvel_cli.bench.table import write_markdown

    if not folder.is_dir():
        raise UmarvelError("no such folder", file=folder, expected="a folder of bench JSON files")
    typer.echo(str(write_markdown(folder, list(bench.REGISTRY), title)))
