"""Rules the code in ``jobqueue/`` keeps, checked on its syntax tree.

No module uses a private name of another library: nothing imported whose name (or a module on
whose path) starts with ``_``, no attribute starting with ``_`` that jobqueue itself does not
define, and no such name passed as a string to ``getattr``/``setattr``/``hasattr``/
``object.__setattr__``. One minor release of redis-py, hiredis, multiprocessing or Django may
rename what they keep private; every worker would break with it.

Allowed, each for its reason:

- ``_meta``: Django's model ``_meta`` API, documented as public and stable
  (https://docs.djangoproject.com/en/stable/ref/models/meta/);
- ``_exit``: ``os._exit``, the standard library's documented exit without cleanup (a forked
  child must not run its parent's atexit handlers);
- ``_return_value``: Django's task framework gives backends no other way to set a
  TaskResult's return value (its own ImmediateBackend sets this field); used in
  ``jobqueue/compat.py`` only.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "jobqueue"
ALLOWED = {"_meta", "_exit"}
ALLOWED_IN = {"_return_value": "jobqueue/compat.py"}
NAMING_CALLS = {"getattr", "setattr", "hasattr", "delattr", "__setattr__"}


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts)


def private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def own_private_names() -> set[str]:
    """Every name starting with ``_`` that jobqueue defines: functions, classes, attributes it
    assigns, parameters, names it binds."""
    names: set[str] = set()
    for path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
            elif isinstance(node, ast.alias):
                names.add(node.asname or node.name.split(".")[0])
    return {name for name in names if private(name)}


def problems_in(path: Path, own: set[str]) -> list[str]:
    where = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        line = f"{where}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] not in ("jobqueue", "__future__"):
                parts = node.module.split(".") + [alias.name for alias in node.names]
                found += [f"{line} imports {p!r} from {node.module}" for p in parts if private(p)]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if any(private(part) for part in alias.name.split(".")):
                    found.append(f"{line} imports {alias.name}")
        elif isinstance(node, ast.Attribute) and private(node.attr):
            base = node.value
            ours = isinstance(base, ast.Name) and base.id in ("self", "cls")
            if not ours and node.attr not in own and node.attr not in ALLOWED:
                found.append(f"{line} uses attribute {node.attr!r} of another library")
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name in NAMING_CALLS:
                for arg in node.args:
                    text = arg.value if isinstance(arg, ast.Constant) else None
                    if isinstance(text, str) and private(text) and text not in own:
                        if ALLOWED_IN.get(text) != where:
                            found.append(f"{line} names attribute {text!r} of another library")
    return found


def test_no_module_uses_a_private_name_of_another_library():
    own = own_private_names()
    found = [problem for path in modules() for problem in problems_in(path, own)]
    assert found == [], "\n".join(found)


def test_the_rule_catches_what_it_is_about(tmp_path):
    """The checker itself: each kind of private use is reported."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from redis._parsers import Encoder\n"
        "import multiprocessing.connection as c\n"
        "from redis.connection import _RESP2Parser\n"
        "def f(conn):\n"
        "    conn._sock.close()\n"
        "    return getattr(conn, '_parser', None)\n"
    )
    found = problems_in(sample, own_private_names())
    assert len(found) == 4, found
    assert any("'_parsers'" in p for p in found) and any("'_RESP2Parser'" in p for p in found)
    assert any("'_sock'" in p for p in found) and any("'_parser'" in p for p in found)
