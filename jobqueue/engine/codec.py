"""JSON in and out of Redis. Never pickle.

orjson is used when installed (it is a dependency of the package, several times faster than the
standard library's json); the standard library is the fallback, so the engine still runs with
only ``redis`` installed.
"""

from __future__ import annotations

import json
import reprlib
from typing import Any

from .errors import InvalidJob

try:  # pragma: no branch
    import orjson
except ImportError:  # pragma: no cover - exercised only without orjson
    orjson = None  # type: ignore[assignment]


def _std_dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


if orjson is not None:

    def _dumps(value: Any) -> bytes:
        return orjson.dumps(value)

    loads = orjson.loads
    JSONDecodeError: type[Exception] = orjson.JSONDecodeError
else:  # pragma: no cover
    _dumps = _std_dumps
    loads = json.loads
    JSONDecodeError = json.JSONDecodeError


def encode(value: Any) -> bytes:
    """Encode jobqueue's own data (messages between its processes): no checks."""
    return _dumps(value)


# Containers nested deeper than this are refused (orjson's own limit).
MAX_DEPTH = 254
PREVIEW = 60  # characters of an offending value an error message shows, at most
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = PREVIEW
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict = 2, 4, 4


def dumps(value: Any, *, what: str = "value") -> bytes:
    """Encode ``value`` as JSON; raise InvalidJob naming ``what``, the type, the path and a
    short preview of what is not JSON data (never the whole value: it may be huge, or
    personal data bound for logs)."""
    try:
        encoded = _dumps(value)
    except (TypeError, ValueError, RecursionError) as exc:
        _locate(value, what)  # raises InvalidJob naming what is wrong, and where
        raise InvalidJob(f"The job's {what} cannot be encoded as JSON: {str(exc)[:200]}.") from exc
    # orjson also encodes datetimes, UUIDs, dataclasses and NaN; refuse them, as json would,
    # so a job's data always round-trips to exactly what was enqueued.
    if not _is_json(value):
        _locate(value, what)
    return encoded


def _is_json(value: Any) -> bool:
    """Whether ``value`` (encoded without error, so not too deep) is only JSON data: the fast
    check every encoding makes."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind in (str, int, bool) or item is None:
            continue
        if kind is float:
            if item != item or item in (float("inf"), float("-inf")):
                return False
            continue
        if kind is list or kind is tuple:
            stack.extend(item)
            continue
        if kind is dict:
            if any(type(key) is not str for key in item):
                return False
            stack.extend(item.values())
            continue
        return False
    return True


def _locate(value: Any, what: str) -> None:
    """Raise InvalidJob for the first thing in ``value`` that is not JSON data, by its path
    (``args[0]["a"][3]``), type and a short preview; return if there is none."""
    stack: list[tuple[Any, str, int]] = [(value, what, 0)]
    while stack:
        item, path, depth = stack.pop()
        kind = type(item)
        if kind in (str, int, bool) or item is None:
            continue
        if kind is float:
            if item != item or item in (float("inf"), float("-inf")):
                raise InvalidJob(
                    f"The job's {what} holds {item!r} at {_short(path)}, which JSON cannot carry."
                )
            continue
        if (kind is list or kind is tuple or kind is dict) and depth >= MAX_DEPTH:
            raise InvalidJob(
                f"The job's {what} nests lists and dicts deeper than {MAX_DEPTH} levels "
                f"(at {_short(path)})."
            )
        if kind is list or kind is tuple:
            children = [(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(item)]
            stack.extend(reversed(children))
            continue
        if kind is dict:
            for key in item:
                if type(key) is not str:
                    raise InvalidJob(
                        f"The job's {what} has a dict key of type {type(key).__name__} at "
                        f"{_short(path)}: {preview(key)}; JSON keys must be strings."
                    )
            pairs = [(v, f"{path}[{_key(k)}]", depth + 1) for k, v in item.items()]
            stack.extend(reversed(pairs))
            continue
        raise InvalidJob(
            f"The job's {what} must be JSON-serialisable (str, int, float, bool, None, list, dict "
            f"with str keys); {_short(path)} is a {kind.__name__}: {preview(item)}."
        )


def preview(value: Any) -> str:
    """At most PREVIEW characters saying what ``value`` is, whatever its size."""
    try:
        if isinstance(value, str | bytes | bytearray):
            text = repr(value[: PREVIEW + 1])
        else:
            text = _REPR.repr(value)
    except Exception:  # a __repr__ that fails: the type says enough
        text = f"<{type(value).__name__} object>"
    return text if len(text) <= PREVIEW else text[: PREVIEW - 1] + "…"


def _key(key: str) -> str:
    text = json.dumps(key[: PREVIEW + 1], ensure_ascii=False)
    return text if len(text) <= PREVIEW else text[: PREVIEW - 1] + "…"


def _short(path: str) -> str:
    """A path of at most 100 characters (a deep one loses its end)."""
    return path if len(path) <= 100 else path[:99] + "…"


def clip(value: str, limit: int, head: int | None = None) -> str:
    """``value`` within ``limit`` bytes of UTF-8: as it is if it fits, else its first ``head``
    bytes (all the room when None) and its end, around a marker saying how many bytes were
    cut. Characters are never split."""
    if len(value) * 4 <= limit:
        return value  # fits whatever its characters (the common case: not encoded)
    data = value.encode(errors="replace")
    if len(data) <= limit:
        return value
    room = max(limit - len(_cut(len(data))), 0)  # the marker at its longest
    first = room if head is None else min(head, room)
    last = room - first
    kept_head = data[:first].decode(errors="ignore")
    kept_tail = data[len(data) - last :].decode(errors="ignore") if last else ""
    cut = len(data) - len(kept_head.encode()) - len(kept_tail.encode())
    return kept_head + _cut(cut) + kept_tail


def _cut(count: int) -> str:
    return f"\n[... {count} bytes cut ...]\n"


def text(value: Any) -> str:
    """A reply's string as text: Redis replies with bytes (or str on a decoding connection)."""
    return value.decode() if isinstance(value, bytes) else str(value)
