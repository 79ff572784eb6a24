"""A reranker folder that starts from an embedding model's network (`init-model --kind reranker --from`).

The paper's reranker starts from a pretrained Instruct model. A tiny model has no pretraining, and
from random weights its answer loss stays at ln 2 on the demo; starting from the trained retriever
gives it the retriever's vision tower, token embeddings and attention instead. The backbone's
weights go into the family's generative class unchanged; its LM head starts as a copy of the input
embeddings (a tie at initialisation); umarvel.json is the embedder's (attention and image settings
kept), marked a reranker.
"""

from __future__ import annotations

from pathlib import Path

from umarvel_cli.errors import UmarvelError
from umarvel_cli.models.folder import resolve_model_dir, write_model_folder
from umarvel_cli.models.inputs.image_processor import build_image_processor
from umarvel_cli.models.registry import detect_family, quiet_transformers
from umarvel_cli.models.reranker import KIND_KEY, RERANKER_KIND, model_kind
from umarvel_cli.models.umarvel_config import UmarvelConfig


def check_embedder_source(source: str | Path) -> Path:
    """The embedding model folder `source` names; a reranker is refused (cheap: no weights read)."""
    src = resolve_model_dir(source)
    if model_kind(src) == RERANKER_KIND:
        raise UmarvelError(
            "this is a reranker, not an embedding model", file=src, expected="an embedding model folder"
        )
    return src


def reranker_from_embedder(source: str | Path, out: str | Path) -> Path:
    """Write a reranker folder at `out` whose network is the embedding model `source`'s."""
    import torch
    import transformers

    src = check_embedder_source(source)
    quiet_transformers()
    family = detect_family(src)
    embedder = family.model_cls().from_pretrained(src, dtype=torch.float32)
    config = transformers.AutoConfig.from_pretrained(src)
    config.architectures = [family.generation_class]
    generative = family.generation_cls()(config)
    generative.model.load_state_dict(embedder.state_dict())
    with torch.no_grad():
        generative.get_output_embeddings().weight.copy_(generative.get_input_embeddings().weight)
    settings = UmarvelConfig.load(src) if UmarvelConfig.exists(src) else UmarvelConfig(family=family.name)
    settings.extra[KIND_KEY] = RERANKER_KIND
    tokenizer = transformers.AutoTokenizer.from_pretrained(src)
    processor = build_image_processor(family, settings.min_pixels, settings.max_pixels)
    return write_model_folder(generative, tokenizer, processor, settings, out, "reranker", adapted=False)
