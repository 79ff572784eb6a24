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
    backbone: str | None,
    out: str | Path,
    seed: int = 0,
    pool_tokens: str = "content",
    kind: str = "embedding",
    force: bool = False,
    from_model: str | Path | None = None,
    settings: dict[str, Any] | None = None,
) -> tuple[Manifest, bool]:
    """Write the tiny `backbone` at `out` (see `init_tiny_model`), or with `from_model` a reranker
    whose network is that embedding model's (`reranker_from_embedder`); returns (manifest, written).

    `settings` overrides umarvel.json fields (e.g. {"attention": "causal"}: the demo's ablations)."""
    from umarvel_cli.models.umarvel_config import UmarvelConfig

    out = Path(out)
    inputs: dict[str, str] = {}
    if from_model is not None:
        from umarvel_cli.models.checks import check_model_folder
        from umarvel_cli.models.folder import model_fingerprint

        if kind != "reranker":
            raise UmarvelError("--from makes a reranker", field="--kind", expected="reranker")
        from umarvel_cli.models.reranker_init import check_embedder_source

        from_model = check_embedder_source(from_model)
        check_model_folder(from_model)
        params: dict[str, object] = {"from": str(from_model), "kind": kind}
        inputs = {"model": model_fingerprint(from_model)}
    elif backbone is None:
        raise UmarvelError("init-model needs --backbone (or --from with --kind reranker)", field="--backbone")
    else:
        params = {"backbone": backbone, "seed": seed, "pool_tokens": pool_tokens}
        if kind != "embedding":  # an embedding model's parameters (and so its manifest) stay as they were
            params["kind"] = kind
    if settings:
        params["settings"] = dict(sorted(settings.items()))
        known = set(UmarvelConfig.__dataclass_fields__) - {"family"}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise UmarvelError(f"unknown umarvel.json fields {unknown}", expected=", ".join(sorted(known)))
    plan = plan_stage(out, STAGE, params, inputs, force=force, input_paths=[from_model] if from_model else [])
    if plan.up_to_date:
        info(f"init-model: {out} is up to date ({plan.reason}); --force redoes it")
        manifest = read_manifest(out)
        assert manifest is not None
        return manifest, False
    if from_model is not None:
        from umarvel_cli.models.reranker_init import reranker_from_embedder

        reranker_from_embedder(from_model, out)
    else:
        from umarvel_cli.models.tiny import init_tiny_model

        init_tiny_model(backbone, out, seed=seed, pool_tokens=pool_tokens, kind=kind)
    if settings:
        ucfg = replace(UmarvelConfig.load(out), **settings)  # __post_init__ checks the values
        ucfg.save(out)
    files = sorted(p.name for p in out.iterdir() if p.is_file() and not p.name.startswith("_"))
    return finish_stage(plan, {"files": len(files)}, extra={"files": files}), True
