"""`umarvel demo --ablations`: the paper's switches on the demo's data, each against the default recipe.

Every variant is a chain of ordinary stages (init-model, train, mine, rerank train and score, distill,
eval mbeir) writing into its own folders, so a rerun resumes where it stopped and finished steps are up
to date. Per seed k (the seed of the init model and of training) the default recipe runs once, under
`out/ablations/default/seed<k>/`, and is every switch's default; an alternative changes one thing and
runs under `out/ablations/<switch>/<alternative>/seed<k>/`, starting from the default's model before
the stage it changes. Every model is scored on the demo's split (test) and local pools with the demo
profile's settings, which were chosen on val.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from umarvel_cli.console import info
from umarvel_cli.demo import (
    DEMO_POOL_TOKENS,
    PROFILE,
    init_reranker,
    load_plan,
    mine_negatives,
    train_chain,
    train_stage,
)

ABLATIONS_DIR = "ablations"
DEFAULT = "default"
POOL = "local"
SECOND_OPINION_SE = 2.0  # a delta within this many standard errors is called noise


@dataclass(frozen=True)
class Switch:
    """One row of the table: the recipe's choice against one alternative."""

    name: str
    default: str
    alternative: str
    scored: str  # the model of each chain that is scored: mbeir | hardneg | distill
    how: str  # how the alternative is expressed (umarvel.json field, config key, mining option)
    why: str  # why the factor may not help on the demo data (said in the report when it does not)


SWITCHES: dict[str, Switch] = {
    s.name: s
    for s in (
        Switch(
            "attention", "bidirectional", "causal", "mbeir", "umarvel.json attention: causal",
            "a two-layer model reads a short item in both directions almost as well in one, and most of "
            "its signal is the mean over every token, which causal attention still sees",
        ),
        Switch(
            "pooling", "mean", "last-token", "mbeir", "umarvel.json pooling: last",
            "the last token of a tiny random model has few layers to gather the item into, so mean "
            "pooling usually wins; where it does not, the test split is too small to tell them apart",
        ),
        Switch(
            "instruction", "masked", "pooled", "mbeir", "umarvel.json pool_instruction: true",
            "the demo has four instructions per task and each names the task, so pooling them adds a "
            "per-task offset that every query of a task shares and the local pools do not punish",
        ),
        Switch(
            "temperature", "learnable", "fixed", "mbeir", "--set mbeir.learn_temperature=false",
            "the learnable temperature starts at the fixed one (0.05) and moves little in a few hundred "
            "steps, so both runs train with nearly the same logit scale",
        ),
        Switch(
            "progressive", "progressive", "mbeir-only", "mbeir", "mbeir stage from the untrained model",
            "the demo's NLI and caption corpora are small and share the M-BEIR tasks' wording, so they "
            "teach little the mbeir stage's own queries do not",
        ),
        Switch(
            "negatives", "filtered", "unfiltered", "hardneg", "mine --margin off --max-score-ratio off "
            "--max-score off",
            "the demo plants few near-duplicates, so the filters remove few false negatives, and some of the "
            "hardest true negatives with them"),
        Switch(
            "distillation", "distill", "hardneg-continued", "distill",
            "hardneg stage again from the hardneg model (negatives mined with it, as the stage requires), "
            "as many steps as distill",
            "the tiny reranker starts from the hardneg retriever and trains for a few steps, so its "
            "teacher scores carry little more than the retriever already knows",
        ),
    )
}  # fmt: skip


@dataclass
class AblationResult:
    out: Path
    split: str
    seeds: tuple[int, ...]
    scores: dict[str, dict[str, dict[int, float]]] = field(default_factory=dict)  # switch -> variant -> seed
    rows: list[dict[str, Any]] = field(default_factory=list)
    report: Path | None = None


def run_ablations(
    out: Path,
    size: str = "small",
    seeds: Sequence[int] = (0, 1),
    switches: Sequence[str] | None = None,
    backbone: str = "tiny-qwen2-vl",
    split: str = "test",
    force: bool = False,
    train_overrides: Sequence[str] | None = None,
) -> AblationResult:
    """Each switch against the default on `out`'s demo data (written by `run_demo` first): writes
    out/ablations/report.md, ablations.json and ablations.png."""
    from umarvel_cli.errors import UmarvelError
    from umarvel_cli.training.config import size_sets

    names = list(switches or SWITCHES)
    unknown = [n for n in names if n not in SWITCHES]
    if unknown:
        raise UmarvelError(
            f"unknown ablation {unknown[0]!r}", field="switches", expected=" | ".join(SWITCHES)
        )
    out = Path(out)
    for needed in ("tables", "pairs_nli", "pairs_caption"):
        if not (out / needed / "manifest.json").is_file():
            raise UmarvelError(
                "the demo's data is not prepared here (run `umarvel demo` first)", file=out / needed
            )
    result = AblationResult(out / ABLATIONS_DIR, split, tuple(seeds))
    sets = size_sets(PROFILE, size, list(train_overrides or []))
    for seed in seeds:
        runner = _Runner(out, seed, backbone, split, force, sets)
        for name in names:
            switch = SWITCHES[name]
            info(f"[bold cyan]ablation[/] {name}: {switch.default} vs {switch.alternative} (seed {seed})")
            variants = result.scores.setdefault(name, {})
            variants.setdefault(switch.default, {})[seed] = runner.score(switch.scored)
            variants.setdefault(switch.alternative, {})[seed] = runner.alternative(switch)
    result.rows = [_row(SWITCHES[n], result.scores[n], result.seeds) for n in names]
    result.report = write_ablation_report(result)
    return result


class _Runner:
    """The stages of one seed: the default chain (built as far as a switch needs it) and the alternatives."""

    def __init__(self, out: Path, seed: int, backbone: str, split: str, force: bool, sets: list[str]) -> None:
        self.out, self.seed, self.backbone, self.split, self.force = out, seed, backbone, split, force
        self.tables = out / "tables"
        self.sets = [*sets, f"seed={seed}"]
        self.base = self.folder(DEFAULT)
        self._models: dict[str, Path] = {}
        self._scores: dict[str, float] = {}

    def folder(self, switch: str, variant: str | None = None) -> Path:
        parts = [switch] if variant is None else [switch, variant]
        return self.out / ABLATIONS_DIR / Path(*parts) / f"seed{self.seed}"

    # -- the default chain, each model made on first use --------------------------------------------
    def model(self, label: str) -> Path:
        """The default recipe's `label` model (init, nli, caption, mbeir, hardneg, distill)."""
        if label not in self._models:
            if label == "init":
                self._models[label] = self.init(self.base)
            elif label in ("nli", "caption", "mbeir"):
                self._models.update(self.chain(self.base, self.model("init")))
            elif label == "hardneg":
                self._models[label] = self.stage(
                    "hardneg", self.base, self.model("mbeir"), negatives=self.mined()
                )
            elif label == "distill":
                self._models[label] = self.stage(
                    "distill", self.base, self.model("hardneg"), teacher=self.teacher()
                )
        return self._models[label]

    def mined(self) -> Path:
        return self.mine(self.base, self.model("mbeir"), filtered=True)

    def teacher(self) -> Path:
        """The reranker's P(Yes) of the hardneg model's top-k, on a share of the train queries, as the
        demo draws them (its `demo:` plan)."""
        from umarvel_cli.reranking.score_stage import rerank_score

        rr_init = init_reranker(self.model("hardneg"), self.base / "models" / "reranker_init", self.force)
        reranker = self.stage("rerank", self.base, rr_init, negatives=self.mined())
        plan = load_plan(self.sets)
        out = self.base / "teacher"
        rerank_score(
            reranker, self.tables, out, retriever=self.model("hardneg"), split="train",
            pool=plan.teacher_pool, topk=plan.teacher_topk, sample=plan.teacher_fraction, force=self.force,
        )  # fmt: skip
        return out

    # -- one switch's alternative --------------------------------------------------------------------
    def alternative(self, switch: Switch) -> float:
        folder = self.folder(switch.name, switch.alternative)
        settings = {"attention": {"attention": "causal"}, "pooling": {"pooling": "last"}}
        settings["instruction"] = {"pool_instruction": True}
        if switch.name in settings:
            model = self.chain(folder, self.init(folder, settings[switch.name]))["mbeir"]
        elif switch.name == "temperature":
            model = self.stage(
                "mbeir", folder, self.model("caption"), extra=["mbeir.learn_temperature=false"]
            )
        elif switch.name == "progressive":
            model = self.stage("mbeir", folder, self.model("init"))
        elif switch.name == "negatives":
            mined = self.mine(folder, self.model("mbeir"), filtered=False)
            model = self.stage("hardneg", folder, self.model("mbeir"), negatives=mined)
        else:  # distillation: as many hardneg steps as distill took, from the same hardneg model
            from umarvel_cli.artifacts import read_manifest

            self.model("distill")
            steps = read_manifest(self.base / "train" / "distill").counts["steps"]
            hardneg = self.model("hardneg")
            mined = self.mine(folder, hardneg, filtered=True)  # a hardneg stage takes its init model's lists
            model = self.stage(
                "hardneg", folder, hardneg, extra=[f"hardneg.max_steps={steps}"], negatives=mined
            )
        return self.evaluate(folder, model)

    def score(self, label: str) -> float:
        """The default recipe's `label` model, scored once per seed."""
        if label not in self._scores:
            self._scores[label] = self.evaluate(self.base, self.model(label), label)
        return self._scores[label]

    # -- the stages ----------------------------------------------------------------------------------
    def init(self, folder: Path, settings: dict[str, Any] | None = None) -> Path:
        from umarvel_cli.models.init_stage import init_model

        target = folder / "models" / "init"
        init_model(
            self.backbone,
            target,
            seed=self.seed,
            pool_tokens=DEMO_POOL_TOKENS,
            settings=settings,
            force=self.force,
        )
        return target

    def chain(self, folder: Path, init: Path) -> dict[str, Path]:
        return train_chain(self.out, self.tables, init, folder / "train", self.sets, self.force)

    def stage(self, stage: str, folder: Path, model: Path, extra: Sequence[str] = (), **inputs: Path) -> Path:
        sets = [*self.sets, *extra]
        return train_stage(stage, model, self.tables, folder / "train" / stage, sets, self.force, **inputs)

    def mine(self, folder: Path, model: Path, filtered: bool) -> Path:
        return mine_negatives(model, self.tables, folder / "mine", self.force, filtered)

    def evaluate(self, folder: Path, model: Path, label: str = "") -> float:
        from umarvel_cli.evaluation import evaluate_mbeir

        target = folder / "eval" / (label or "model")
        metrics = evaluate_mbeir(
            self.tables, split=self.split, pool=POOL, out=target, model=model, force=self.force
        )
        return float(metrics["headline"]["mean"])


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (0 for a single value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def _row(switch: Switch, variants: dict[str, dict[int, float]], seeds: Sequence[int]) -> dict[str, Any]:
    base = [variants[switch.default][s] for s in seeds]
    alt = [variants[switch.alternative][s] for s in seeds]
    (bm, bse), (am, ase) = mean_se(base), mean_se(alt)
    dm, dse = mean_se([b - a for b, a in zip(base, alt, strict=True)])
    dm = dm + 0.0 if abs(dm) > 1e-12 else 0.0  # equal scores print as +0.0000, not -0.0000
    helps = len(seeds) > 1 and dm > SECOND_OPINION_SE * dse and dm > 0  # one seed has no error estimate
    return {
        "switch": switch.name,
        "default": switch.default,
        "alternative": switch.alternative,
        "scored_model": switch.scored,
        "how": switch.how,
        "default_scores": base,
        "alternative_scores": alt,
        "default_mean": bm,
        "default_se": bse,
        "alternative_mean": am,
        "alternative_se": ase,
        "delta_mean": dm,  # default - alternative: > 0 when the recipe's choice helps
        "delta_se": dse,
        "helps": helps,
        "why_not": None if helps else switch.why,
    }


def write_ablation_report(result: AblationResult) -> Path:
    from umarvel_cli.metrics.chart import paired_bars

    out = result.out
    out.mkdir(parents=True, exist_ok=True)
    seeds = ", ".join(str(s) for s in result.seeds)
    record = {"split": result.split, "pool": POOL, "seeds": list(result.seeds), "rows": result.rows}
    (out / "ablations.json").write_text(json.dumps(record, indent=2) + "\n")
    paired_bars(
        out / "ablations.png",
        f"Demo ablations ({result.split}, {POOL} pools)\nmean ± s.e. over seeds {seeds}",
        [r["switch"] for r in result.rows],
        {
            "default (the recipe)": [(r["default"], r["default_mean"], r["default_se"]) for r in result.rows],
            "alternative": [
                (r["alternative"], r["alternative_mean"], r["alternative_se"]) for r in result.rows
            ],
        },
    )
    lines = [
        "# umarvel demo: ablations",
        "",
        f"Average UniIR Recall@k over the demo's tasks on the **{result.split}** split, {POOL} pools; mean ± "
        f"standard error over seeds {seeds} (the seed of the init model and of training). Settings are the "
        "demo profile's, chosen on val. Δ = default − alternative (± the standard error of the per-seed "
        f"differences); a Δ within {SECOND_OPINION_SE:g} standard errors of 0 is not a difference the demo "
        "can resolve. Each default is the default recipe's model at that point (out/ablations/default/); "
        "each alternative changes one thing (out/ablations/<switch>/<alternative>/).",
        "",
        "| switch | default | alternative | model scored | default | alternative | Δ | how the alternative is set |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result.rows:
        lines.append(
            f"| {r['switch']} | {r['default']} | {r['alternative']} | {r['scored_model']} "
            f"| {r['default_mean']:.4f} ± {r['default_se']:.4f} | {r['alternative_mean']:.4f} ± {r['alternative_se']:.4f} "
            f"| {r['delta_mean']:+.4f} ± {r['delta_se']:.4f} | {r['how']} |"
        )
    lines += ["", "![default vs alternative per switch, mean ± s.e.](ablations.png)", ""]
    for r in result.rows:
        if len(result.seeds) < 2:
            lines.append(f"- **{r['switch']}**: Δ {r['delta_mean']:+.4f} from one seed (no standard error).")
        elif r["helps"]:
            lines.append(
                f"- **{r['switch']}**: {r['default']} beats {r['alternative']} by {r['delta_mean']:+.4f} "
                f"± {r['delta_se']:.4f}."
            )
        else:
            verdict = "does not beat" if r["delta_mean"] <= 0 else "is not clearly better than"
            lines.append(
                f"- **{r['switch']}**: {r['default']} {verdict} {r['alternative']} on the demo data "
                f"(Δ {r['delta_mean']:+.4f} ± {r['delta_se']:.4f}); a likely reason: {r['why_not']}."
            )
    lines += ["", "Per-seed scores: `ablations.json`; each model's evaluation: `<variant>/seed<k>/eval/`."]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
