"""The whole U-MARVEL recipe on the built-in demo data with a tiny model, on a CPU.

Each step is an ordinary stage writing into its own folder under `out/`, through the same library
function its command calls, so the demo resumes where it stopped and a second run says "up to date"
for every step. Stages a release does not provide are listed as skipped in the report instead of
failing the run. The report (`demo_report`) is the paper's ablation table in miniature.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from umarvel_cli.console import info
from umarvel_cli.demo_report import DemoResult, StepTime, write_demo_report
from umarvel_cli.errors import NotImplementedStage

__all__ = [
    "DEMO_STAGES", "DemoResult", "DemoSteps", "init_reranker", "load_plan", "mine_negatives", "run_demo",
    "train_chain", "train_stage",
]  # fmt: skip

DEMO_STAGES = ("nli", "caption", "mbeir")
# Small zero-shot sets in the CIRCO and MSR-VTT release formats (`data/zeroshot/demo.py`): the
# untrained and the final model are scored on them, zero-shot, with each benchmark's own metric.
ZEROSHOT_SETS = {"circo": "CIRCO", "msrvtt": "msrvtt"}  # benchmark -> release folder
# The demo's tiny model pools the user turn only (see `init_tiny_model`): it learns several times faster.
DEMO_POOL_TOKENS = "content"
PROFILE = "demo"
EVAL_DIRS = {"local": "eval", "global": "eval_global"}  # pool -> folder of each model's evaluation
PLUS = "umarvel_plus"  # the label of U-MARVEL+ (the final retriever, reranked)
CHANCE_LOSS_SHARE = 0.9  # a reranker whose answer loss stays above 0.9 ln 2 has not learned


@dataclass(frozen=True)
class DemoPlan:
    """The demo's own sizes (the `demo:` section of `configs/train_demo.yaml`)."""

    rerank_topk: int  # U-MARVEL+: candidates the reranker rescores per val/test query
    teacher_fraction: float  # distill: share of each task's train queries the reranker scores
    teacher_pool: str  # distill: pool the teacher lists are searched in
    teacher_topk: int  # distill: candidates per teacher list (the distill stage's distill_topk)
    eval_topk: int  # candidates retrieved per query by every evaluation
    plus_pools: tuple[str, ...]  # pools U-MARVEL+ is evaluated on (the paper's is local)


def load_plan(overrides: list[str] | None = None) -> DemoPlan:
    import yaml

    from umarvel_cli.training.config import configs_dir, resolve_config

    section = yaml.safe_load((configs_dir() / f"train_{PROFILE}.yaml").read_text())["demo"]
    distill = resolve_config("distill", PROFILE, sets=overrides or [])
    section["plus_pools"] = tuple(section.get("plus_pools") or ("local",))
    return DemoPlan(**section, teacher_topk=distill.distill_topk)


def _cpu_seconds() -> float:
    """CPU seconds of this process (every thread) and of its finished worker processes."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _step(result: DemoResult, name: str, fn: Callable[[], Any]) -> Any:
    info(f"[bold cyan]demo[/] {name}")
    wall, cpu = time.perf_counter(), _cpu_seconds()
    try:
        value = fn()
    except (NotImplementedStage, ImportError) as e:
        info(f"[yellow]demo {name}: skipped ({e})[/]")
        result.steps.append((name, f"skipped: {e}"))
        return None
    result.times[name] = StepTime(
        round(time.perf_counter() - wall, 2), round(_cpu_seconds() - cpu, 2), round(os.getloadavg()[0], 2)
    )
    result.steps.append((name, "done"))
    return value


def run_demo(
    out: Path,
    size: str = "small",
    seed: int = 0,
    backbone: str = "tiny-qwen2-vl",
    split: str = "test",
    force: bool = False,
    train_overrides: list[str] | None = None,
    ablations: bool = False,
) -> DemoResult:
    """prepare → init model → train progressive (nli, caption, mbeir) → mine → train hardneg → init and
    train the reranker → teacher scores → distill → eval every model (local and global pools) →
    U-MARVEL+ (the final model reranked, W tuned on val) → zero-shot (init and final) → report
    (→ `ablations`: the paper's switches, `umarvel_cli/ablations.py`)."""
    from umarvel_cli.training.config import size_sets

    user_overrides = list(train_overrides or [])
    out = Path(out)
    result = DemoResult(out=out, split=split)
    # the size's section of the demo profile (`sizes:`), then the user's --set
    demo = DemoSteps(out, result, seed, backbone, split, force, size_sets(PROFILE, size, user_overrides))
    tables = demo.prepare(size)

    models: dict[str, Path] = {}
    init_dir = _step(result, f"init-model {backbone}", demo.init_embedder)
    if init_dir is not None:
        models["init"] = init_dir
        stage_dirs = _step(result, "train --stage progressive", lambda: demo.progressive(tables, init_dir))
        models.update({s: stage_dirs[s] for s in DEMO_STAGES if stage_dirs and s in stage_dirs})
    if "mbeir" in models:
        models.update(demo.recipe_tail(tables, models["mbeir"]))
    for label, model in models.items():
        demo.evaluate(tables, label, model)
    if "distill" in models and demo.reranker is not None:
        demo.umarvel_plus(tables, models["distill"])

    zs_root = _step(
        result, "prepare zeroshot (CIRCO and MSR-VTT formats)", lambda: _zeroshot_sets(out, seed, force)
    )
    if zs_root is not None:
        final = next((lb for lb in ("distill", "hardneg", "mbeir") if lb in models), None)
        for label in ("init", final):
            if label in models:
                _step(
                    result,
                    f"eval zeroshot {label}",
                    lambda lb=label: _eval_zeroshot(result, zs_root, lb, models[lb], force),
                )

    if ablations:
        from umarvel_cli.ablations import run_ablations

        _step(
            result,
            "ablations (out/ablations/report.md)",
            lambda: run_ablations(
                out, size, backbone=backbone, split=split, force=force, train_overrides=user_overrides
            ),
        )
    result.report = write_demo_report(result)
    return result


class DemoSteps:
    """The demo's steps, each a library call into its own folder under `out`."""

    def __init__(
        self,
        out: Path,
        result: DemoResult,
        seed: int,
        backbone: str,
        split: str,
        force: bool,
        overrides: list[str],
    ) -> None:
        self.out, self.result, self.seed, self.backbone = out, result, seed, backbone
        self.split, self.force, self.overrides = split, force, overrides
        self.plan = load_plan(overrides)
        self.reranker: Path | None = None

    # -- data and the progressive chain (unchanged since the first demo: its scores stay identical) --
    def prepare(self, size: str) -> Path:
        from umarvel_cli.data.demo import prepare_demo
        from umarvel_cli.data.demo.corpora import CAPTIONS_FILE, NLI_FILE, PAIRS_DIR
        from umarvel_cli.data.mbeir.reader import prepare_mbeir
        from umarvel_cli.data.pairs import prepare_pairs

        out, force, result = self.out, self.force, self.result
        raw, tables = out / "mbeir", out / "tables"
        _step(result, "prepare demo", lambda: prepare_demo(raw, seed=self.seed, size=size, force=force))
        _step(result, "prepare mbeir", lambda: prepare_mbeir(raw, tables, force=force))
        _step(
            result,
            "prepare pairs (nli)",
            lambda: prepare_pairs(raw / PAIRS_DIR / NLI_FILE, out / "pairs_nli", kind="nli", force=force),
        )
        _step(
            result,
            "prepare pairs (caption)",
            lambda: prepare_pairs(
                raw / PAIRS_DIR / CAPTIONS_FILE,
                out / "pairs_caption",
                kind="caption",
                images_root=raw / PAIRS_DIR,
                force=force,
            ),
        )
        return tables

    def init_embedder(self) -> Path:
        from umarvel_cli.models.tiny import init_tiny_model

        target = self.out / "models" / "init"
        if (target / "umarvel.json").is_file() and not self.force:
            return target
        return init_tiny_model(self.backbone, target, seed=self.seed, pool_tokens=DEMO_POOL_TOKENS)

    def progressive(self, tables: Path, init_dir: Path) -> dict[str, Path]:
        return train_chain(self.out, tables, init_dir, self.out / "train", self.overrides, self.force)

    # -- after the progressive chain ------------------------------------------------------------------
    def recipe_tail(self, tables: Path, mbeir: Path) -> dict[str, Path]:
        """mine → hardneg → reranker (init, train) → teacher lists → distill; {label: model}."""
        models: dict[str, Path] = {}
        mined = _step(self.result, "mine (local pools, train split)", lambda: self.mine(tables, mbeir))
        if mined is None:
            return models
        hardneg = _step(
            self.result,
            "train --stage hardneg",
            lambda: self.train("hardneg", mbeir, tables, negatives=mined),
        )
        if hardneg is None:
            return models
        models["hardneg"] = hardneg
        rr_init = _step(
            self.result, "init-model --kind reranker --from hardneg", lambda: self.init_reranker(hardneg)
        )
        if rr_init is not None:
            self.reranker = _step(
                self.result, "rerank train", lambda: self.train("rerank", rr_init, tables, negatives=mined)
            )
        if self.reranker is None:
            return models
        self.note_reranker()
        plan = self.plan
        teacher = _step(
            self.result,
            "rerank score (distill teacher: train split)",
            lambda: self.score(
                tables, hardneg, "train", plan.teacher_pool, plan.teacher_topk, plan.teacher_fraction
            ),
        )
        if teacher is not None:
            distill = _step(
                self.result, "distill", lambda: self.train("distill", hardneg, tables, teacher=teacher)
            )
            if distill is not None:
                models["distill"] = distill
                self.note_teacher()
        return models

    def note_reranker(self) -> None:
        """Say in the report whether the reranker learned: its answer loss against ln 2, a constant guess."""
        import math

        from umarvel_cli.artifacts.manifest import read_manifest

        assert self.reranker is not None
        manifest = read_manifest(self.out / "train" / "rerank")
        loss = (manifest.extra.get("final_loss") if manifest else None) or float("nan")
        note = (
            f"The reranker's answer loss ended at {loss:.3f} (ln 2 = {math.log(2):.3f} is a constant guess)"
        )
        if not loss < CHANCE_LOSS_SHARE * math.log(2):
            note += (
                ": it did not learn to compare a query with a candidate on this data, so distillation from "
                'its scores and U-MARVEL+ cannot gain here (docs/benchmarks.md, "Why the tiny reranker '
                'does not learn": a 2-layer model sits at ln 2 for about 1,000 steps, and even after 4,200 '
                "it orders the retriever's top-10 at chance; the paper's starts from a pretrained Instruct model)"
            )
        self.result.notes.append(note + ".")

    def note_teacher(self) -> None:
        """Say in the report how well the distillation teacher ordered its lists (`distill` measured it)."""
        from umarvel_cli.artifacts.manifest import read_manifest
        from umarvel_cli.reranking.teacher_quality import TeacherQuality

        manifest = read_manifest(self.out / "train" / "distill")
        stored = manifest.extra.get("teacher_quality") if manifest else None
        if stored:
            quality = TeacherQuality(**stored)
            verdict = " (worse than the retriever alone)" if quality.worse_than_retrieval else ""
            self.result.notes.append(f"Distillation teacher: {quality.describe()}{verdict}.")

    def mine(self, tables: Path, model: Path) -> Path:
        return mine_negatives(model, tables, self.out / "mine", self.force)

    def train(self, stage: str, model: Path, tables: Path, **inputs: Path) -> Path:
        """One training stage under out/train/<stage>; returns its model folder."""
        return train_stage(
            stage, model, tables, self.out / "train" / stage, self.overrides, self.force, **inputs
        )

    def init_reranker(self, retriever: Path) -> Path:
        return init_reranker(retriever, self.out / "models" / "reranker_init", self.force)

    def score(
        self, tables: Path, retriever: Path, split: str, pool: str, topk: int, sample: float | None = None
    ) -> Path:
        """`rerank score`: the reranker's P(Yes) of `retriever`'s top-k (a teacher table)."""
        from umarvel_cli.reranking.score_stage import rerank_score

        assert self.reranker is not None
        out = self.out / "teacher" / f"{split}_{pool}"
        rerank_score(
            self.reranker, tables, out, retriever=retriever, split=split, pool=pool, topk=topk,
            sample=sample, force=self.force,
        )  # fmt: skip
        return out

    # -- evaluation -----------------------------------------------------------------------------------
    def evaluate(
        self,
        tables: Path,
        label: str,
        model: Path,
        rerank: Callable[[str], Any] | None = None,
        pools: tuple[str, ...] = tuple(EVAL_DIRS),
    ) -> None:
        """`eval mbeir` of one model on each pool, into eval/<label> and eval_global/<label>."""
        for pool in pools:
            folder = EVAL_DIRS[pool]
            _step(
                self.result,
                f"eval {label} ({pool})",
                lambda p=pool, f=folder: self._record(
                    p,
                    label,
                    self._eval(tables, p, self.out / f / label, model, rerank(p) if rerank else None),
                ),
            )

    def _eval(self, tables: Path, pool: str, out: Path, model: Path, rerank: Any) -> dict[str, Any]:
        from umarvel_cli.evaluation import evaluate_mbeir

        return evaluate_mbeir(
            tables, split=self.split, pool=pool, out=out, model=model, topk=self.plan.eval_topk,
            force=self.force, rerank=rerank,
        )  # fmt: skip

    def _record(self, pool: str, label: str, metrics: dict[str, Any]) -> None:
        averages, task_scores, chance = self.result.pool(pool)
        averages[label] = float(metrics["headline"]["mean"])
        task_scores[label] = {t["label"]: float(t["score"]) for t in metrics["tasks"]}
        known = metrics.get("chance") or {}
        chance.update({t["label"]: known.get(t["task"]) for t in metrics["tasks"]})
        if metrics.get("rerank"):
            r = metrics["rerank"]
            self.result.notes.append(
                f"U-MARVEL+ ({pool}): W = {r['weight']} ({r['weight_source']}), retrieval only "
                f"{r['retrieval_only']['mean']:.4f} -> reranked {averages[label]:.4f}."
            )

    def umarvel_plus(self, tables: Path, final: Path) -> None:
        """The final retriever's val and test top-k scored by the reranker (`rerank score`), then `eval
        mbeir --rerank-scores ... --tune-weight-on val` on each pool."""
        from umarvel_cli.evaluation.rerank_fusion import RerankOptions

        k = self.plan.rerank_topk
        skipped = [p for p in EVAL_DIRS if p not in self.plan.plus_pools]
        if skipped:
            self.result.notes.append(
                f"U-MARVEL+ is evaluated on the {', '.join(self.plan.plus_pools)} pool only, as the paper "
                f"reports it (not on: {', '.join(skipped)}; `demo: plus_pools` in configs/train_demo.yaml)."
            )
        lists: dict[tuple[str, str], Path] = {}
        for pool in self.plan.plus_pools:
            for split in ("val", self.split):
                got = _step(
                    self.result,
                    f"rerank score (U-MARVEL+: {split}, {pool})",
                    lambda s=split, p=pool: self.score(tables, final, s, p, k),
                )
                if got is None:
                    return
                lists[split, pool] = got

        def options(pool: str) -> RerankOptions:
            return RerankOptions(
                scores=lists[self.split, pool], topk=k, tune_on="val", val_scores=lists["val", pool]
            )

        self.evaluate(tables, PLUS, final, rerank=options, pools=self.plan.plus_pools)


# -- the steps the demo and its ablations (`ablations.py`) both run, each into a folder it is given --
def train_chain(
    root: Path, tables: Path, init: Path, out: Path, sets: list[str], force: bool
) -> dict[str, Path]:
    """The progressive chain (nli → caption → mbeir) on the demo's pairs under `root`; {stage: model}."""
    from umarvel_cli.training.progressive import train_progressive

    return train_progressive(
        data=tables, nli_pairs=root / "pairs_nli", caption_pairs=root / "pairs_caption", model=init,
        out=out, profile=PROFILE, overrides=sets, force=force,
    )  # fmt: skip


def train_stage(
    stage: str, model: Path, tables: Path, out: Path, sets: list[str], force: bool, **inputs: Path
) -> Path:
    """One training stage (`train --stage hardneg|mbeir`, `rerank train`, `distill`) into `out`;
    returns its model folder."""
    from umarvel_cli.training.dispatch import train
    from umarvel_cli.training.stages import StageRequest

    req = StageRequest(
        stage, model, out, tables, profile=PROFILE, sets=sets, force=force, **inputs
    )  # fmt: skip
    (done,) = train(req)["stages"]
    return Path(done["model"])


def mine_negatives(model: Path, tables: Path, out: Path, force: bool, filtered: bool = True) -> Path:
    """`mine` on the train split's local pools: the default filters, or (`filtered=False`) every
    score filter off (positives and same-content candidates are still dropped)."""
    from umarvel_cli.mining import make_settings, run_mine

    off: dict[str, Any] = {} if filtered else {"margin": None, "max_score_ratio": None, "max_score": None}
    run_mine(model, tables, out, make_settings(split="train", pool="local", **off), force=force)
    return out


def init_reranker(retriever: Path, out: Path, force: bool) -> Path:
    """A tiny reranker from random weights does not learn: it starts from the retriever's network."""
    from umarvel_cli.models.init_stage import init_model

    init_model(None, out, kind="reranker", from_model=retriever, force=force)
    return out


def _zeroshot_sets(out: Path, seed: int, force: bool) -> Path:
    """The demo's zero-shot releases under out/zeroshot/ and their tables (each an ordinary stage)."""
    from umarvel_cli.data.zeroshot import prepare_zeroshot
    from umarvel_cli.data.zeroshot.demo import DEMO_MARKER, write_zeroshot_demo

    root = out / "zeroshot"
    if force or not all((root / folder / DEMO_MARKER).is_file() for folder in ZEROSHOT_SETS.values()):
        write_zeroshot_demo(root, seed=seed)
    for name, folder in ZEROSHOT_SETS.items():
        prepare_zeroshot(name, root / folder, root / f"{name}_tables", force=force)
    return root


def _eval_zeroshot(result: DemoResult, root: Path, label: str, model: Path, force: bool) -> None:
    from umarvel_cli.evaluation.zeroshot import evaluate_zeroshot

    for name in ZEROSHOT_SETS:
        record = evaluate_zeroshot(
            name,
            root / f"{name}_tables",
            result.out / "eval_zeroshot" / label / name,
            model=model,
            force=force,
        )
        for t in record["tasks"]:
            result.zeroshot.setdefault(label, {})[f"{name} {t['task']} {t['headline']}"] = float(t["score"])
