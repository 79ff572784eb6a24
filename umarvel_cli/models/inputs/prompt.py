"""Prompts built from parts: one user turn of text, images and videos, then an answer or the generation prompt.

Every role is the same shape: an embedding item is [image?, text] answered by the assistant text
(`<emb>.`); a reranker pair is [query parts..., candidate parts...] in ONE user turn, ended by the
generation prompt when scoring or answered "Yes"/"No" when training; a caption or NLI pair is two
embedding items. Only the parts and the ending differ, so the chat template, the image placeholders
and the splice fast path below are shared by all of them.

A part renders to one entry of the chat template's content list. The template's output may depend
on a part's `kind` but not on anything else of a non-text part (an image renders as its placeholder
whatever its pixels), which is what lets `render_many` render a layout once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from umarvel_cli.models.inputs.images import ImageSource


@dataclass(frozen=True)
class TextPart:
    text: str
    kind: ClassVar[str] = "text"

    def content(self) -> dict[str, Any]:
        return {"type": "text", "text": self.text}


@dataclass(frozen=True)
class ImagePart:
    """An image (path or PIL image); one `<|image_pad|>` in the template, expanded to its tokens later."""

    image: ImageSource | None
    kind: ClassVar[str] = "image"

    def content(self) -> dict[str, Any]:
        return {"type": "image"}


@dataclass(frozen=True)
class VideoPart:
    """A video (file or folder of frames); one `<|video_pad|>` in the template, expanded to its tokens
    by the formatter (frames read by models/inputs/video.py)."""

    video: str | Path | None
    kind: ClassVar[str] = "video"

    def content(self) -> dict[str, Any]:
        return {"type": "video"}


Part = TextPart | ImagePart | VideoPart


@dataclass
class Prompt:
    """One conversation to encode: the user turn's parts in order, then the assistant's `answer`
    (None: no assistant turn) and/or the generation prompt (`<|im_start|>assistant\\n`)."""

    id: str
    parts: list[Part] = field(default_factory=list)
    answer: str | None = None
    generation_prompt: bool = False

    @property
    def images(self) -> list[ImagePart]:
        return [p for p in self.parts if isinstance(p, ImagePart)]

    @property
    def videos(self) -> list[VideoPart]:
        return [p for p in self.parts if isinstance(p, VideoPart)]


class ChatRenderer:
    """Applies the tokenizer's chat template to prompts; `render_many` renders each layout once."""

    PROBES = ("\ue000umarvel probe", "\ue000other probe")

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self._frames: dict[tuple, tuple[str, ...] | None] = {}  # render_many's template per layout

    @staticmethod
    def _kept(prompt: Prompt) -> list[Part]:
        """The parts that reach the template (an empty text adds nothing, as if absent)."""
        return [p for p in prompt.parts if not (isinstance(p, TextPart) and not p.text)]

    def _messages(self, parts: list[Part], prompt: Prompt) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = [{"role": "user", "content": [p.content() for p in parts]}]
        if prompt.answer is not None:
            messages.append({"role": "assistant", "content": [{"type": "text", "text": prompt.answer}]})
        return messages

    def messages(self, prompt: Prompt) -> list[dict[str, Any]]:
        return self._messages(self._kept(prompt), prompt)

    def _apply(self, parts: list[Part], prompt: Prompt) -> str:
        return self.tokenizer.apply_chat_template(
            self._messages(parts, prompt), tokenize=False, add_generation_prompt=prompt.generation_prompt
        )

    def render(self, prompt: Prompt) -> str:
        """The chat template applied to the prompt (the reference `render_many` must equal)."""
        return self._apply(self._kept(prompt), prompt)

    def render_many(self, prompts: list[Prompt]) -> list[str]:
        """`render` for several prompts, the template applied once per layout.

        Prompts of one layout (the same part kinds in the same order, the same ending) differ only
        in their texts, so the template is rendered once around probe strings and the texts are
        spliced in. The splice is used only where the template provably copies the texts verbatim
        (a second set of probes must render to exactly the spliced string); otherwise every prompt
        of that layout goes through the template.
        """
        out = []
        for prompt in prompts:
            parts = self._kept(prompt)
            frame = self._frame(parts, prompt)
            if frame is None:
                out.append(self._apply(parts, prompt))
                continue
            texts = [p.text for p in parts if isinstance(p, TextPart)]
            pieces = [frame[0]]
            for text, after in zip(texts, frame[1:], strict=True):
                pieces += (text, after)
            out.append("".join(pieces))
        return out

    def _frame(self, parts: list[Part], prompt: Prompt) -> tuple[str, ...] | None:
        """The template's text around each text part for this layout, or None where it is not a plain splice."""
        key = (
            tuple(p.kind for p in parts),
            prompt.answer,
            prompt.generation_prompt,
            self.tokenizer.chat_template,
        )
        if key not in self._frames:
            self._frames[key] = self._probe_frame(parts, prompt)
        return self._frames[key]

    def _probe_frame(self, parts: list[Part], prompt: Prompt) -> tuple[str, ...] | None:
        n_text = sum(isinstance(p, TextPart) for p in parts)
        if n_text == 0:
            return (self._apply(parts, prompt),)
        frames = []
        for probe in self.PROBES:
            probes = [f"{probe} {k}\ue001" for k in range(n_text)]
            it = iter(probes)
            rendered = self._apply(
                [TextPart(next(it)) if isinstance(p, TextPart) else p for p in parts], prompt
            )
            pieces = []
            for p in probes:
                if rendered.count(p) != 1:
                    return None
                before, rendered = rendered.split(p)
                pieces.append(before)
            pieces.append(rendered)
            frames.append(tuple(pieces))
        return frames[0] if frames[0] == frames[1] else None
