"""Pure metric functions (no I/O) and report rendering."""

from umarvel_cli.metrics.aggregate import QueryOutcome, Summary, TaskResult, evaluate_queries, summarize_tasks
from umarvel_cli.metrics.ranking import (
    METRIC_DEFINITIONS,
    average_precision_at_k,
    hit_at_k,
    ndcg_at_k,
    order_by_score,
    query_metrics,
    recall_at_k,
    reciprocal_rank_at_k,
    top_distinct,
)

__all__ = [
    "METRIC_DEFINITIONS",
    "QueryOutcome",
    "Summary",
    "TaskResult",
    "average_precision_at_k",
    "evaluate_queries",
    "hit_at_k",
    "ndcg_at_k",
    "order_by_score",
    "query_metrics",
    "recall_at_k",
    "reciprocal_rank_at_k",
    "summarize_tasks",
    "top_distinct",
]
