"""`umarvel prepare`: groups the prepare sub-commands (each lives in its own module)."""

from __future__ import annotations

import typer

from umarvel_cli.commands import prepare_demo, prepare_mbeir, prepare_pairs, prepare_zeroshot

app = typer.Typer(no_args_is_help=True)
app.command("mbeir", short_help="Read an M-BEIR folder into validated tables.")(prepare_mbeir.command)
app.command("demo", short_help="Write the built-in demo dataset in the exact M-BEIR layout.")(
    prepare_demo.command
)
app.command("pairs", short_help="Read NLI csv / caption jsonl corpora into a pairs table.")(
    prepare_pairs.command
)
app.command("zeroshot", short_help="Read a zero-shot benchmark release (CIRCO, MSR-VTT, ...) into tables.")(
    prepare_zeroshot.command
)
