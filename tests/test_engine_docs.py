"""The engine's documentation and layering match the code."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from jobqueue.engine.keys import KeySpace
from jobqueue.engine.transport.scripts import SCRIPT_NAMES

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "jobqueue" / "engine" / "lua"


def test_every_key_the_key_module_can_build_is_documented():
    doc = (ROOT / "docs" / "redis-keys.md").read_text()
    missing = [p for p in KeySpace("jq").patterns().values() if p not in doc]
    assert missing == []


def test_every_script_file_is_loaded_and_documents_keys_argv_and_return():
    files = {p.stem for p in SCRIPTS.glob("*.lua")} - {"_lib"}
    assert files == set(SCRIPT_NAMES)
    for name in SCRIPT_NAMES:
        header = (SCRIPTS / f"{name}.lua").read_text().split("\nlocal ", 1)[0]
        assert header.startswith(f"-- {name}.lua: ")
        assert re.search(r"^-- KEYS\[1\]", header, re.M), name
        assert re.search(r"^-- Returns ", header, re.M), name
        if name != "wait_prepare":
            assert re.search(r"^-- ARGV\[1\]", header, re.M), name


def test_every_script_compiles_with_the_helpers_it_uses(keyspace):
    """_lib.lua is cut into blocks at blank lines: each block after the header must hold one
    whole definition, and every script must compile with the helpers picked for it."""
    from jobqueue.engine.transport.scripts import DEFINITION, source

    blocks = (SCRIPTS / "_lib.lua").read_text().split("\n\n")
    assert all(len(DEFINITION.findall(block)) == 1 for block in blocks[1:]), "one per block"
    for name in SCRIPT_NAMES:
        keyspace.client.script_load(source(name))  # a syntax error raises here
        assert "-- _lib.lua" not in source(name)
    assert "local function stall(" not in source("complete")
    assert "local function stall(" in source("reap")


def test_every_script_touches_only_keys_of_its_queue_slot():
    """No key name is hard-coded in a script: keys come from KEYS or from prefixes in ARGV."""
    for path in SCRIPTS.glob("*.lua"):
        assert not re.search(r"redis\.call\('\w+', '[^']*:", path.read_text()), path.name


@pytest.mark.parametrize("module", ["jobqueue.engine"])
def test_the_engine_imports_no_django(module):
    code = (
        f"import sys, {module}; "
        "bad = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
