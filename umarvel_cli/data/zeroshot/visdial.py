"""Visual Dialog v1.0 val, dialog → image, as U-MARVEL's eval_visdial.py (LamRA's protocol) reads it.

Release format (visualdialog.org, `visdial_1.0_val.json`): {"version", "split", "data": {"questions":
[str], "answers": [str], "dialogs": [{"image_id", "caption", "dialog": [{"question": index,
"answer": index, "answer_options", "gt_index"}]}]}}; images
`VisualDialog_val2018/VisualDialog_val2018_<image_id:012d>.jpg`. The query text is the ten rounds
"Q: <question>? A: <answer>." joined by spaces (the caption is not part of it in that protocol; it is
kept in src_content). A query is the dialog's `image_id`, a candidate the image file name.
"""

from __future__ import annotations

from pathlib import Path

from umarvel_cli.data.zeroshot.records import MediaIndex, ZeroShotRows, load_json, require_dir, require_field
from umarvel_cli.data.zeroshot.spec import BenchmarkSpec
from umarvel_cli.errors import UmarvelError


def _text(table: list[str], index: object, path: Path, what: str, where: str) -> str:
    if not isinstance(index, int) or not 0 <= index < len(table):
        raise UmarvelError(f"{where}: {what} index {index!r} is out of range", file=path, field=what)
    return table[index]


def read_visdial(root: Path, spec: BenchmarkSpec, split: str) -> ZeroShotRows:
    path = root / spec.file("annotations", split=split)
    data = require_field(load_json(path), "data", path, "the file")
    questions = require_field(data, "questions", path, "data")
    answers = require_field(data, "answers", path, "data")
    media = MediaIndex(root, require_dir(root, spec.file("images"), "VisDial val images"), path)
    rows = ZeroShotRows(split=split)
    task = spec.tasks[0]
    for n, dialog in enumerate(require_field(data, "dialogs", path, "data")):
        where = f"dialogs[{n}]"
        image_id = int(require_field(dialog, "image_id", path, where))
        name = f"VisualDialog_val2018_{image_id:012d}.jpg"
        image = media.image(name, where)
        rows.add_candidate(name, "image", image=image)
        rounds = []
        for r, turn in enumerate(require_field(dialog, "dialog", path, where)):
            q = _text(
                questions,
                require_field(turn, "question", path, f"{where} round {r}"),
                path,
                "question",
                where,
            )
            a = _text(
                answers, require_field(turn, "answer", path, f"{where} round {r}"), path, "answer", where
            )
            rounds += [f"Q: {q}?", f"A: {a}."]
        src = {"caption": dialog.get("caption")}
        rows.add_query(task, str(image_id), " ".join(rounds), None, {name: 1}, src)
    return rows
