"""docs/architecture.md names every module of jobqueue/ and none that does not exist."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"


def modules() -> set[str]:
    """Every module of the package: migrations and empty package markers aside."""
    return {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "jobqueue").rglob("*.py")
        if "migrations" not in path.parts and path.read_text().strip()
    }


def named() -> set[str]:
    return set(re.findall(r"`(jobqueue/[\w/]+\.py)`", DOC.read_text()))


def test_every_module_is_named():
    missing = sorted(modules() - named())
    assert missing == [], f"docs/architecture.md does not name: {missing}"


def test_every_module_named_exists():
    ghosts = sorted(path for path in named() if not (ROOT / path).exists())
    assert ghosts == [], f"docs/architecture.md names modules that do not exist: {ghosts}"


def test_every_lua_script_is_named():
    text = DOC.read_text()
    scripts = sorted(p.stem for p in (ROOT / "jobqueue" / "engine" / "lua").glob("*.lua"))
    missing = [name for name in scripts if not name.startswith("_") and f"`{name}`" not in text]
    assert missing == []
