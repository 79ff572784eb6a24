"""Hard-negative mining with false-negative filters (`umarvel mine`)."""

from umarvel_cli.mining.filters import FILTERS, FilterSettings, filter_candidates, select_negatives
from umarvel_cli.mining.settings import MineSettings, make_settings, optional_number
from umarvel_cli.mining.stage import run_mine

__all__ = [
    "FILTERS",
    "FilterSettings",
    "MineSettings",
    "filter_candidates",
    "make_settings",
    "optional_number",
    "run_mine",
    "select_negatives",
]
