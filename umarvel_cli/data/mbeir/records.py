"""Parse and validate one M-BEIR record (a query or candidate JSON line, a qrels line, an instructions row).

Each parser returns plain tuples (the hot path reads millions of lines) or raises `RowError` naming the
field; the caller turns that into a one-line `UmarvelError` or a rejected-row entry, with file and line.
Nulls: null, "" and "null" all mean "missing" (docs/mbeir.md §1.2).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from json.scanner import make_scanner
from typing import Any

from umarvel_cli.artifacts.paths import safe_relative
from umarvel_cli.artifacts.schemas import MODALITIES
from umarvel_cli.errors import UmarvelError

_NULLS = (None, "", "null")
_MODALITIES = frozenset(MODALITIES)
_JSON_SPACE = " \t\r\n"
_scan_json = make_scanner(json.JSONDecoder())

Candidate = tuple[str, str, "str | None", "str | None", "str | None"]
Query = tuple[str, str, "str | None", "str | None", list, list, "str | None", int]


class RowError(Exception):
    """One bad input row: which field, and why (the caller adds file and line)."""

    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def is_plain_path(path: str) -> bool:
    """True when `safe_relative` would keep `path` exactly as it is (no rewrite, no rejection)."""
    return not (
        ".." in path
        or "//" in path
        or "./" in path
        or "\\" in path
        or path[0] == "/"
        or path[-1] == "/"
        or path[1:2] == ":"
        or path == "."
    )


def clean_image(path: str, field: str) -> str | None:
    """The stored relative image path; same result as `safe_relative`, without its cost on plain paths."""
    if not is_plain_path(path):
        try:
            path = safe_relative(path, field=field)
        except UmarvelError as e:
            raise RowError(field, e.message) from None
    return path or None


def parse_json_line(raw: bytes) -> Any:
    """One JSON value per line, through the C scanner (json.loads' own path costs 3x more per line)."""
    try:
        line = raw.decode("utf-8")
        value, end = _scan_json(line, 0)
    except (StopIteration, ValueError):
        value, line, end = _json_slow(raw), "", 0
    n = len(line)
    if end < n and not (end == n - 1 and line[end] == "\n") and line[end:].strip(_JSON_SPACE):
        _json_slow(raw)  # raises: extra data after the value
    return value


def _json_slow(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:  # the decoder's "line 1" is the record's, not the file's
        raise RowError(None, f"malformed JSON line ({e.msg} at column {e.colno})") from None
    except ValueError as e:  # UnicodeDecodeError
        raise RowError(None, f"malformed JSON line ({e})") from None


def _storable(value: str, key: str) -> str:
    """Text a JSON `\\ud800` escape made unstorable is a bad row, not a crash at write time."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise RowError(key, "text holds a lone surrogate, which UTF-8 cannot store") from None
    return value


def _optional_text(rec: dict, key: str, kind: str = "a string") -> str | None:
    value = rec.get(key)
    if value in _NULLS:
        return None
    if type(value) is not str:
        raise RowError(key, f"must be {kind} or null, not {type(value).__name__}")
    return _storable(value, key)


def _src_content(rec: dict, key: str) -> str | None:
    """Source metadata is a JSON string in the files (P11); tolerate null and "" like every text field."""
    return _optional_text(rec, key, "a JSON string")


def _id_list(rec: dict, key: str, required: bool) -> list[str]:
    if key not in rec:
        if required:
            raise RowError(key, "missing field")
        return []
    value = rec[key]
    if value is None and not required:
        return []
    if type(value) is not list or any(type(x) is not str for x in value):
        raise RowError(key, "must be a list of did strings")
    return value


def _modality(rec: dict, key: str) -> str:
    modality = rec.get(key)
    if modality not in _MODALITIES:
        if key not in rec:
            raise RowError(key, "missing field")
        raise RowError(key, f"unknown modality {modality!r} (expected one of {', '.join(MODALITIES)})")
    return modality


def _check_content(modality: str, text: str | None, image: str | None, text_key: str, image_key: str) -> None:
    if image is None and "image" in modality:
        raise RowError(image_key, f"modality {modality!r} needs an image path")
    if text is None and modality == "text":
        raise RowError(text_key, "modality 'text' needs a text")


def _identity_and_content(
    rec: Any, id_key: str, modality_key: str, text_key: str, image_key: str
) -> tuple[str, str, str | None, str | None]:
    """(id, modality, text, image) of a query or candidate record, checked field by field."""
    if type(rec) is not dict:
        raise RowError(None, "line is not a JSON object")
    ident = rec.get(id_key)
    if type(ident) is not str or not ident:
        raise RowError(id_key, "missing field" if id_key not in rec else "must be a non-empty string")
    modality = _modality(rec, modality_key)
    text = _optional_text(rec, text_key)
    image = _optional_text(rec, image_key)
    if image is not None:
        image = clean_image(image, image_key)
    _check_content(modality, text, image, text_key, image_key)
    return ident, modality, text, image


def parse_candidate(rec: Any) -> Candidate:
    """(did, modality, text, image, src_content) of a `cand_pool/**.jsonl` record.

    Plain records (the millions of a real pool) take the inline path; anything unusual goes through
    `parse_candidate_checked`, which gives the same result or names the bad field.
    """
    if type(rec) is dict:
        did = rec.get("did")
        modality = rec.get("modality")
        text = rec.get("txt")
        image = rec.get("img_path")
        src = rec.get("src_content")
        if text == "" or text == "null":
            text = None
        if image == "" or image == "null":
            image = None
        if src == "" or src == "null":
            src = None
        if (
            type(did) is str
            and did
            and modality in _MODALITIES
            and (text is None or type(text) is str)
            and (src is None or type(src) is str)
            and (image is None or (type(image) is str and is_plain_path(image)))
            and (image is not None or modality == "text")
            and (text is not None or modality != "text")
        ):
            return did, modality, text, image, src
    return parse_candidate_checked(rec)


def parse_candidate_checked(rec: Any) -> Candidate:
    """The field-by-field version of `parse_candidate`: slower, and says what is wrong."""
    did, modality, text, image = _identity_and_content(rec, "did", "modality", "txt", "img_path")
    return did, modality, text, image, _src_content(rec, "src_content")


def parse_query(rec: Any, known_tasks: Collection[int]) -> Query:
    """(qid, modality, text, image, pos, neg, src_content, task_id) of a `query/**.jsonl` record."""
    qid, modality, text, image = _identity_and_content(
        rec, "qid", "query_modality", "query_txt", "query_img_path"
    )
    pos = _id_list(rec, "pos_cand_list", required=True)
    neg = _id_list(rec, "neg_cand_list", required=False)
    if "task_id" not in rec:
        raise RowError("task_id", "missing field")
    task_id = rec["task_id"]
    if type(task_id) is not int:
        raise RowError("task_id", f"must be an integer, not {type(task_id).__name__}")
    if task_id not in known_tasks:
        known = ", ".join(str(t) for t in sorted(known_tasks))
        raise RowError("task_id", f"unknown task id {task_id} (expected one of {known})")
    return qid, modality, text, image, pos, neg, _src_content(rec, "query_src_content"), task_id


def parse_qrels_line(line: str, known_tasks: Collection[int]) -> tuple[str, str, int, int]:
    """(qid, did, relevance, task_id) of a 5-column M-BEIR qrels line `qid 0 did rel task_id` (P2)."""
    parts = line.split()
    if len(parts) != 5:
        raise RowError("columns", f"has {len(parts)} columns, expected 5: 'qid 0 did relevance task_id'")
    qid, _, did, rel, task = parts
    try:
        relevance = int(rel)
    except ValueError:
        raise RowError("relevance", f"{rel!r} is not an integer") from None
    if not -128 <= relevance <= 127:
        raise RowError("relevance", f"{relevance} is out of range")
    try:
        task_id = int(task)
    except ValueError:
        raise RowError("task_id", f"{task!r} is not an integer") from None
    if task_id not in known_tasks:
        known = ", ".join(str(t) for t in sorted(known_tasks))
        raise RowError("task_id", f"unknown task id {task_id} (expected one of {known})")
    return qid, did, relevance, task_id


def parse_instruction_line(
    line: str, known_datasets: Collection[int]
) -> tuple[int, str | None, str, str, list[str]]:
    """(dataset_id, dataset_name, query_modality, cand_modality, prompts) of a query_instructions.tsv row.

    Columns are read by position as UniIR does: query_modality, cand_modality, dataset name, dataset_id,
    prompt_1 ... prompt_n (empty prompts dropped).
    """
    parts = [p.strip() for p in line.rstrip("\r\n").split("\t")]
    if len(parts) < 5:
        raise RowError("columns", f"has {len(parts)} columns, expected at least 5")
    query_modality, cand_modality, name, dataset, *prompts = parts
    for key, value in (("query_modality", query_modality), ("cand_modality", cand_modality)):
        if value not in _MODALITIES:
            raise RowError(key, f"unknown modality {value!r} (expected one of {', '.join(MODALITIES)})")
    try:
        dataset_id = int(dataset)
    except ValueError:
        raise RowError("dataset_id", f"{dataset!r} is not an integer") from None
    if dataset_id not in known_datasets:
        raise RowError("dataset_id", f"unknown dataset id {dataset_id}")
    prompts = [p for p in prompts if p not in _NULLS]
    if not prompts:
        raise RowError("prompts", "no prompt in this row")
    return dataset_id, (None if name in _NULLS else name), query_modality, cand_modality, prompts
