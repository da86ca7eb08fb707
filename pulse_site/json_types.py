"""JSON's own types, as the API's OpenAPI schema documents them, held to before any field is read.

DRF's fields coerce: an IntegerField takes "5" and 5.0, a BooleanField "true", "1" and 0, a
CharField 5. A client that sends the wrong type has a bug this would hide (and a priority of
"5" from one client is 5 while another's "5 " is refused). So a request body is first checked
against the JSON type of each field (the type its schema documents: drf-spectacular's reading of
the field, or the schema an `as_sent` field carries), every wrong one refused naming its path and
what was expected. A query string has no types: its values are checked by how they are written
(`true`/`false`, plain ASCII digits), since int() and float() also read " 5", "+5" and other
scripts' digits.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from drf_spectacular.drainage import get_override
from rest_framework import serializers

Schema = dict[str, Any]

_WORDS = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false",
          "array": "a list", "object": "an object"}
_FORMAT_WORDS = {"decimal": 'a decimal string (e.g. "10.50")'}
_PYTHON = {"string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,), "array": (list,),
           "object": (dict,)}
# Fields whose JSON value is a string (DRF parses some of them further: a date-time, a choice).
_STRING_FIELDS = (serializers.CharField, serializers.ChoiceField, serializers.DateTimeField, serializers.DateField,
                  serializers.TimeField, serializers.DurationField, serializers.UUIDField)


def field_schema(field: serializers.Field) -> Schema:
    """The JSON type `field` takes: {"type", "nullable", "format", "items", "properties",
    "additionalProperties"} as in OpenAPI; {} where any value is taken (a payload)."""
    documented = get_override(field, "field")
    if isinstance(documented, dict):
        return documented
    if isinstance(documented, serializers.Field):
        return {**field_schema(documented), "nullable": field.allow_null}
    return {**_schema_of(field), "nullable": field.allow_null}


def _schema_of(field: serializers.Field) -> Schema:
    if isinstance(field, serializers.ListSerializer):
        return {"type": "array", "items": field_schema(field.child) if field.child is not None else {}}
    if isinstance(field, serializers.Serializer):
        return {"type": "object", "properties": {name: field_schema(f) for name, f in field.fields.items()}}
    if isinstance(field, serializers.JSONField):
        return {}
    if isinstance(field, serializers.BooleanField):
        return {"type": "boolean"}
    if isinstance(field, serializers.IntegerField):
        return {"type": "integer"}
    if isinstance(field, (serializers.FloatField, serializers.DecimalField)):
        return {"type": "number"}
    if isinstance(field, serializers.ListField):
        return {"type": "array", "items": field_schema(field.child)}
    if isinstance(field, serializers.DictField):
        return {"type": "object", "additionalProperties": field_schema(field.child)}
    if isinstance(field, _STRING_FIELDS):
        return {"type": "string"}
    return {}


def wrong_types(schema: Schema, value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(dotted path, reason) for each value of `value` (and inside it) whose JSON type is not the
    one `schema` documents; a value of the right type is left to its field's own checks."""
    kind = schema.get("type")
    if kind is None or (value is None and schema.get("nullable")):
        return
    if value is None or isinstance(value, bool) != (kind == "boolean") or not isinstance(value, _PYTHON[kind]):
        yield path or "body", f"Expected {_expected(schema)}, not {_sent(value)}."
        return
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            yield from wrong_types(schema["items"], item, f"{path}.{index}" if path else str(index))
    elif isinstance(value, dict):
        properties, others = schema.get("properties", {}), schema.get("additionalProperties")
        for key, inner_value in value.items():
            inner = properties.get(key, others if isinstance(others, dict) else {})
            yield from wrong_types(inner, inner_value, f"{path}.{key}" if path else str(key))


def _expected(schema: Schema) -> str:
    words = _FORMAT_WORDS.get(schema.get("format", ""), _WORDS[schema["type"]])
    return f"{words} or null" if schema.get("nullable") else words


def _sent(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, float):
        # 5.0 and 1e2 are numbers Python reads as floats: not the integer a field documents.
        return "a number with a decimal point or an exponent"
    if isinstance(value, int):
        return "a number"
    return _WORDS["array" if isinstance(value, list) else "object" if isinstance(value, dict) else "string"]


# How a query parameter of each type is written; the refusal is the field's own "invalid" words.
_QUERY_WRITING: list[tuple[type[serializers.Field], re.Pattern[str], str | None]] = [
    (serializers.BooleanField, re.compile("true|false"), "true or false."),
    (serializers.IntegerField, re.compile("-?[0-9]+"), None),
    (serializers.FloatField, re.compile(r"[0-9]+(\.[0-9]+)?|\.[0-9]+"), None),
]


def miswritten_query(field: serializers.Field, value: str) -> str | None:
    """Why a query parameter's `value` is not written as `field`'s type is (None: it is)."""
    for kind, writing, reason in _QUERY_WRITING:
        if isinstance(field, kind):
            return None if writing.fullmatch(value) else reason or str(field.error_messages["invalid"])
    return None
