"""Reader per benchmark (named by `reader:` in data_manifests/zeroshot.yaml)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from umarvel_cli.data.zeroshot.ccneg import read_ccneg
from umarvel_cli.data.zeroshot.circo import read_circo
from umarvel_cli.data.zeroshot.flickr30k import read_flickr30k
from umarvel_cli.data.zeroshot.genecis import read_genecis
from umarvel_cli.data.zeroshot.long_captions import read_sharegpt4v, read_urban1k
from umarvel_cli.data.zeroshot.msrvtt import read_msrvtt
from umarvel_cli.data.zeroshot.msvd import read_msvd
from umarvel_cli.data.zeroshot.records import ZeroShotRows
from umarvel_cli.data.zeroshot.spec import BenchmarkSpec
from umarvel_cli.data.zeroshot.sugarcrepe import read_sugarcrepe
from umarvel_cli.data.zeroshot.visdial import read_visdial

Reader = Callable[[Path, BenchmarkSpec, str], ZeroShotRows]

READERS: dict[str, Reader] = {
    "circo": read_circo,
    "msrvtt": read_msrvtt,
    "msvd": read_msvd,
    "flickr30k": read_flickr30k,
    "genecis": read_genecis,
    "sugarcrepe": read_sugarcrepe,
    "sharegpt4v": read_sharegpt4v,
    "urban1k": read_urban1k,
    "visdial": read_visdial,
    "ccneg": read_ccneg,
}
