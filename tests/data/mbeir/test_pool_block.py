from __future__ import annotations

import json

import pytest

from umarvel_cli.data.mbeir.pool_block import content_keys, parse_block_arrow, parse_block_lines


def _line(**rec) -> bytes:
    base = {
        "txt": None,
        "img_path": "mbeir_images/a/1.jpg",
        "modality": "image",
        "did": "1:1",
        "src_content": None,
    }
    return (json.dumps({**base, **rec}) + "\n").encode()


PLAIN = [
    _line(),
    _line(did="1:2", txt="", img_path="mbeir_images/a/2.jpg"),
    _line(did="1:3", txt="null", modality="image,text"),
    _line(did="1:3", txt="A text.", modality="image,text", src_content='{"k": 1}'),
    _line(did="2:4", txt="Only text.", img_path="null", modality="text", src_content=""),
    _line(did="2:5", txt="Only text.", img_path="", modality="text", extra_field=[1, 2]),
    b'{"did": "2:6", "modality": "text", "txt": "caf\\u00e9 \xc3\xa9"}',  # no trailing newline, keys missing
]


def _no_complaint(lineno, error):
    raise AssertionError(f"line {lineno}: {error.reason}")


def test_plain_block_reads_the_same_both_ways():
    fast = parse_block_arrow(PLAIN)
    assert fast is not None
    slow, numbers = parse_block_lines(PLAIN, 10, _no_complaint)
    assert numbers == list(range(10, 17))
    assert fast.to_pylist() == slow.to_pylist()
    assert fast.schema.equals(slow.schema)
    rows = fast.to_pylist()
    assert rows[1]["text"] is None and rows[4]["image"] is None and rows[4]["src_content"] is None
    assert rows[6] == {"did": "2:6", "modality": "text", "text": "café é", "image": None, "src_content": None}
    assert content_keys(fast) == content_keys(slow)


@pytest.mark.parametrize(
    "odd",
    [
        b"\n",
        b"{not json\n",
        b'{"did": "1:9"} {"did": "1:10"}\n',
        b"[1, 2]\n",
        _line(did=""),
        _line(did=None),
        _line(did=7),
        _line(modality="video"),
        _line(modality=None),
        _line(img_path=None),
        _line(modality="text", txt=""),
        _line(img_path="../x.jpg"),
        _line(img_path="a//x.jpg"),
        _line(img_path="./x.jpg"),
        _line(img_path="/x.jpg"),
        _line(img_path="a\\x.jpg"),
        _line(img_path="C:x.jpg"),
        _line(img_path="a/"),
        _line(img_path="."),
        _line(txt=3),
        _line(src_content={"a": 1}),
        b'{"did": "1:9", "did": "1:10", "modality": "text", "txt": "t"}\n',
        b'{"did": "1:9", "modality": "text", "txt": "t"}\x0c\n',
        b'{"did": "\xff", "modality": "text", "txt": "t"}\n',
    ],
)
def test_any_odd_line_sends_the_block_to_the_line_path(odd):
    assert parse_block_arrow([*PLAIN[:-1], odd]) is None  # PLAIN[-1] has no newline: it ends a file
    assert parse_block_arrow([odd, *PLAIN]) is None
