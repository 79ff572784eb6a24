"""The ONE input formatter: records (or any prompt built from parts) -> token ids + image patches.

Training, mining, embedding and reranking all call `InputFormatter`, so the chat template,
instruction markers, text cleaning, truncation and image resolution cannot drift apart between
stages (the released code's bugs B3, B4 and B6). An embedding item renders as

    [system prompt of the template] user: [image]? + [<instruction_start>Instr.<instruction_end> ]text[prompt]
    assistant: <emb>.

with `add_generation_prompt=False` for train and eval alike. A reranker pair puts the query's and
the candidate's parts in one user turn and ends with the generation prompt (`pair_prompt`). Token
strings come from the backbone family (`models.registry`), the image geometry from its processor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PIL import Image

from umarvel_cli.data.records import MODALITIES, Record, Role
from umarvel_cli.errors import UmarvelError
from umarvel_cli.models.inputs.encoded import EncodedInput, ImageInput, VideoInput
from umarvel_cli.models.inputs.image_processor import ImagePatcher
from umarvel_cli.models.inputs.images import DecodeAhead, LazyImage, load_image, peek_image
from umarvel_cli.models.inputs.prompt import ChatRenderer, ImagePart, Part, Prompt, TextPart, VideoPart
from umarvel_cli.models.inputs.text import format_string
from umarvel_cli.models.inputs.video import VideoSampling, probe_video, video_frames_array
from umarvel_cli.models.registry import get_family

# The released reranker's labels before each side's parts (spec 6.1).
PAIR_LABELS = ("Query:", "Candidate:")
# A record of this modality is a video: its file or frame folder in `image` (zero-shot tables).
VIDEO_MODALITY = "video"


class InputFormatter:
    """Holds the tokenizer, image processor and `umarvel.json` settings; `encode*` are the one formatter."""

    def __init__(self, tokenizer: Any, image_processor: Any, config: Any) -> None:
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.config = config
        self.family = get_family(config.family)
        self.tokens = self.family.tokens
        self.patcher = ImagePatcher(image_processor)
        self.merge_size = self.patcher.merge_size
        self.renderer = ChatRenderer(tokenizer)
        self.image_pad_id = tokenizer.convert_tokens_to_ids(self.tokens.image_pad)
        self.video_pad_id = tokenizer.convert_tokens_to_ids(self.tokens.video_pad)
        self.vision_start_id = tokenizer.convert_tokens_to_ids(self.tokens.vision_start)
        self.vision_end_id = tokenizer.convert_tokens_to_ids(self.tokens.vision_end)
        self.video_sampling = VideoSampling()
        self.inst_start_id = tokenizer.convert_tokens_to_ids(config.instruction_start)
        self.inst_end_id = tokenizer.convert_tokens_to_ids(config.instruction_end)
        self.turn_start_id = tokenizer.convert_tokens_to_ids(self.tokens.turn_start)
        self.turn_end_id = tokenizer.convert_tokens_to_ids(self.tokens.turn_end)
        self.user_header_ids = np.asarray(
            tokenizer("user\n", add_special_tokens=False)["input_ids"], dtype=np.int64
        )

    # -- text -------------------------------------------------------------------------------------
    def _clean(self, text: str) -> str:
        return format_string(text) if self.config.clean_text else text.strip()

    def truncate(self, text: str) -> str:
        """Cut text to the token budget (tokenise, keep the first N tokens, decode)."""
        return self.truncate_many([text])[0]

    def truncate_many(self, texts: list[str]) -> list[str]:
        """`truncate` for several texts with one batched tokeniser call."""
        if not texts:
            return []
        budget = self.config.text_token_budget
        out = []
        for text, ids in zip(
            texts, self.tokenizer(texts, add_special_tokens=False)["input_ids"], strict=True
        ):
            out.append(text if len(ids) <= budget else self.tokenizer.decode(ids[:budget]))
        return out

    def _record_text(self, record: Record) -> str:
        return record.text if "text" in record.resolved_modality() and record.text else ""

    def user_text(self, record: Record, role: Role) -> str:
        """The user turn's text: instruction (queries only) in markers, cleaned text, compression prompt."""
        return self.user_texts([record], role)[0]

    def user_texts(self, records: Sequence[Record], role: Role, embedding: bool = True) -> list[str]:
        """`user_text` for several records, truncating all texts with one tokeniser call.

        `embedding=False` is a side of a reranker pair: the instruction as plain text (no markers)
        and no compression prompt.
        """
        texts = [self._record_text(r) for r in records]
        some = [i for i, t in enumerate(texts) if t]
        for i, cut in zip(some, self.truncate_many([texts[i] for i in some]), strict=True):
            texts[i] = cut
        return [self._user_text(r, role, t, embedding) for r, t in zip(records, texts, strict=True)]

    def _user_text(self, record: Record, role: Role, truncated: str, embedding: bool = True) -> str:
        text = self._clean(truncated) if truncated else ""
        parts = []
        if role == "query" and record.instruction:
            inst = self._clean(record.instruction)
            parts.append(
                f"{self.config.instruction_start}{inst}{self.config.instruction_end}" if embedding else inst
            )
        if text:
            parts.append(text)
        out = " ".join(parts)
        prompt = self.config.compression_prompt
        if prompt and embedding:
            out += prompt.get(record.resolved_modality(), "")
        return out

    # -- prompts ----------------------------------------------------------------------------------
    @staticmethod
    def _record_parts(record: Record, text: str) -> list[Part]:
        """An item's parts: its image or video first (when its modality uses one), then its text."""
        modality = record.resolved_modality()
        parts: list[Part] = [ImagePart(record.image)] if "image" in modality else []
        if modality == VIDEO_MODALITY:
            parts = [VideoPart(record.image)]
        return [*parts, TextPart(text)]

    def item_prompt(self, record: Record, role: Role) -> Prompt:
        """The embedding prompt of one record (query or candidate)."""
        return self.item_prompts([record], role)[0]

    def item_prompts(self, records: Sequence[Record], role: Role) -> list[Prompt]:
        """Embedding prompts: the record's parts answered by the assistant text, no generation prompt."""
        return [
            Prompt(r.id, self._record_parts(r, text), answer=self.config.assistant_text)
            for r, text in zip(records, self.user_texts(records, role), strict=True)
        ]

    def pair_prompt(self, query: Record, candidate: Record, **options: Any) -> Prompt:
        """One reranker pair's prompt (`pair_prompts` for the options)."""
        return self.pair_prompts([(query, candidate)], **options)[0]

    def pair_prompts(
        self,
        pairs: Sequence[tuple[Record, Record]],
        preamble: str | None = None,
        labels: tuple[str, str] | None = PAIR_LABELS,
        answer: str | None = None,
        generation_prompt: bool = True,
    ) -> list[Prompt]:
        """Reranker pairs: [preamble] [label] query parts [label] candidate parts, in ONE user turn.

        Each side's text is cleaned and truncated like an item's (one batched tokeniser call per
        side), the query's instruction kept as plain text. Ends with the generation prompt
        (scoring) and/or, given `answer`, the assistant's answer (training: "Yes"/"No" with
        `generation_prompt=False`).
        """
        q_texts = self.user_texts([q for q, _ in pairs], "query", embedding=False)
        c_texts = self.user_texts([c for _, c in pairs], "candidate", embedding=False)
        prompts = []
        for (query, candidate), q_text, c_text in zip(pairs, q_texts, c_texts, strict=True):
            parts: list[Part] = [TextPart(preamble)] if preamble else []
            for i, (record, text) in enumerate(((query, q_text), (candidate, c_text))):
                if labels is not None:
                    parts.append(TextPart(labels[i]))
                parts += self._record_parts(record, text)
            prompts.append(Prompt(f"{query.id}|{candidate.id}", parts, answer, generation_prompt))
        return prompts

    def messages(self, record: Record, role: Role) -> list[dict[str, Any]]:
        return self.renderer.messages(self.item_prompt(record, role))

    def render(self, record: Record, role: Role) -> str:
        """The chat template applied to the record (the reference `render_many` must equal)."""
        return self.renderer.render(self.item_prompt(record, role))

    def render_many(self, records: Sequence[Record], role: Role) -> list[str]:
        """`render` for several records: one batched truncation and the template applied once per layout."""
        return self.renderer.render_many(self.item_prompts(records, role))

    # -- checks and images ------------------------------------------------------------------------
    def validate(self, record: Record) -> None:
        modality = record.resolved_modality()
        if modality == VIDEO_MODALITY:
            if record.image is None:
                raise UmarvelError(f"modality video but no video path (item {record.id})", field="image")
            return
        if modality not in MODALITIES:
            raise UmarvelError(
                f"unknown modality {modality!r} (item {record.id})",
                field="modality",
                expected=" | ".join((*MODALITIES, VIDEO_MODALITY)),
            )
        has_text = bool(record.text and record.text.strip())
        if "image" in modality and record.image is None:
            raise UmarvelError(f"modality {modality} but no image (item {record.id})", field="image")
        if modality != "image" and not has_text and record.image is None:
            raise UmarvelError(f"empty input: no text and no image (item {record.id})", field="text")
        if modality == "text" and not has_text:
            raise UmarvelError(f"empty text (item {record.id})", field="text")

    def image_patches(self, image: Image.Image) -> tuple[np.ndarray, tuple[int, int, int]]:
        """Resize within min/max pixels and cut into flattened patches (the PIL processor's numbers)."""
        return self.patcher(image)

    # -- the one formatter ------------------------------------------------------------------------
    def encode(self, record: Record, role: Role) -> EncodedInput:
        """Validate, render, tokenise, expand image tokens and mark the instruction span."""
        return self.encode_many([record], role)[0]

    def encode_many(
        self,
        records: Sequence[Record],
        role: Role,
        defer_pixels: bool = False,
        defer_decode: bool = False,
        decode_ahead: int = 0,
    ) -> list[EncodedInput]:
        """`encode` for several records with one batched tokeniser call (same result, faster).

        `defer_pixels` keeps each image resized as uint8 and leaves normalising and patch cutting to
        the collator, so a large chunk of formatted items stays small in memory. `defer_decode`
        (implies it) reads only image headers here (size, hence token count) and leaves decoding and
        resizing to the collator too, which can then run beside the model; a file whose header
        reads but whose body is corrupt then fails when its batch is collated. With it,
        `decode_ahead` > 0 decodes up to that many images in a background thread while the chunk
        is formatted (`DecodeAhead`): for a caller with an idle core, the same pixels sooner.
        """
        records = list(records)
        return self.encode_prompts(
            self.item_prompts(records, role),
            defer_pixels,
            defer_decode,
            decode_ahead,
            check=lambda i: self.validate(records[i]),
        )

    def encode_pairs(
        self, pairs: Sequence[tuple[Record, Record]], defer_pixels: bool = False, **prompt: Any
    ) -> list[EncodedInput]:
        """Reranker pairs (query, candidate) encoded; `prompt` goes to `pair_prompts`."""
        records = [r for pair in pairs for r in pair]
        prompts = self.pair_prompts(pairs, **prompt)

        def check(i: int) -> None:
            self.validate(records[2 * i])
            self.validate(records[2 * i + 1])

        return self.encode_prompts(prompts, defer_pixels, check=check)

    def encode_prompts(
        self,
        prompts: Sequence[Prompt],
        defer_pixels: bool = False,
        defer_decode: bool = False,
        decode_ahead: int = 0,
        check: Callable[[int], None] | None = None,
    ) -> list[EncodedInput]:
        """Render, tokenise and expand each prompt's image placeholders (any number of images).

        `check(i)` runs before prompt i's images are opened, so the first bad item is the one
        reported; `defer_pixels`, `defer_decode` and `decode_ahead` as in `encode_many`.
        """
        defer_pixels = defer_pixels or defer_decode
        ahead = None
        if defer_decode and decode_ahead > 0:
            jobs = [
                ((i, k), part.image, prompt.id)
                for i, prompt in enumerate(prompts)
                for k, part in enumerate(prompt.images)
                if part.image is not None
            ]
            ahead = DecodeAhead(self.patcher, jobs, decode_ahead)
        try:
            out = self._encode_prompts(prompts, defer_pixels, defer_decode, check)
        finally:
            decoded = ahead.finish() if ahead is not None else {}
        p = self.patcher.patch_size
        for (i, k), pixels in decoded.items():
            image = out[i].images[k]
            if image.lazy is not None and pixels.shape[:2] == (image.grid[1] * p, image.grid[2] * p):
                image.resized = pixels
        return out

    def _encode_prompts(
        self,
        prompts: Sequence[Prompt],
        defer_pixels: bool,
        defer_decode: bool,
        check: Callable[[int], None] | None,
    ) -> list[EncodedInput]:
        opened: list[list[Image.Image | LazyImage]] = []
        videos: list[list[VideoInput]] = []
        open_image = peek_image if defer_decode else load_image
        # checks, image and video loading in prompt order: the first bad item is the one reported
        for i, prompt in enumerate(prompts):
            if check is not None:
                check(i)
            if any(part.image is None for part in prompt.images):
                raise UmarvelError(f"an image part has no image (item {prompt.id})", field="image")
            if any(part.video is None for part in prompt.videos):
                raise UmarvelError(f"a video part has no video (item {prompt.id})", field="image")
            opened.append([open_image(part.image, prompt.id) for part in prompt.images])
            videos.append([self.video_input(part.video, decode=not defer_decode) for part in prompt.videos])
        texts = self.renderer.render_many(list(prompts))
        ids_list = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        out = []
        for prompt, images, clips, ids in zip(prompts, opened, videos, ids_list, strict=True):
            ids_arr = np.asarray(ids, dtype=np.int64)
            inputs = [self._image_input(image, defer_pixels) for image in images]
            if inputs:
                ids_arr = self._expand_images(ids_arr, inputs, prompt.id)
            if clips:
                ids_arr = self._expand_videos(ids_arr, clips, prompt.id)
            span = None if self.config.pool_instruction else self._instruction_span(ids_arr)
            content = self._content_span(ids_arr, prompt.id) if self.pools_content else None
            out.append(EncodedInput(ids_arr, span, inputs, content, clips))
        return out

    def video_input(self, source: Any, decode: bool = True) -> VideoInput:
        """A video's grid from its headers (models/inputs/video.py samples the frames): frames
        resized to the family's factor within the per-frame budget (the sampling's, capped by
        umarvel.json's max_pixels), an odd count padded with the last frame, as Qwen's video
        processor does. `decode=False` leaves decoding to the collator (the frames are the same)."""
        patcher, sampling = self.patcher, self.video_sampling
        probe = probe_video(source, sampling)
        budget = min(sampling.frame_pixels(len(probe.indices)), patcher.max_pixels)
        width, height = patcher.frame_size(*probe.size, budget)
        t = patcher.temporal_patch_size
        times = list(probe.timestamps)
        times += [times[-1]] * (-len(times) % t)
        p = patcher.patch_size
        grid = (len(times) // t, height // p, width // p)
        middles = tuple((times[i] + times[i + t - 1]) / 2 for i in range(0, len(times), t))
        frames = (
            video_frames_array(source, (width, height), patcher.resample, t, sampling) if decode else None
        )
        # seconds per temporal patch (Qwen2.5-VL's processor: second_per_grid_ts = T / sampled fps)
        return VideoInput(grid, frames, t / probe.sampled_fps, middles, source, (width, height), sampling)

    def _expand_videos(self, ids: np.ndarray, videos: list[VideoInput], item_id: str) -> np.ndarray:
        """Each video's one `<|video_pad|>` replaced by its tokens: t*h*w/merge^2 pads in one block,
        or (family layout "timestamps", Qwen3-VL's processor) per temporal patch the text
        "<t seconds>" then vision_start, h*w/merge^2 pads, vision_end."""
        pos = np.flatnonzero(ids == self.video_pad_id)
        if pos.size != len(videos):
            raise UmarvelError(
                f"the chat template produced {pos.size} video placeholders for {len(videos)} videos (item {item_id})",
                expected=f"exactly one {self.tokens.video_pad} per video",
            )
        pieces, start = [], 0
        for at, video in zip(pos.tolist(), videos, strict=True):
            pieces.append(ids[start:at])
            t, h, w = video.grid
            per_frame = h * w // self.merge_size**2
            if self.family.video_layout == "timestamps":
                labels = self.tokenizer(
                    [f"<{s:.1f} seconds>" for s in video.timestamps], add_special_tokens=False
                )["input_ids"]
                for label in labels:
                    pieces.append(np.asarray(label, dtype=np.int64))
                    pieces.append(np.asarray([self.vision_start_id], dtype=np.int64))
                    pieces.append(np.full(per_frame, self.video_pad_id, dtype=np.int64))
                    pieces.append(np.asarray([self.vision_end_id], dtype=np.int64))
            else:
                pieces.append(np.full(t * per_frame, self.video_pad_id, dtype=np.int64))
            start = at + 1
        pieces.append(ids[start:])
        return np.concatenate(pieces)

    def _image_input(self, image: Image.Image | LazyImage, defer_pixels: bool) -> ImageInput:
        if isinstance(image, LazyImage):
            return ImageInput(self.patcher.grid(*image.size), lazy=image)
        resized = self.patcher.resize(image)
        p = self.patcher.patch_size
        grid = (1, resized.shape[0] // p, resized.shape[1] // p)
        if defer_pixels:
            return ImageInput(grid, resized=resized)
        return ImageInput(grid, pixels=self.patcher.patchify(resized))

    def _expand_images(self, ids: np.ndarray, images: list[ImageInput], item_id: str) -> np.ndarray:
        """Each image's one placeholder repeated to its merged token count, images in prompt order."""
        pos = np.flatnonzero(ids == self.image_pad_id)
        if pos.size != len(images):
            raise UmarvelError(
                f"the chat template produced {pos.size} image placeholders for {len(images)} images (item {item_id})",
                expected=f"exactly one {self.tokens.image_pad} per image",
            )
        counts = np.ones(ids.size, dtype=np.int64)
        counts[pos] = [image.num_patches // self.merge_size**2 for image in images]
        return np.repeat(ids, counts)

    @property
    def pools_content(self) -> bool:
        return self.config.pool_tokens == "content"

    def _content_span(self, ids: np.ndarray, item_id: str) -> tuple[int, int]:
        """Token span of the user turn's content: after `<|im_start|>user\\n`, before its `<|im_end|>`."""
        starts = np.flatnonzero(ids == self.turn_start_id)
        h = self.user_header_ids
        for s in starts:
            head = ids[s + 1 : s + 1 + h.size]
            if head.size == h.size and np.array_equal(head, h):
                begin = int(s) + 1 + h.size
                ends = np.flatnonzero(ids[begin:] == self.turn_end_id)
                if ends.size and ends[0] > 0:
                    return begin, begin + int(ends[0])
                break
        t = self.tokens
        raise UmarvelError(
            f"cannot locate the user turn's content in the rendered chat (item {item_id})",
            field="pool_tokens",
            expected=f"{t.turn_start}user\\n ... {t.turn_end} with non-empty content, or pool_tokens 'all'",
        )

    def _instruction_span(self, ids: np.ndarray) -> tuple[int, int] | None:
        starts = np.flatnonzero(ids == self.inst_start_id)
        ends = np.flatnonzero(ids == self.inst_end_id)
        if starts.size == 0 or ends.size == 0:
            return None
        return int(starts[0]), int(ends[-1]) + 1
