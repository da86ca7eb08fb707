"""The API's one JSON parser: it refuses, naming the field, what the database would choke on later.

Python's json module accepts things PostgreSQL cannot store or clients cannot round-trip: NaN and
Infinity (and 1e400, which becomes inf), a name given twice in an object (the last one kept), NUL characters (JSONB and text columns reject them: a 500
after the request was half-handled) and lone surrogates (not encodable as UTF-8). Deep nesting makes
the decoder raise RecursionError, which no handler expects. Refusing all of it here, before any view
runs, keeps every endpoint's answer a 400 in the error shape and stores nothing partial.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import JSONParser

# Deeper than any real job payload; far below the decoder's recursion limit (~1,000 here).
MAX_DEPTH = 64
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class _NonFinite:
    """Stands in for NaN/Infinity/1e400 while parsing, so the walk can say where it was."""

    def __init__(self, text: str) -> None:
        self.text = text


class _Repeated(dict[str, Any]):
    """An object in which a name was given twice (json.loads keeps the last value, silently, and
    another reader of the same text may keep the first): `twice` is that name, for the walk to
    say where it was."""

    twice: str


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    repeated = _Repeated(obj)
    seen: set[str] = set()
    for name, _ in pairs:
        if name in seen:
            repeated.twice = name
            break
        seen.add(name)
    return repeated


def _float(text: str) -> float | _NonFinite:
    value = float(text)
    return value if math.isfinite(value) else _NonFinite(text)


def _field(path: list[str]) -> str:
    return ".".join(path) or "body"


def _problem(text: str) -> str:
    return ("NUL characters are not allowed." if "\x00" in text
            else "Lone surrogates are not valid unicode.")


class Refused(ValueError):
    """JSON that no column could store faithfully; `field` is the dotted path to the bad value."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def refuse_unstorable(data: Any, prefix: list[str] | None = None) -> None:
    """Raise Refused naming the first value (or key) no column could store faithfully."""
    stack: list[tuple[Any, list[str]]] = [(data, list(prefix or []))]
    while stack:
        value, path = stack.pop()
        if len(path) > MAX_DEPTH:
            raise Refused(_field(path[:MAX_DEPTH]), f"Nested deeper than {MAX_DEPTH} levels.")
        if isinstance(value, _NonFinite):
            raise Refused(_field(path), f"{value.text} is not a finite number.")
        if isinstance(value, _Repeated):
            raise Refused(_field([*path, value.twice]), "Given twice; a name is given once in a JSON object.")
        if isinstance(value, str) and _UNSTORABLE.search(value):
            raise Refused(_field(path), _problem(value))
        if isinstance(value, dict):
            for key, item in value.items():
                if _UNSTORABLE.search(key):
                    raise Refused(_field([*path, repr(key)[1:-1]]), _problem(key))
                stack.append((item, [*path, key]))
        elif isinstance(value, list):
            stack.extend((item, [*path, str(index)]) for index, item in enumerate(value))


def json_loads_strict(text: str, *, field: str = "") -> Any:
    """json.loads that raises Refused (a ValueError) for everything this module refuses; the
    dashboard's JSON form fields use it too, so a form and the API refuse the same input."""
    prefix = [field] if field else []
    try:
        data = json.loads(text, parse_float=_float, parse_constant=_NonFinite, object_pairs_hook=_object)
    except RecursionError:
        raise Refused(field or "body", f"Nested deeper than {MAX_DEPTH} levels.") from None
    refuse_unstorable(data, prefix)
    return data


class StrictJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return json_loads_strict(stream.read().decode(encoding))
        except Refused as exc:
            raise ValidationError({exc.field: [exc.reason]}) from None
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise ParseError(f"JSON parse error - {exc}") from None
