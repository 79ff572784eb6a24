"""`umarvel init-model` as a stage: a manifest written last, "up to date" on a rerun, and a refusal to
write into a non-empty folder it did not make."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from umarvel_cli.artifacts.manifest import Manifest, read_manifest
from umarvel_cli.artifacts.stage import finish_stage, plan_stage
from umarvel_cli.console import info
from umarvel_cli.errors import UmarvelError

STAGE = "init-model"


def init_model(
    backbone: str,
    out: str | Path,
    seed: int = 0,
    pool_tokens: str = "content",
    kind: str = "embedding",
    force: bool = False,
    settings: dict[str, Any] | None = None,
) -> tuple[Manifest, bool]:
    """Write the tiny `backbone` at `out` (see `init_tiny_model`); returns (manifest, written).

    `settings` overrides umarvel.json fields (e.g. {"attention": "causal"}: the demo's ablations)."""
    from umarvel_cli.models.tiny import init_tiny_model
    from umarvel_cli.models.umarvel_config import UmarvelConfig

    out = Path(out)
    params: dict[str, Any] = {"backbone": backbone, "seed": seed, "pool_tokens": pool_tokens}
    if kind != "embedding":  # an embedding model's parameters (and so its manifest) stay as they were
        params["kind"] = kind
    if settings:
        params["settings"] = dict(sorted(settings.items()))
        known = set(UmarvelConfig.__dataclass_fields__) - {"family"}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise UmarvelError(f"unknown umarvel.json fields {unknown}", expected=", ".join(sorted(known)))
    plan = plan_stage(out, STAGE, params, {}, force=force)
    if plan.up_to_date:
        info(f"init-model: {out} is up to date ({plan.reason}); --force redoes it")
        manifest = read_manifest(out)
        assert manifest is not None
        return manifest, False
    init_tiny_model(backbone, out, seed=seed, pool_tokens=pool_tokens, kind=kind)
    if settings:
        ucfg = replace(UmarvelConfig.load(out), **settings)  # __post_init__ checks the values
        ucfg.save(out)
    files = sorted(p.name for p in out.iterdir() if p.is_file() and not p.name.startswith("_"))
    return finish_stage(plan, {"files": len(files)}, extra={"files": files}), True
