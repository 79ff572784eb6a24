"""Stage logic of evaluation: M-BEIR (local/global pools, model or run) and generic pairs benchmarks."""

from umarvel_cli.evaluation.mbeir import evaluate_mbeir
from umarvel_cli.evaluation.pairs import evaluate_pairs

__all__ = ["evaluate_mbeir", "evaluate_pairs"]
