"""The layering of docs/architecture.md, checked on every import of `umarvel_cli/` and `kernels/`.

The doc is the single source: its ```layers block lists the layers top to bottom, its ```rules block
the extra rules (who may import `kernels/`, the `data/` / `models/` split). Imports are read with
`ast`, the ones inside functions included; circles are looked for among module-level imports.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
PACKAGES = ("umarvel_cli", "kernels")
MAIN = "umarvel_cli"
PATH = re.compile(r"^[A-Za-z_][\w/]*(?:/|\.py)$")


@dataclass(frozen=True)
class Scope:
    """A doc path as module names: a folder covers its package and everything under it, a file one module."""

    module: str
    prefix: bool

    def covers(self, module: str) -> bool:
        return module == self.module or (self.prefix and module.startswith(self.module + "."))


@dataclass
class Rules:
    layers: list[list[Scope]]
    only_importers: list[tuple[Scope, list[Scope]]] = field(default_factory=list)
    forbidden: list[tuple[Scope, Scope, list[Scope]]] = field(default_factory=list)


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int
    module_level: bool


def to_scope(path: str, root: Path) -> Scope:
    """`data/` -> umarvel_cli.data.*, `data/records.py` -> umarvel_cli.data.records; `kernels/` and
    `umarvel_cli/` are top-level packages (they are not folders of umarvel_cli/)."""
    folder = path.endswith("/")
    parts = path.rstrip("/").removesuffix(".py").split("/")
    top_level = (
        folder and len(parts) == 1 and not (root / MAIN / parts[0]).exists() and (root / parts[0]).is_dir()
    )
    if top_level:
        return Scope(parts[0], True)
    if parts == ["__init__"]:
        return Scope(MAIN, False)
    return Scope(".".join([MAIN, *parts]), folder)


def fenced(text: str, name: str) -> list[str]:
    match = re.search(rf"^```{name}\n(.*?)^```", text, flags=re.M | re.S)
    assert match, f"docs/architecture.md has no ```{name} block"
    return [line for line in match.group(1).splitlines() if line.strip()]


def leading_paths(line: str) -> list[str]:
    paths = []
    for token in line.split():
        if not PATH.match(token):
            break
        paths.append(token)
    return paths


def parse_doc(text: str, root: Path) -> Rules:
    rules = Rules([[to_scope(p, root) for p in leading_paths(line)] for line in fenced(text, "layers")])
    for line in fenced(text, "rules"):
        only = re.match(r"^(\S+)\s+imported only by\s+(.+)$", line)
        never = re.match(r"^(\S+)\s+must not import\s+(\S+)(?:\s+except\s+(.+))?$", line)
        if only:
            rules.only_importers.append(
                (to_scope(only[1], root), [to_scope(p, root) for p in only[2].split()])
            )
        elif never:
            allowed = [to_scope(p, root) for p in (never[3] or "").split()]
            rules.forbidden.append((to_scope(never[1], root), to_scope(never[2], root), allowed))
        else:
            raise AssertionError(f"unreadable rule in docs/architecture.md: {line!r}")
    return rules


def module_files(root: Path, packages=PACKAGES) -> dict[str, Path]:
    out = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


class _ImportReader(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool, known: set[str]) -> None:
        self.module, self.known, self.found = module, known, []
        self.package = module if is_package else module.rpartition(".")[0]
        self.depth = 0  # > 0 inside a function body
        self.tops = {m.split(".")[0] for m in known}

    def _resolve(self, name: str) -> str | None:
        """The deepest module of ours that `name` names (None for other libraries)."""
        if name.split(".")[0] not in self.tops:
            return None
        while name and name not in self.known:
            name = name.rpartition(".")[0]
        return name or None

    def _add(self, name: str, node: ast.AST) -> None:
        target = self._resolve(name)
        if target is None or target == self.module:
            return
        found = Import(self.module, target, node.lineno, self.depth == 0)
        if found not in self.found:  # `from x import a, b` is one import of x
            self.found.append(found)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            anchor = self.package.split(".")
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, *([base] if base else [])])
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            self._add(sub if sub in self.known else base, node)

    def _function(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function


def read_imports(files: dict[str, Path]) -> list[Import]:
    known = set(files)
    found: list[Import] = []
    for module, path in files.items():
        reader = _ImportReader(module, path.name == "__init__.py", known)
        reader.visit(ast.parse(path.read_text(), filename=str(path)))
        found.extend(reader.found)
    return found


def layer_of(module: str, rules: Rules) -> int | None:
    """Index in the layer list (0 = top); the most specific doc path decides."""
    best: tuple[int, int] | None = None
    for index, layer in enumerate(rules.layers):
        for scope in layer:
            if scope.covers(module) and (best is None or len(scope.module) > best[0]):
                best = (len(scope.module), index)
    return None if best is None else best[1]


def unplaced(files: dict[str, Path], rules: Rules) -> list[str]:
    return [m for m in files if m.split(".")[0] == MAIN and layer_of(m, rules) is None]


def upward_imports(imports: list[Import], rules: Rules) -> list[str]:
    bad = []
    for imp in imports:
        src, dst = layer_of(imp.source, rules), layer_of(imp.target, rules)
        if src is not None and dst is not None and dst < src:
            bad.append(f"{imp.source}:{imp.line} imports {imp.target} (a layer above)")
    return bad


def rule_violations(imports: list[Import], rules: Rules) -> list[str]:
    bad = []
    for imp in imports:
        for scope, importers in rules.only_importers:
            outsider = scope.covers(imp.target) and not scope.covers(imp.source)
            if outsider and not any(s.covers(imp.source) for s in importers):
                bad.append(
                    f"{imp.source}:{imp.line} imports {imp.target} ({scope.module} is not its to import)"
                )
        for scope, banned, allowed in rules.forbidden:
            crossing = scope.covers(imp.source) and banned.covers(imp.target)
            if crossing and not any(s.covers(imp.target) for s in allowed):
                bad.append(
                    f"{imp.source}:{imp.line} imports {imp.target} ({scope.module} must not import it)"
                )
    return bad


def import_circles(imports: list[Import]) -> list[list[str]]:
    """Strongly connected components (more than one module, or a module importing itself) of the
    module-level import graph (Tarjan, iterative)."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        if imp.module_level:
            graph.setdefault(imp.source, set()).add(imp.target)
            graph.setdefault(imp.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph[node]:
                    circles.append(sorted(component))
    return circles


# ---- the project itself ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def project():
    files = module_files(ROOT)
    return files, parse_doc(DOC.read_text(), ROOT), read_imports(files)


def test_the_doc_lists_the_layers_and_places_every_module(project):
    files, rules, _ = project
    assert len(rules.layers) >= 5 and all(rules.layers)
    assert layer_of("umarvel_cli.commands.train", rules) == 0
    assert layer_of("umarvel_cli.errors", rules) == len(rules.layers) - 1
    assert rules.only_importers and rules.forbidden
    assert unplaced(files, rules) == [], "add these to the ```layers block of docs/architecture.md"


def test_no_import_goes_up_a_layer(project):
    _, rules, imports = project
    bad = upward_imports(imports, rules)
    assert not bad, "\n".join(bad)


def test_the_rules_of_the_doc_hold(project):
    _, rules, imports = project
    bad = rule_violations(imports, rules)
    assert not bad, "\n".join(bad)


def test_no_import_circles(project):
    _, _, imports = project
    circles = import_circles(imports)
    assert not circles, "\n".join(" <-> ".join(c) for c in circles)


# ---- the checker, on a made-up package, so it is known to catch what it should ----------------------

TOY_DOC = """
```layers
commands/  app.py    top
data/  models/       middle
errors.py  __init__.py    bottom
```

```rules
kernels/   imported only by models/
data/      must not import models/
models/    must not import data/ except data/records.py
```
"""


def _toy(tmp_path: Path, sources: dict[str, str]) -> tuple[dict[str, Path], Rules, list[Import]]:
    for rel, text in sources.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for package in (
        "umarvel_cli",
        "umarvel_cli/data",
        "umarvel_cli/models",
        "umarvel_cli/commands",
        "kernels",
    ):
        (tmp_path / package).mkdir(parents=True, exist_ok=True)
        (tmp_path / package / "__init__.py").touch()
    files = module_files(tmp_path)
    return files, parse_doc(TOY_DOC, tmp_path), read_imports(files)


def test_checker_finds_upward_imports_in_functions_and_relative_ones(tmp_path):
    files, rules, imports = _toy(
        tmp_path,
        {
            "umarvel_cli/errors.py": "def f():\n    from umarvel_cli.data import reader\n",
            "umarvel_cli/data/reader.py": "from ..commands import run\nimport umarvel_cli.errors\n",
            "umarvel_cli/commands/run.py": "from umarvel_cli.data.reader import x\n",
            "umarvel_cli/stray.py": "",
        },
    )
    assert upward_imports(imports, rules) == [
        "umarvel_cli.data.reader:1 imports umarvel_cli.commands.run (a layer above)",
        "umarvel_cli.errors:2 imports umarvel_cli.data.reader (a layer above)",
    ]
    assert unplaced(files, rules) == ["umarvel_cli.stray"]


def test_checker_applies_the_rules(tmp_path):
    _, rules, imports = _toy(
        tmp_path,
        {
            "umarvel_cli/data/records.py": "",
            "umarvel_cli/data/reader.py": "from umarvel_cli.models import embedder\nimport kernels.k\n",
            "umarvel_cli/models/embedder.py": "from umarvel_cli.data import records\nfrom kernels import k\n",
            "umarvel_cli/models/bad.py": "from umarvel_cli.data.reader import x\n",
            "kernels/k.py": "",
        },
    )
    assert rule_violations(imports, rules) == [
        "umarvel_cli.data.reader:1 imports umarvel_cli.models.embedder (umarvel_cli.data must not import it)",
        "umarvel_cli.data.reader:2 imports kernels.k (kernels is not its to import)",
        "umarvel_cli.models.bad:1 imports umarvel_cli.data.reader (umarvel_cli.models must not import it)",
    ]


def test_checker_finds_circles_among_module_level_imports_only(tmp_path):
    _, _, imports = _toy(
        tmp_path,
        {
            "umarvel_cli/data/a.py": "from umarvel_cli.data import b\n",
            "umarvel_cli/data/b.py": "import umarvel_cli.data.c\n",
            "umarvel_cli/data/c.py": "from umarvel_cli.data.a import x\n",
            "umarvel_cli/data/d.py": "def f():\n    from umarvel_cli.data import e\n",
            "umarvel_cli/data/e.py": "from umarvel_cli.data import d\n",
        },
    )
    assert import_circles(imports) == [["umarvel_cli.data.a", "umarvel_cli.data.b", "umarvel_cli.data.c"]]
