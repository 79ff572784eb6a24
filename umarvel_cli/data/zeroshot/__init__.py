"""Zero-shot benchmarks (CIRCO, MSR-VTT, MSVD, Flickr30K, GeneCIS, SugarCrepe): one small reader per
release format, declared in data_manifests/zeroshot.yaml, all writing the M-BEIR tables."""

from umarvel_cli.data.zeroshot.prepare import prepare_zeroshot
from umarvel_cli.data.zeroshot.spec import BenchmarkSpec, TaskSpec, load_zeroshot_suite

__all__ = ["BenchmarkSpec", "TaskSpec", "load_zeroshot_suite", "prepare_zeroshot"]
