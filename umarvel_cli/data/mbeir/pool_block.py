"""A block of candidate-pool lines as one validated Arrow table: pyarrow's JSON reader when every line is
plain, otherwise the per-line parser (which names each bad row).

The fast path only accepts a block that the per-line path would read to the same rows without a single
complaint: any parse error, odd value, blank line or row-count mismatch sends the whole block to the
per-line path. Both return the same columns, so what follows (dedupe, pools, shards) is shared.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from umarvel_cli.artifacts.schemas import MODALITIES, TABLES
from umarvel_cli.data.mbeir.records import RowError, parse_candidate, parse_json_line

CANDIDATES = TABLES["candidates"]
_SOURCE_FIELDS = pa.schema(
    [(key, pa.string()) for key in ("did", "modality", "txt", "img_path", "src_content")]
)
_NULL_SPELLINGS = pa.array(["", "null"])
_MODALITY_SET = pa.array(list(MODALITIES))
# The same paths `records.is_plain_path` refuses, in RE2 syntax ((?s): `.` also matches a newline).
_ODD_PATH = r"(?s)\.\.|//|\./|\\|^/|/$|^.:|^\.$"
_NULL = "\x00null\x00"  # stands for a missing field inside a content key
_SEP = "\x1f"

ReportBad = Callable[[int, RowError], None]


def _normalise_nulls(column: pa.ChunkedArray) -> pa.ChunkedArray:
    spelled = pc.fill_null(pc.is_in(column, value_set=_NULL_SPELLINGS), False)
    if not pc.any(spelled).as_py():
        return column
    return pc.if_else(spelled, pa.scalar(None, pa.string()), column)


def parse_block_arrow(lines: Sequence[bytes], use_threads: bool = True) -> pa.Table | None:
    """The block's candidates in `candidates` column order, or None when it needs the per-line path."""
    for raw in lines:
        if len(raw) < 3 and not raw.strip():
            return None
    data = b"".join(lines)
    try:
        data.decode("utf-8")  # pyarrow's JSON reader does not validate UTF-8 itself
        parsed = pj.read_json(
            io.BytesIO(data),
            read_options=pj.ReadOptions(use_threads=use_threads, block_size=1 << 20),
            parse_options=pj.ParseOptions(explicit_schema=_SOURCE_FIELDS, unexpected_field_behavior="ignore"),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None
    if parsed.num_rows != len(lines):
        return None
    did, modality = parsed["did"], parsed["modality"]
    if did.null_count or modality.null_count or pc.min(pc.utf8_length(did)).as_py() == 0:
        return None
    if not pc.all(pc.is_in(modality, value_set=_MODALITY_SET)).as_py():
        return None
    text = _normalise_nulls(parsed["txt"])
    image = _normalise_nulls(parsed["img_path"])
    src = _normalise_nulls(parsed["src_content"])
    is_text = pc.equal(modality, "text")
    if pc.any(pc.and_(is_text, pc.is_null(text))).as_py():
        return None
    if pc.any(pc.and_(pc.invert(is_text), pc.is_null(image))).as_py():
        return None
    if pc.any(pc.match_substring_regex(image, _ODD_PATH)).as_py():
        return None
    return pa.Table.from_arrays([did, modality, text, image, src], schema=CANDIDATES)


def parse_block_lines(
    lines: Sequence[bytes], first: int, report_bad: ReportBad
) -> tuple[pa.Table, list[int]]:
    """The per-line path: every good row (in `candidates` column order) and its line number."""
    rows: list[tuple] = []
    numbers: list[int] = []
    for lineno, raw in enumerate(lines, first):
        if len(raw) < 3 and not raw.strip():
            continue
        try:
            rows.append(parse_candidate(parse_json_line(raw)))
        except RowError as e:
            report_bad(lineno, e)
            continue
        numbers.append(lineno)
    columns = [pa.array([row[i] for row in rows], type=f.type) for i, f in enumerate(CANDIDATES)]
    return pa.Table.from_arrays(columns, schema=CANDIDATES), numbers


def parse_pool_block(
    lines: Sequence[bytes], first: int, report_bad: ReportBad, fast: bool = True
) -> tuple[pa.Table, Sequence[int]]:
    """(candidates, line number of each) for a block of pool lines starting at line `first`."""
    if fast:
        table = parse_block_arrow(lines)
        if table is not None:
            return table, range(first, first + len(lines))
    return parse_block_lines(lines, first, report_bad)


def content_keys(table: pa.Table) -> list[str]:
    """One string per row that differs whenever modality, text, image or src_content differ."""
    joined = pc.binary_join_element_wise(
        table["modality"],
        table["text"],
        table["image"],
        table["src_content"],
        _SEP,
        null_handling="replace",
        null_replacement=_NULL,
    )
    return joined.to_pylist()
