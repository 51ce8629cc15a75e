"""JSON in and out of Redis. Never pickle.

orjson is used when installed (it is a dependency of the package, several times faster than the
standard library's json); the standard library is the fallback, so the engine still runs with
only ``redis`` installed.
"""

from __future__ import annotations

import json
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


def dumps(value: Any, *, what: str = "value") -> bytes:
    """Encode ``value`` as JSON; raise InvalidJob naming ``what`` if it is not JSON data."""
    try:
        encoded = _dumps(value)
    except (TypeError, ValueError) as exc:
        raise InvalidJob(
            f"The job's {what} must be JSON-serialisable (str, int, float, bool, None, list, "
            f"dict with str keys); {value!r} is not: {exc}."
        ) from exc
    # orjson also encodes datetimes, UUIDs, dataclasses and NaN; refuse them, as json would,
    # so a job's data always round-trips to exactly what was enqueued.
    _reject_non_json(value, what)
    return encoded


def _reject_non_json(value: Any, what: str) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind in (str, int, bool) or item is None:
            continue
        if kind is float:
            if item != item or item in (float("inf"), float("-inf")):
                raise InvalidJob(f"The job's {what} contains {item!r}, which JSON cannot carry.")
            continue
        if kind is list or kind is tuple:
            stack.extend(item)
            continue
        if kind is dict:
            for key in item:
                if type(key) is not str:
                    raise InvalidJob(
                        f"The job's {what} has a dict key {key!r}; JSON keys must be strings."
                    )
            stack.extend(item.values())
            continue
        raise InvalidJob(
            f"The job's {what} must be JSON-serialisable; {item!r} ({kind.__name__}) is not."
        )
