"""From rankings and qrels to per-task means in a fixed report order, and their unweighted mean."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from umarvel_cli.metrics.ranking import DEFAULT_CUTOFFS, query_metrics


@dataclass
class TaskResult:
    """One task's means; `score` is its headline metric hit@`k` (UniIR Recall@k), a fraction."""

    task: str
    k: int
    n_queries: int
    n_without_qrels: int
    n_without_results: int
    score: float
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class Summary:
    tasks: list[TaskResult]
    mean: float | None
    missing: list[str]

    @property
    def by_task(self) -> dict[str, TaskResult]:
        return {t.task: t for t in self.tasks}


@dataclass
class QueryOutcome:
    metrics: dict[str, float]
    has_qrels: bool
    has_results: bool


def evaluate_queries(
    qids: Iterable[Hashable],
    rankings: Mapping[Hashable, Sequence[Hashable]],
    qrels: Mapping[Hashable, Mapping[Hashable, int]],
    cutoffs: Sequence[int] = DEFAULT_CUTOFFS,
    map_cutoffs: Sequence[int] = (),
) -> dict[Hashable, QueryOutcome]:
    """Metrics of every query in `qids`; a query missing from `rankings` gets an empty ranking."""
    out: dict[Hashable, QueryOutcome] = {}
    for qid in qids:
        relevant = qrels.get(qid, {})
        ranking = rankings.get(qid)
        out[qid] = QueryOutcome(
            metrics=query_metrics(ranking or (), relevant, cutoffs, map_cutoffs),
            has_qrels=any(r > 0 for r in relevant.values()),
            has_results=ranking is not None and len(ranking) > 0,
        )
    return out


def summarize_tasks(
    outcomes: Mapping[Hashable, QueryOutcome],
    task_of: Mapping[Hashable, str],
    headline_k: Mapping[str, int],
    order: Sequence[str] = (),
    default_k: int = 5,
) -> Summary:
    """Per-task means in `order` (tasks not in it follow, sorted), and the unweighted mean of scores."""
    groups: dict[str, list[QueryOutcome]] = {}
    for qid, outcome in outcomes.items():
        groups.setdefault(task_of[qid], []).append(outcome)
    known = [t for t in order if t in groups]
    extra = sorted(t for t in groups if t not in set(order))
    results = []
    for task in [*known, *extra]:
        items = groups[task]
        k = headline_k.get(task, default_k)
        names = items[0].metrics.keys()
        means = {name: sum(o.metrics[name] for o in items) / len(items) for name in names}
        if f"hit@{k}" not in means:
            raise ValueError(f"headline metric hit@{k} of task {task} was not computed")
        results.append(
            TaskResult(
                task=task,
                k=k,
                n_queries=len(items),
                n_without_qrels=sum(1 for o in items if not o.has_qrels),
                n_without_results=sum(1 for o in items if not o.has_results),
                score=means[f"hit@{k}"],
                metrics=means,
            )
        )
    mean = sum(r.score for r in results) / len(results) if results else None
    return Summary(tasks=results, mean=mean, missing=[t for t in order if t not in groups])
