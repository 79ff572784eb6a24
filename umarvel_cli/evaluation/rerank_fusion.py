"""`eval mbeir --rerank-scores / --rerank`: U-MARVEL+ on top of the evaluated run.

The run's top-k are scored by a reranker (here, or earlier by `rerank score`), fused with each
candidate's own cosine and re-sorted (`reranking.fusion`). W is given or chosen on the validation
split only (`--tune-weight-on val`): from a validation run and its teacher scores, given or made
here with `--model` and `--rerank`. The test split is never read to choose W (the released B8).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from umarvel_cli.artifacts import read_table
from umarvel_cli.artifacts.trec import write_trec_run
from umarvel_cli.data.mbeir.tasks import MBEIRSpec
from umarvel_cli.errors import UmarvelError
from umarvel_cli.evaluation.prepared import PreparedSplit, candidate_ids, load_split
from umarvel_cli.evaluation.run_input import read_run
from umarvel_cli.reranking.fusion import Tuning, check_weight, fuse_run, tune_weight
from umarvel_cli.reranking.teacher import check_known, read_teacher, teacher_folder

DEFAULT_WEIGHT = 0.1  # the released U-MARVEL+ weight on M-BEIR


@dataclass
class RerankRequest:
    """What an evaluation was asked to rerank with (U-MARVEL+), and the checks every evaluation makes."""

    scores: Path | None = None  # a `rerank score` output (teacher table) for the evaluated run
    reranker: Path | None = None  # or a reranker folder: score the run's top-k here
    topk: int = 50
    weight: float | None = None
    tune_on: str | None = None  # a split to choose the weight on (never test)
    device: str | None = None

    @property
    def active(self) -> bool:
        return self.scores is not None or self.reranker is not None

    def check_sources(self, tuning_inputs: tuple[Any, ...] = ()) -> bool:
        """Refuse, before anything is written, what no evaluation can do; False when nothing is
        reranked (`tuning_inputs`: the tuning's other options, which then may not be given)."""
        if self.scores is not None and self.reranker is not None:
            raise UmarvelError("give at most one of --rerank-scores or --rerank", field="--rerank")
        if not self.active:
            if (
                self.weight is not None
                or self.tune_on is not None
                or any(v is not None for v in tuning_inputs)
            ):
                raise UmarvelError(
                    "a fusion weight needs --rerank-scores or --rerank", field="--rerank-weight"
                )
            return False
        if self.topk < 1:
            raise UmarvelError(f"--rerank-topk must be >= 1, not {self.topk}", field="--rerank-topk")
        if self.weight is not None:
            check_weight(self.weight)
            if self.tune_on is not None:
                raise UmarvelError(
                    "give --rerank-weight or --tune-weight-on, not both", field="--tune-weight-on"
                )
        if self.scores is not None:
            teacher_folder(self.scores)
        if self.reranker is not None:
            from umarvel_cli.models.reranker import check_reranker_folder

            check_reranker_folder(Path(self.reranker))
        return True

    def params(self) -> dict[str, Any]:
        return {"rerank_topk": self.topk, "rerank_weight": self.weight, "tune_weight_on": self.tune_on}


@dataclass
class RerankOptions(RerankRequest):
    """`eval mbeir`: the weight is tuned on val, from a given val run or one searched here."""

    val_run: Path | None = None
    val_scores: Path | None = None

    def check(self) -> None:
        if not self.check_sources():
            return
        if self.tune_on not in (None, "val"):
            raise UmarvelError(
                f"cannot tune the weight on {self.tune_on!r}", field="--tune-weight-on", expected="val"
            )
        if self.val_scores is not None:
            teacher_folder(self.val_scores)

    def inputs(self) -> dict[str, str]:
        from umarvel_cli.artifacts import fingerprint

        named = {
            "rerank_scores": self.scores,
            "reranker": self.reranker,
            "val_run": self.val_run,
            "val_rerank_scores": self.val_scores,
        }
        return {k: fingerprint(v) for k, v in named.items() if v is not None}


def _teacher_for(
    run_source: Path, prepared: PreparedSplit, scores: Path | None, opts: RerankOptions, out: Path
) -> tuple[pa.Table, Path]:
    if scores is None:
        from umarvel_cli.reranking.score_stage import rerank_score

        scores = out / f"rerank-{prepared.split}"
        rerank_score(opts.reranker, prepared.data, scores, run=run_source, topk=opts.topk, device=opts.device)
    teacher = read_teacher(scores)
    check_known(
        teacher,
        pa.array(prepared.qids, type=pa.string()),
        candidate_ids(prepared.data),
        scores,
        f"the {prepared.split} split of the tables",
    )
    return teacher, scores


def _tune(
    prepared: PreparedSplit,
    spec: MBEIRSpec,
    opts: RerankOptions,
    out: Path,
    model: Path | None,
    pool: str,
    topk: int,
) -> Tuning:
    val = load_split(prepared.data, "val", spec)
    val_run = opts.val_run
    if val_run is None:
        if model is None:
            raise UmarvelError(
                "--tune-weight-on val needs a validation run: --val-run, or --model to search val here",
                field="--tune-weight-on",
            )
        from umarvel_cli.evaluation.model_search import search_with_model

        search_with_model(model, val, spec, pool, out / "val-search", topk=topk)
        # handed on as a TREC file: the search folder is this evaluation's work, not a `search` output
        val_run = write_trec_run(out / "val-search.trec", read_table(out / "val-search", "run"))
    if opts.val_scores is None and opts.reranker is None:
        raise UmarvelError(
            "--tune-weight-on val needs the validation run's teacher scores: --val-rerank-scores, or --rerank",
            field="--tune-weight-on",
        )
    teacher, source = _teacher_for(val_run, val, opts.val_scores, opts, out)
    run = read_run(val_run)
    metric_k = {t.stem: t.metric_k for t in spec.tasks}
    return tune_weight(run, teacher, val.qids, val.task_of, val.qrels, metric_k, spec.order)


def rerank_run(
    run: pa.Table,
    run_source: Path,
    prepared: PreparedSplit,
    spec: MBEIRSpec,
    opts: RerankOptions,
    out: Path,
    model: Path | None,
    pool: str,
    topk: int,
) -> tuple[pa.Table, dict[str, Any]]:
    """The fused run and what metrics.json records about it (scores used, W, the val tuning)."""
    if model is not None:  # this evaluation's own search: handed on as a TREC file, not a `search` output
        run_source = write_trec_run(out / "retrieval.trec", run)
    teacher, source = _teacher_for(run_source, prepared, opts.scores, opts, out)
    tuning = _tune(prepared, spec, opts, out, model, pool, topk) if opts.tune_on else None
    weight = tuning.weight if tuning else (opts.weight if opts.weight is not None else DEFAULT_WEIGHT)
    fused = fuse_run(run, teacher, weight, prepared.task_of, source)
    info = {
        "scores": str(source),
        "reranked_pairs": teacher.num_rows,
        "reranked_queries": len(set(teacher.column("qid").to_pylist())),
        "weight": weight,
        "weight_source": "tuned on val" if tuning else ("given" if opts.weight is not None else "default"),
        "tuning": tuning.to_json() if tuning else None,
    }
    return fused, info
