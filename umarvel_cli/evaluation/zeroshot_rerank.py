"""`eval zeroshot --rerank / --rerank-scores`: U-MARVEL+ on a zero-shot benchmark's run.

Each query's top-k (within its gallery for gallery and choice tasks: the run holds only the
gallery) is scored by the pointwise reranker (`rerank score`) and fused with its own retrieval score
(`reranking.fusion.fuse_run`). W is given, or chosen on another split the benchmark declares
(`--tune-weight-on val --tune-data VAL_TABLES`, e.g. CIRCO val when evaluating CIRCO test): never on
the test split, never on the split being evaluated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from umarvel_cli.artifacts import fingerprint, read_manifest
from umarvel_cli.artifacts.trec import write_trec_run
from umarvel_cli.data.zeroshot.spec import BenchmarkSpec
from umarvel_cli.errors import UmarvelError
from umarvel_cli.evaluation.rerank_fusion import RerankRequest
from umarvel_cli.reranking.fusion import WEIGHT_GRID, fuse_run
from umarvel_cli.reranking.teacher import check_known, read_teacher, teacher_folder

DEFAULT_WEIGHT = 0.1  # the released U-MARVEL+ weight (M-BEIR)
TEST_SPLIT = "test"

# (fused run, tables folder) -> mean headline score of the benchmark on those tables
Scorer = Callable[[pa.Table, Path], float | None]


@dataclass
class ZeroshotRerank(RerankRequest):
    """`eval zeroshot`: the weight is tuned on another split the benchmark declares (never test)."""

    tune_data: Path | None = None  # the tables of that split (`prepare zeroshot --split`)
    tune_run: Path | None = None  # a run over them (or searched here with --model)
    tune_scores: Path | None = None  # its teacher table (or scored here with --rerank)

    def check(self, spec: BenchmarkSpec, split: str, has_model: bool) -> None:
        """Refuse what cannot be done before anything is written."""
        tuning = (self.tune_data, self.tune_run, self.tune_scores)
        if not self.check_sources(tuning):
            return
        if self.tune_on is None:
            if any(v is not None for v in tuning):
                raise UmarvelError("--tune-data/--tune-run/--tune-rerank-scores need --tune-weight-on",
                                   field="--tune-weight-on")  # fmt: skip
            return
        allowed = [s for s in spec.splits if s not in (TEST_SPLIT, split)]
        if self.tune_on not in allowed:
            why = (
                "the test split"
                if self.tune_on == TEST_SPLIT
                else (
                    "the split being evaluated" if self.tune_on == split else "not a split of the benchmark"
                )
            )
            raise UmarvelError(
                f"cannot tune the fusion weight on {self.tune_on!r} ({why}) for {spec.name} {split}",
                field="--tune-weight-on",
                expected=" or ".join(allowed) if allowed else f"a fixed --rerank-weight ({spec.name} has no other split)",
            )  # fmt: skip
        if self.tune_data is None:
            raise UmarvelError(
                f"--tune-weight-on {self.tune_on} needs its tables: --tune-data", field="--tune-data"
            )
        manifest = read_manifest(self.tune_data) if Path(self.tune_data).is_dir() else None
        extra = manifest.extra if manifest is not None else {}
        if manifest is None or extra.get("benchmark") != spec.name or extra.get("split") != self.tune_on:
            raise UmarvelError(
                f"not the {spec.name} {self.tune_on} tables",
                file=self.tune_data,
                field="--tune-data",
                expected=f"`umarvel prepare zeroshot --benchmark {spec.name} --split {self.tune_on}`",
            )
        if self.tune_run is None and not has_model:
            raise UmarvelError(f"--tune-weight-on needs a run over the {self.tune_on} tables: --tune-run, or --model",
                               field="--tune-run")  # fmt: skip
        if self.tune_scores is None and self.reranker is None:
            raise UmarvelError(
                "--tune-weight-on needs --tune-rerank-scores, or --rerank", field="--tune-rerank-scores"
            )
        if self.tune_scores is not None:
            teacher_folder(self.tune_scores)

    def inputs(self) -> dict[str, str]:
        named = {
            "rerank_scores": self.scores,
            "reranker": self.reranker,
            "tune_data": self.tune_data,
            "tune_run": self.tune_run,
            "tune_rerank_scores": self.tune_scores,
        }
        return {k: fingerprint(v) for k, v in named.items() if v is not None}


def _teacher(
    run: pa.Table, data: Path, scores: Path | None, opts: ZeroshotRerank, out: Path, name: str
) -> tuple[pa.Table, Path]:
    """The teacher table for `run` (given, or scored here over its top-k) and where it is."""
    from umarvel_cli.artifacts import read_table

    if scores is None:
        from umarvel_cli.reranking.score_stage import rerank_score

        run_file = out / f"{name}.trec"  # rerank score reads any run: this one as TREC
        ordered = run.sort_by([("qid", "ascending"), ("score", "descending"), ("rank", "ascending")])
        write_trec_run(run_file, ordered, run_id=name)
        scores = out / f"rerank-{name}"
        rerank_score(opts.reranker, data, scores, run=run_file, topk=opts.topk, device=opts.device)
    teacher = read_teacher(scores)
    qids = read_table(data, "queries", columns=["qid"]).column("qid").combine_chunks()
    dids = read_table(data, "candidates", columns=["did"]).column("did").combine_chunks()
    check_known(teacher, qids, dids, scores, f"the tables {data}")
    return teacher, scores


def _tune(opts: ZeroshotRerank, out: Path, tune_run: pa.Table, score: Scorer) -> dict[str, Any]:
    """The W of the grid with the best mean headline on the tuning split (ties: the smallest W)."""
    assert opts.tune_data is not None
    teacher, source = _teacher(tune_run, opts.tune_data, opts.tune_scores, opts, out, f"tune-{opts.tune_on}")
    values = [score(fuse_run(tune_run, teacher, w, None, source), opts.tune_data) for w in WEIGHT_GRID]
    best = max(range(len(WEIGHT_GRID)), key=lambda i: (values[i] if values[i] is not None else -1.0, -i))
    return {
        "split": opts.tune_on,
        "data": str(opts.tune_data),
        "scores": str(source),
        "grid": list(WEIGHT_GRID),
        "val_scores": values,
        "chosen": WEIGHT_GRID[best],
        "rule": "best mean headline metric on the tuning split, then the smallest W",
    }


def rerank_zeroshot(
    run: pa.Table,
    data: Path,
    opts: ZeroshotRerank,
    out: Path,
    score: Scorer,
    tune_run: Callable[[], pa.Table] | None = None,
) -> tuple[pa.Table, dict[str, Any]]:
    """The fused run and what metrics.json records about it; `tune_run` gives the tuning split's run."""
    teacher, source = _teacher(run, data, opts.scores, opts, out, "retrieval")
    tuning = _tune(opts, out, tune_run(), score) if opts.tune_on and tune_run is not None else None
    weight = tuning["chosen"] if tuning else (opts.weight if opts.weight is not None else DEFAULT_WEIGHT)
    fused = fuse_run(run, teacher, weight, None, source)
    info = {
        "scores": str(source),
        "topk": opts.topk if opts.scores is None else None,  # given scores: the pairs they hold
        "reranked_pairs": teacher.num_rows,
        "reranked_queries": len(set(teacher.column("qid").to_pylist())),
        "weight": weight,
        "weight_source": f"tuned on {opts.tune_on}"
        if tuning
        else ("given" if opts.weight is not None else "default"),
        "tuning": tuning,
    }
    return fused, info
