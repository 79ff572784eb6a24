"""The ONE input formatter: (text, image, instruction, modality, role) -> token ids + image patches.

Training, mining, embedding and reranking all call `InputFormatter.encode`, so the chat template,
instruction markers, text cleaning, truncation and image resolution cannot drift apart between
stages (the released code's bugs B3, B4 and B6). The rendered conversation is

    [system prompt of the template] user: [image]? + [<instruction_start>Instr.<instruction_end> ]text[prompt]
    assistant: <emb>.

with `add_generation_prompt=False` for train and eval alike.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from umarvel_cli.data.text import format_string
from umarvel_cli.errors import UmarvelError
from umarvel_cli.models.image_processor import ImagePatcher

Role = Literal["query", "candidate"]
MODALITIES = ("text", "image", "image,text")


@dataclass
class Record:
    """One thing to embed. `image` is a path (resolved by the caller) or a PIL image."""

    id: str
    text: str | None = None
    image: str | Path | Image.Image | None = None
    instruction: str | None = None
    modality: str | None = None

    def resolved_modality(self) -> str:
        if self.modality is not None:
            return self.modality
        has_text = bool(self.text and self.text.strip())
        if self.image is not None:
            return "image,text" if has_text else "image"
        return "text"


@dataclass
class LazyImage:
    """An image whose size is known (read from its header) but whose pixels are decoded later."""

    source: str | Path | Image.Image
    item_id: str | None
    size: tuple[int, int]  # (width, height)

    def load(self) -> Image.Image:
        return load_image(self.source, self.item_id)


@dataclass
class EncodedInput:
    """Model inputs of one item, image tokens already expanded; what the collator pads into batches."""

    input_ids: np.ndarray  # int64 [L]
    instruction_span: tuple[int, int] | None  # [start, end) in token positions, markers included
    pixel_values: np.ndarray | None  # float32 [patches, patch_dim]
    image_grid_thw: tuple[int, int, int] | None
    # With deferred pixels: the resized uint8 image; the collator patchifies it (8x less memory held).
    resized: np.ndarray | None = None
    # With deferred decoding: the image still on disk; the collator decodes and resizes it.
    lazy: LazyImage | None = None
    # With `pool_tokens: "content"`: [start, end) of the user turn's content (image and text, the
    # instruction span inside it); the collator pools only there. None = pool every non-pad token.
    content_span: tuple[int, int] | None = None

    @property
    def length(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def num_patches(self) -> int:
        if self.image_grid_thw is None:
            return 0
        t, h, w = self.image_grid_thw
        return t * h * w


def load_image(image: str | Path | Image.Image, item_id: str | None = None) -> Image.Image:
    """Open an image as RGB, with a one-line error naming the file when it is missing or unreadable."""
    if isinstance(image, Image.Image):
        return image.convert("RGB") if image.mode != "RGB" else image
    path = Path(image)
    if not path.is_file():
        raise UmarvelError(f"image file not found (item {item_id})", file=path, field="image")
    try:
        with Image.open(path) as im:
            _check_pixels(im.size, path, item_id)
            im.load()  # decoded now; leaving the block closes only the file
            return im if im.mode == "RGB" else im.convert("RGB")  # no copy of an RGB file's pixels
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise UmarvelError(f"unreadable image (item {item_id}): {e}", file=path, field="image") from e


def peek_image(image: str | Path | Image.Image, item_id: str | None = None) -> LazyImage:
    """The image's size from its header only (the file is checked to exist and be an image)."""
    if isinstance(image, Image.Image):
        return LazyImage(image, item_id, image.size)
    path = Path(image)
    if not path.is_file():
        raise UmarvelError(f"image file not found (item {item_id})", file=path, field="image")
    try:
        with Image.open(path) as im:
            size = im.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise UmarvelError(f"unreadable image (item {item_id}): {e}", file=path, field="image") from e
    _check_pixels(size, path, item_id)
    return LazyImage(path, item_id, size)


MAX_IMAGE_PIXELS = 64 * 1024 * 1024  # 8192 x 8192; a decompression bomb claims far more
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS  # PIL's own guard (warning, then error at 2x) as a backstop


def _check_pixels(size: tuple[int, int], path: Path, item_id: str | None) -> None:
    """Refuse an image whose header claims more pixels than any real input has (decompression bomb)."""
    if size[0] * size[1] > MAX_IMAGE_PIXELS:
        raise UmarvelError(
            f"image of {size[0]}x{size[1]} pixels is over the limit of {MAX_IMAGE_PIXELS:,} (item {item_id})",
            file=path,
            field="image",
            expected="an image of at most 8192x8192 pixels",
        )


class DecodeAhead:
    """Decodes and resizes records' images in a background thread while the caller formats them.

    PIL decodes and resizes without holding the GIL, so on a machine whose other cores would wait
    for the (mostly single-threaded) formatting, part of the collator's work is done by then. At
    most `limit` images are held (bounded memory); `finish` stops the thread and returns
    {record index: resized uint8 image}, exactly what the collator would have computed. An image
    that fails here is simply left out: the collator decodes it again and reports it in order.
    """

    def __init__(self, patcher: ImagePatcher, records: list[Record], limit: int) -> None:
        self._patcher = patcher
        jobs = [
            (i, r) for i, r in enumerate(records) if r.image is not None and "image" in r.resolved_modality()
        ]
        self._jobs = jobs[:limit]
        self._done: dict[int, np.ndarray] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="umarvel-decode-ahead", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for i, record in self._jobs:
            if self._stop.is_set():
                return
            try:
                self._done[i] = self._patcher.resize(load_image(record.image, record.id))
            except Exception:  # noqa: BLE001 - the collator decodes it again and raises the real error
                continue

    def finish(self) -> dict[int, np.ndarray]:
        self._stop.set()
        self._thread.join()
        return self._done


class InputFormatter:
    """Holds the tokenizer, image processor and `umarvel.json` settings; `encode` is the one formatter."""

    def __init__(self, tokenizer: Any, image_processor: Any, config: Any) -> None:
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.config = config
        self.patcher = ImagePatcher(image_processor)
        self.merge_size = self.patcher.merge_size
        self.image_pad_id = tokenizer.convert_tokens_to_ids("<|image_pad|>")
        self.inst_start_id = tokenizer.convert_tokens_to_ids(config.instruction_start)
        self.inst_end_id = tokenizer.convert_tokens_to_ids(config.instruction_end)
        self.turn_start_id = tokenizer.convert_tokens_to_ids("<|im_start|>")
        self.turn_end_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
        self.user_header_ids = np.asarray(
            tokenizer("user\n", add_special_tokens=False)["input_ids"], dtype=np.int64
        )
        self._frames: dict[tuple, tuple[str, str] | None] = {}  # render_many's template per layout

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
        text = self._record_text(record)
        return self._user_text(record, role, self.truncate(text) if text else "")

    def user_texts(self, records: list[Record], role: Role) -> list[str]:
        """`user_text` for several records, truncating all texts with one tokeniser call."""
        texts = [self._record_text(r) for r in records]
        some = [i for i, t in enumerate(texts) if t]
        for i, cut in zip(some, self.truncate_many([texts[i] for i in some]), strict=True):
            texts[i] = cut
        return [self._user_text(r, role, t) for r, t in zip(records, texts, strict=True)]

    def _user_text(self, record: Record, role: Role, truncated: str) -> str:
        modality = record.resolved_modality()
        text = self._clean(truncated) if truncated else ""
        parts = []
        if role == "query" and record.instruction:
            inst = self._clean(record.instruction)
            parts.append(f"{self.config.instruction_start}{inst}{self.config.instruction_end}")
        if text:
            parts.append(text)
        out = " ".join(parts)
        prompt = self.config.compression_prompt
        if prompt:
            out += prompt.get(modality, "")
        return out

    def messages(self, record: Record, role: Role) -> list[dict[str, Any]]:
        return self._messages("image" in record.resolved_modality(), self.user_text(record, role))

    def _messages(self, image: bool, text: str) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] = []
        if image:
            content.append({"type": "image"})
        if text:
            content.append({"type": "text", "text": text})
        return [
            {"role": "user", "content": content},
            {"role": "assistant", "content": [{"type": "text", "text": self.config.assistant_text}]},
        ]

    def _apply_template(self, image: bool, text: str) -> str:
        return self.tokenizer.apply_chat_template(
            self._messages(image, text), tokenize=False, add_generation_prompt=False
        )

    def render(self, record: Record, role: Role) -> str:
        """The chat template applied to the record (the reference `render_many` must equal)."""
        return self._apply_template("image" in record.resolved_modality(), self.user_text(record, role))

    def render_many(self, records: list[Record], role: Role) -> list[str]:
        """`render` for several records: one batched truncation and the template applied once per layout.

        The conversation differs between records only in the user text and whether an image comes
        first, so the template is rendered once per (image, text present) layout around a probe
        string and the text is spliced in. The splice is used only where the template provably
        copies the text verbatim (a second probe must render to exactly the spliced string);
        otherwise every record of that layout goes through the template.
        """
        out = []
        for record, text in zip(records, self.user_texts(records, role), strict=True):
            image = "image" in record.resolved_modality()
            frame = self._frame(image, bool(text))
            out.append(frame[0] + text + frame[1] if frame else self._apply_template(image, text))
        return out

    def _frame(self, image: bool, has_text: bool) -> tuple[str, str] | None:
        """(before, after) the user text for this layout, or None where the template is not a plain splice."""
        key = (image, has_text, self.config.assistant_text, self.tokenizer.chat_template)
        if key not in self._frames:
            self._frames[key] = self._probe_frame(image, has_text)
        return self._frames[key]

    def _probe_frame(self, image: bool, has_text: bool) -> tuple[str, str] | None:
        if not has_text:
            return self._apply_template(image, ""), ""
        probe, check = "\ue000umarvel probe\ue001", "\ue000other probe\ue001"
        rendered = self._apply_template(image, probe)
        if rendered.count(probe) != 1:
            return None
        before, after = rendered.split(probe)
        return (before, after) if self._apply_template(image, check) == before + check + after else None

    # -- checks and images ------------------------------------------------------------------------
    def validate(self, record: Record) -> None:
        modality = record.resolved_modality()
        if modality not in MODALITIES:
            raise UmarvelError(
                f"unknown modality {modality!r} (item {record.id})",
                field="modality",
                expected=" | ".join(MODALITIES),
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
        records: list[Record],
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
        defer_pixels = defer_pixels or defer_decode
        ahead = (
            DecodeAhead(self.patcher, records, decode_ahead) if defer_decode and decode_ahead > 0 else None
        )
        try:
            out = self._encode_many(records, role, defer_pixels, defer_decode)
        finally:
            decoded = ahead.finish() if ahead is not None else {}
        for i, pixels in decoded.items():
            it = out[i]
            if it.lazy is not None and it.image_grid_thw is not None:
                p = self.patcher.patch_size
                if pixels.shape[:2] == (it.image_grid_thw[1] * p, it.image_grid_thw[2] * p):
                    it.resized = pixels
        return out

    def _encode_many(
        self, records: list[Record], role: Role, defer_pixels: bool, defer_decode: bool
    ) -> list[EncodedInput]:
        images: list[Image.Image | LazyImage | None] = []
        for r in records:  # checks and image loading in record order: the first bad item is reported
            self.validate(r)
            needs_image = "image" in r.resolved_modality() and r.image is not None
            if not needs_image:
                images.append(None)
            else:
                images.append(peek_image(r.image, r.id) if defer_decode else load_image(r.image, r.id))
        texts = self.render_many(records, role)
        ids_list = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        out = []
        for record, image, ids in zip(records, images, ids_list, strict=True):
            pixel_values = grid = resized = lazy = None
            ids_arr = np.asarray(ids, dtype=np.int64)
            if isinstance(image, LazyImage):
                lazy, grid = image, self.patcher.grid(*image.size)
            elif image is not None:
                resized = self.patcher.resize(image)
                p = self.patcher.patch_size
                grid = (1, resized.shape[0] // p, resized.shape[1] // p)
                if not defer_pixels:
                    pixel_values, resized = self.patcher.patchify(resized), None
            if grid is not None:
                n_tokens = grid[0] * grid[1] * grid[2] // (self.merge_size**2)
                pos = np.flatnonzero(ids_arr == self.image_pad_id)
                if pos.size != 1:
                    raise UmarvelError(
                        f"the chat template produced {pos.size} image placeholders (item {record.id})",
                        expected="exactly one <|image_pad|> per image",
                    )
                p = int(pos[0])
                ids_arr = np.concatenate(
                    [ids_arr[:p], np.full(n_tokens, self.image_pad_id, dtype=np.int64), ids_arr[p + 1 :]]
                )
            span = self._instruction_span(ids_arr)
            content = self._content_span(ids_arr, record.id) if self.pools_content else None
            out.append(EncodedInput(ids_arr, span, pixel_values, grid, resized, lazy, content))
        return out

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
        raise UmarvelError(
            f"cannot locate the user turn's content in the rendered chat (item {item_id})",
            field="pool_tokens",
            expected="<|im_start|>user\\n ... <|im_end|> with non-empty content, or pool_tokens 'all'",
        )

    def _instruction_span(self, ids: np.ndarray) -> tuple[int, int] | None:
        starts = np.flatnonzero(ids == self.inst_start_id)
        ends = np.flatnonzero(ids == self.inst_end_id)
        if starts.size == 0 or ends.size == 0:
            return None
        return int(starts[0]), int(ends[-1]) + 1


def format_input(formatter: InputFormatter, record: Record, role: Role) -> EncodedInput:
    """Functional spelling of `InputFormatter.encode`."""
    return formatter.encode(record, role)
