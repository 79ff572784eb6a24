"""The built-in demo dataset: synthetic M-BEIR-layout data drawn procedurally from a seed."""

from umarvel_cli.data.demo.build import DEMO_SIZES
from umarvel_cli.data.demo.generate import generate_demo, prepare_demo

__all__ = ["DEMO_SIZES", "generate_demo", "prepare_demo"]
