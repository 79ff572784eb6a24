"""Running benchmarks by name: print each one's table, and keep its JSON record and the markdown tables."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from umarvel_cli.errors import UmarvelError


def _print_table(result: Any) -> None:
    from rich.table import Table

    from umarvel_cli.console import err_console

    if not result.rows:
        return
    table = Table(title=f"bench {result.name}")
    for col in result.rows[0]:
        table.add_column(str(col))
    for row in result.rows:
        table.add_row(*[f"{v:,.3f}" if isinstance(v, float) else str(v) for v in row.values()])
    err_console.print(table)


def run_benches(
    names: list[str], size: str, json_out: Path | None = None, out_dir: Path | None = None
) -> list[dict[str, Any]]:
    """Run `names` at `size`; `json_out` gets every record in one list, `out_dir` one `NAME.json` per
    benchmark (written as each finishes) and `benchmarks.md`, the tables for docs/benchmarks.md."""
    import typer

    from umarvel_cli import bench
    from umarvel_cli.bench.table import machine, record, write_markdown
    from umarvel_cli.console import err_console

    modules = {}
    for name in names:  # refuse a size before anything runs
        module = bench.load(name)
        if module is not None and size not in getattr(module, "SIZES", (size,)):
            raise UmarvelError(
                f"bench {name} has no size {size!r}", field="--size", expected=" | ".join(module.SIZES)
            )
        modules[name] = module
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]  # before our own work adds to it
    records = []
    for name, module in modules.items():
        if module is None:
            err_console.print(f"[yellow]bench {name}: not implemented yet, skipped[/]")
            continue
        err_console.print(f"[bold]bench {name}[/] ({size}) ...")
        start = time.perf_counter()
        result = module.run(size=size)
        took = time.perf_counter() - start
        command = f"umarvel bench {name} --size {size}"
        rec = record(
            result, size, getattr(module, "TABLE", None), machine=machine(load), seconds=took, command=command
        )
        records.append(rec)
        _print_table(result)
        typer.echo(f"{name}: {result.summary}")
        if out_dir is not None:
            (out_dir / f"{name}.json").write_text(json.dumps(rec, indent=2, default=str))
            write_markdown(out_dir, list(bench.REGISTRY))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(records, indent=2, default=str))
    if out_dir is not None:
        typer.echo(f"tables: {out_dir / 'benchmarks.md'}")
    return records
