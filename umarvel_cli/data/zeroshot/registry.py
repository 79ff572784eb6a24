"""Reader per benchmark (named by `reader:` in data_manifests/zeroshot.yaml)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from umarvel_cli.data.zeroshot.ccneg import read_ccneg
from umarvel_cli.data.zeroshot.circo import read_circo
from umarvel_cli.data.zeroshot.flickr30k import read_flickr30k
from umarvel_cli.data.zeroshot.genecis import Crop, read_genecis
from umarvel_cli.data.zeroshot.long_captions import read_sharegpt4v, read_urban1k
from umarvel_cli.data.zeroshot.msrvtt import read_msrvtt
from umarvel_cli.data.zeroshot.msvd import read_msvd
from umarvel_cli.data.zeroshot.records import ZeroShotRows
from umarvel_cli.data.zeroshot.spec import BenchmarkSpec
from umarvel_cli.data.zeroshot.sugarcrepe import read_sugarcrepe
from umarvel_cli.data.zeroshot.visdial import read_visdial

Reader = Callable[[Path, BenchmarkSpec, str, Path], tuple[ZeroShotRows, list[Crop]]]


def _plain(fn: Callable[[Path, BenchmarkSpec, str], ZeroShotRows]) -> Reader:
    return lambda root, spec, split, out: (fn(root, spec, split), [])


READERS: dict[str, Reader] = {
    "circo": _plain(read_circo),
    "msrvtt": _plain(read_msrvtt),
    "msvd": _plain(read_msvd),
    "flickr30k": _plain(read_flickr30k),
    "genecis": read_genecis,
    "sugarcrepe": _plain(read_sugarcrepe),
    "sharegpt4v": _plain(read_sharegpt4v),
    "urban1k": _plain(read_urban1k),
    "visdial": _plain(read_visdial),
    "ccneg": _plain(read_ccneg),
}
