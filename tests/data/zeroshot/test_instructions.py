"""Each zero-shot query gets its task's instruction from the paper's evaluation code, or none."""

from __future__ import annotations

from tests.data.zeroshot.releases import write_flickr30k, write_sugarcrepe
from umarvel_cli.data.zeroshot import prepare_zeroshot
from umarvel_cli.embedding.sources import query_records


def test_sugarcrepe_instructions_per_subset(tmp_path):
    prepare_zeroshot("sugarcrepe", write_sugarcrepe(tmp_path / "s"), tmp_path / "out")
    records = {r.id: r for r in query_records(tmp_path / "out", "test")}
    assert records["add_obj/0"].instruction == "Find an image caption describing the following image."
    assert records["swap_att/0"].instruction is None  # the paper's code gives these subsets none
    assert records["swap_att/0"].image == tmp_path / "s/val2017/000000544519.jpg"


def test_flickr_text_queries_are_instructed_and_image_queries_are_not(tmp_path):
    prepare_zeroshot("flickr30k", write_flickr30k(tmp_path / "f"), tmp_path / "out")
    records = {r.id: r for r in query_records(tmp_path / "out", "test")}
    assert records["0"].instruction == "Find me an everyday image that matches the given caption."
    assert records["1000092795.jpg"].instruction is None and records["1000092795.jpg"].modality == "image"
