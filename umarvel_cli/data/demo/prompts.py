"""Four instructions per task for the demo's `query_instructions.tsv`.

The first prompt of each follows the prompt_1 table of M-BEIR's instructions (docs/mbeir.md §1.4);
the other three are written for the demo. A task without an entry gets prompts built from its modalities.
"""

from __future__ import annotations

from umarvel_cli.data.mbeir.tasks import TaskSpec

PROMPTS: dict[tuple[str, str], tuple[str, str, str, str]] = {
    ("visualnews", "image"): (
        "Identify the news-related image in line with the described event.",
        "Retrieve the news photo that this caption describes.",
        "Find the image that goes with this news caption.",
        "Which news image shows the event in this caption?",
    ),
    ("visualnews", "text"): (
        "Find a caption for the news in the given photo.",
        "Retrieve the news caption written for this image.",
        "Which news caption describes this photo?",
        "Give the caption that accompanies this news picture.",
    ),
    ("mscoco", "image"): (
        "Find me an everyday image that matches the given caption.",
        "Retrieve the everyday photo described by this caption.",
        "Which common scene image fits this description?",
        "Show the picture that this sentence describes.",
    ),
    ("mscoco", "text"): (
        "Find an image caption describing the following everyday image.",
        "Retrieve a sentence that describes this everyday scene.",
        "Which caption fits this common scene image?",
        "Describe this picture with a matching caption.",
    ),
    ("fashion200k", "image"): (
        "Based on the following fashion description, retrieve the best matching image.",
        "Find the product photo for this fashion description.",
        "Which fashion image shows the described item?",
        "Retrieve a picture of the product described here.",
    ),
    ("fashion200k", "text"): (
        "Find a product description for the fashion item in the image.",
        "Retrieve the product line of the garment in this photo.",
        "Which description fits the fashion item shown?",
        "Name the fashion product in this picture.",
    ),
    ("webqa", "text"): (
        "Retrieve passages from Wikipedia that provide answers to the following question.",
        "Find an encyclopedia passage that answers this question.",
        "Which Wikipedia snippet holds the answer to this question?",
        "Retrieve evidence text for this question.",
    ),
    ("webqa", "image,text"): (
        "Find a Wikipedia image that answers this question.",
        "Retrieve a Wikipedia picture with its caption that answers this question.",
        "Which encyclopedia image shows what the question asks about?",
        "Find visual evidence from Wikipedia for this question.",
    ),
    ("edis", "image,text"): (
        "Find a news image that matches the provided caption.",
        "Retrieve the news photo and headline that fit this caption.",
        "Which news image with its headline matches this story?",
        "Find the picture of the event described in this caption.",
    ),
    ("nights", "image"): (
        "Find a day-to-day image that looks similar to the provided image.",
        "Retrieve the image most similar to this one.",
        "Which everyday picture looks like the given one?",
        "Find a near copy of this image.",
    ),
    ("oven", "text"): (
        "Retrieve a Wikipedia paragraph that provides an answer to the given query about the image.",
        "Find the encyclopedia article about the entity in this picture.",
        "Which Wikipedia paragraph identifies what is shown in the image?",
        "Retrieve the article that answers the question about this image.",
    ),
    ("oven", "image,text"): (
        "Retrieve a Wikipedia image-description pair that provides evidence for the question of this image.",
        "Find a Wikipedia picture and description of the entity in this image.",
        "Which encyclopedia image and text identify what is shown?",
        "Retrieve an image with its description that answers this question about the picture.",
    ),
    ("infoseek", "text"): (
        "Retrieve a Wikipedia paragraph that provides an answer to the given query about the image.",
        "Find the encyclopedia passage that answers this question about the image.",
        "Which Wikipedia paragraph holds the answer about the pictured entity?",
        "Retrieve the text that answers the question about this picture.",
    ),
    ("infoseek", "image,text"): (
        "Retrieve a Wikipedia image-description pair that provides evidence for the question of this image.",
        "Find a Wikipedia picture and passage that answer the question about this image.",
        "Which encyclopedia image and text answer this question?",
        "Retrieve evidence, an image with its description, for this question about the picture.",
    ),
    ("fashioniq", "image"): (
        "Find a fashion image that aligns with the reference image and style note.",
        "Retrieve the garment that looks like this one changed as described.",
        "Which fashion item matches the reference after the requested change?",
        "Find the product photo described by the reference and the note.",
    ),
    ("cirr", "image"): (
        "Retrieve a day-to-day image that aligns with the modification instructions of the provided image.",
        "Find the picture that looks like this one after the described change.",
        "Which everyday image shows the reference with the requested edit?",
        "Retrieve the image that matches the reference changed as instructed.",
    ),
}

_NAMES = {"text": "text", "image": "image", "image,text": "image with its text"}


def prompts_for(task: TaskSpec) -> tuple[str, str, str, str]:
    known = PROMPTS.get((task.dataset, task.cand_modality))
    if known is not None:
        return known
    q, c = (
        _NAMES.get(task.query_modality, task.query_modality),
        _NAMES.get(task.cand_modality, task.cand_modality),
    )
    return (
        f"Retrieve the {c} that matches the given {q}.",
        f"Find the {c} that goes with this {q}.",
        f"Which {c} fits the given {q}?",
        f"Find a matching {c} for this {q}.",
    )
