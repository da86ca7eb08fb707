"""The handler registry: name → callable, payload schema, cost estimate, timeout, retry policy."""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import logging
import random
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError
from jsonschema.exceptions import ValidationError as JsonSchemaError
from jsonschema_specifications import REGISTRY as SPECIFICATIONS
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from budgets.money import grouped, parse_money, to_micros
from jobs.error_codes import DEFAULT_RETRY_ON, FLAGS
from jobs.jsonsafe import exception_text
from pulse_site.errors import FieldErrors, PulseError, ValidationError

if TYPE_CHECKING:
    from jobs.handlers.context import JobContext

log = logging.getLogger("pulse.jobs")
Estimator = Callable[[dict[str, Any]], Decimal | str | int]
DEFAULT_MODULES = ["jobs.handlers.builtin", "jobs.handlers.http"]


# A schema's `format` is only checked with a checker. jsonschema's own covers date, email, ipv4,
# ipv6, uuid and regex with what is installed; date-time needs a package Pulse does not ship, so
# it is checked here (RFC 3339: a date, a time and an offset). Other formats are not checked.
FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if len(value) < 20 or value[10] not in "Tt":
        return False
    return datetime.fromisoformat(value.replace("z", "Z")).tzinfo is not None


# JSON Schema keywords a payload field's rules are read from, and how each reads.
_RULES = (
    ("minimum", "at least {}"), ("exclusiveMinimum", "more than {}"),
    ("maximum", "at most {}"), ("exclusiveMaximum", "less than {}"),
    ("minLength", "at least {} characters"), ("maxLength", "at most {} characters"),
    ("pattern", "matches {}"), ("format", "a {}"),
    ("minItems", "at least {} items"), ("maxItems", "at most {} items"),
    ("maxProperties", "at most {} keys"),
)


@dataclass(frozen=True)
class PayloadField:
    key: str
    type: str
    required: bool
    default: str | None
    description: str
    rules: str

    @classmethod
    def of(cls, key: str, prop: dict[str, Any], required: bool) -> PayloadField:
        kind = prop.get("type")
        rules = [template.format(prop[word]) for word, template in _RULES if word in prop]
        if isinstance(prop.get("enum"), list):
            rules.insert(0, "one of " + ", ".join(json.dumps(v) for v in prop["enum"]))
        return cls(
            key=key,
            type=" or ".join(kind) if isinstance(kind, list) else (kind or "any JSON value"),
            required=required,
            default=json.dumps(prop["default"]) if "default" in prop else None,
            description=str(prop.get("description", "")),
            rules="; ".join(rules),
        )


@dataclass(frozen=True)
class Handler:
    name: str
    func: Callable[[JobContext], Any]
    title: str
    description: str
    schema: dict[str, Any]
    cost: Decimal | Estimator
    timeout: int
    max_attempts: int
    retry_on: frozenset[str]
    version: str
    backoff_base: float = 2.0
    backoff_cap: float = 600.0
    # None, "hold" or "refuse": one job of this handler at a time per team (jobs.gate).
    exclusive: str | None = None
    # Runs until cancelled: no timeout, restarted with backoff whenever it fails or returns.
    daemon: bool = False
    # Pulse's own work (a notification's delivery): its jobs run and list like any, but no team
    # names it (jobs.handlers.registry.get_public_handler).
    internal: bool = False
    validator: Draft202012Validator = field(repr=False, compare=False, default=None)

    @property
    def metered(self) -> bool:
        """Whether the team's budget admits and counts its jobs. Not Pulse's own (internal) work: a
        notification's delivery costs the team nothing, takes none of its running slots or starts,
        and must go out while the budget holds everything else (a budget alert, a job held by it)."""
        return not self.internal

    def validate(self, payload: object) -> dict[str, Any]:
        """The payload with the schema's defaults filled in (`with_defaults`), if it fits the
        schema; else ValidationError naming every bad field."""
        if not isinstance(payload, dict):
            raise ValidationError.for_field("payload", "The payload must be a JSON object.")
        body: dict[str, Any] = with_defaults(self.schema, payload)
        errors = FieldErrors()
        reasons = [found for error in self.validator.iter_errors(body) for found in _field_reasons(error)]
        for path, reason in sorted(reasons, key=lambda found: found[0]):
            if reason not in errors.fields.get(path, []):
                errors.add_reason(path, reason)
        errors.raise_any()
        return body

    def estimate_micros(self, payload: dict[str, Any]) -> int:
        """The cost estimate of one run, from the estimator or the declared fixed cost; a
        ValidationError under `payload` when the estimator raises or answers no amount."""
        try:
            raw = self.cost(payload) if callable(self.cost) else self.cost
        except PulseError:
            raise  # the estimator's own refusal, naming its field
        except Exception as exc:  # a handler's estimator is third-party code
            raise ValidationError.for_field(
                "payload", f"The cost estimator of {self.name} failed: {exception_text(exc)}") from None
        try:
            return to_micros(parse_money(raw, field="cost_estimate", written=False))
        except ValidationError as exc:
            # The handler's mistake, not the submitter's: say whose, under the field it came from.
            reason = exc.fields["cost_estimate"][0]
            raise ValidationError.for_field(
                "payload", f"The cost estimator of {self.name} answered {raw!r}, not an amount: {reason}") from None

    def backoff_seconds(self, attempt: int) -> float:
        """Exponential backoff with full jitter in its upper half: spreads a burst of retries."""
        # A daemon's attempt counts every restart: 2.0 ** 1024 is no float (OverflowError in the
        # settle). Past 2 ** 64 the ceiling is the cap for any base of a millisecond or more.
        doublings = min(max(0, attempt - 1), 64)
        ceiling = min(self.backoff_cap, self.backoff_base * 2.0 ** doublings)
        return random.uniform(ceiling / 2, ceiling)

    def payload_fields(self, *, nested: bool = False) -> list[PayloadField]:
        """The schema's top-level properties as a reader wants them: type, required, default, the
        description and the rules (range, length, choices) in words. `nested`: each followed by
        the fields inside it, named by their path (`options.format`, `rows[].name`)."""
        return [PayloadField.of(path, prop, required) for path, prop, required in _properties(self.schema, "", nested)]

    @property
    def cost_is_fixed(self) -> bool:
        return not callable(self.cost)

    def cost_text(self) -> str:
        """The cost of one run in words: the fixed amount, or how the estimator reads the payload."""
        if self.cost_is_fixed:
            return grouped(format(self.cost, "f"))
        how = (self.cost.__doc__ or "").strip().split("\n")[0]
        return f"Estimated from the payload{': ' + how if how else ''}"

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "version": self.version,
            "schema": self.schema,
            "timeout": self.timeout,
            "max_attempts": self.max_attempts,
            "retry_on": sorted(self.retry_on),
            "cost": format(self.cost, "f") if self.cost_is_fixed else None,
            "exclusive": self.exclusive,
            "daemon": self.daemon,
        }


def with_defaults(schema: dict[str, Any], value: Any) -> Any:
    """`value` with each property the schema gives a `default` and the value leaves out set to
    (a copy of) that default, in nested objects and in arrays' objects too (as the handler's page
    lists them); a new value, the given one is left as it is."""
    if isinstance(value, list):
        items = schema.get("items")
        return [with_defaults(items, item) for item in value] if isinstance(items, dict) else value
    props = schema.get("properties")
    if not isinstance(value, dict) or not isinstance(props, dict):
        return value
    out = dict(value)
    for key, prop in props.items():
        if not isinstance(prop, dict):
            continue
        if key not in out and "default" in prop:
            out[key] = copy.deepcopy(prop["default"])
        if key in out:
            out[key] = with_defaults(prop, out[key])
    return out


def _properties(schema: dict[str, Any], prefix: str, nested: bool
                ) -> Iterator[tuple[str, dict[str, Any], bool]]:
    """(path, property schema, required) of each property of the payload; `nested`: each followed
    by those of its array's objects (`key[].x`) and its own (`key.x`), where with_defaults reaches."""
    props = schema.get("properties")
    if not isinstance(props, dict):
        return
    required = schema.get("required")
    required = set(required) if isinstance(required, list) else set()
    for key, prop in props.items():
        prop = prop if isinstance(prop, dict) else {}
        yield prefix + key, prop, key in required
        if not nested:
            continue
        items = prop.get("items")
        if isinstance(items, dict):
            yield from _properties(items, f"{prefix}{key}[].", nested)
        yield from _properties(prop, f"{prefix}{key}.", nested)


def _field_reasons(error: JsonSchemaError) -> list[tuple[str, str]]:
    """Where a payload error is and why. jsonschema puts a missing required property and an
    unexpected one at the object holding them; each is named at its own path here, so the API
    and the form point at the field itself."""
    parts = [str(part) for part in error.absolute_path]
    instance = error.instance if isinstance(error.instance, dict) else {}
    if error.validator == "required" and isinstance(error.validator_value, list):
        return [(_payload_path([*parts, key]), "Required.") for key in error.validator_value if key not in instance]
    if error.validator == "additionalProperties" and error.validator_value is False:
        return [(_payload_path([*parts, key]), "Not a field of this handler's payload.")
                for key in _unexpected_keys(instance, error.schema)]
    return [(_payload_path(parts), _message(error))]


# How much of a rejected value a message says back: a 1 MB text over its maxLength is not
# echoed whole into the API's answer, the form and the logs.
SHOWN_VALUE = 60


def _message(error: JsonSchemaError) -> str:
    """jsonschema's message (which starts with the value, written as Python's repr), the value cut
    to SHOWN_VALUE characters when longer, a text's length said; a pattern quoted as the schema
    writes it, as the form's hint and the handler's page do (repr doubles its backslashes)."""
    message = error.message
    if error.validator == "pattern" and isinstance(error.validator_value, str):
        message = message.replace(repr(error.validator_value), f"'{error.validator_value}'")
    written = repr(error.instance)
    if len(written) <= SHOWN_VALUE + 2 or written not in message:
        return message
    cut = written[:SHOWN_VALUE + 1] + "…"
    if isinstance(error.instance, str):
        cut += f" ({len(error.instance):,} characters)"
    return message.replace(written, cut, 1)


def _unexpected_keys(instance: dict[str, Any], schema: Any) -> list[str]:
    schema = schema if isinstance(schema, dict) else {}
    known = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    patterns = schema.get("patternProperties") if isinstance(schema.get("patternProperties"), dict) else {}
    return [key for key in instance
            if key not in known and not any(re.search(pattern, key) for pattern in patterns)]


def _payload_path(parts: list[str]) -> str:
    return ".".join(["payload", *parts])


_registry: dict[str, Handler] = {}
# Set once load_handler_modules has imported every listed module (the end of start-up).
_started = False


def handler(
    name: str,
    *,
    title: str,
    cost: Decimal | str | int | Estimator,
    schema: dict[str, Any] | None = None,
    description: str = "",
    timeout: int | None = None,
    max_attempts: int = 3,
    retry_on: Iterable[str] | None = None,
    version: str = "1",
    backoff_base: float = 2.0,
    backoff_cap: float = 600.0,
    exclusive: str | None = None,
    daemon: bool = False,
    internal: bool = False,
) -> Callable[[Callable[[JobContext], Any]], Callable[[JobContext], Any]]:
    """Register a handler. `cost` is required: a fixed amount or a function of the payload,
    so that no job is ever silently estimated at zero.

    `exclusive`: while one of the team's jobs of this handler runs, another is held until it
    ends ("hold") or refused at submit with 409 ("refuse").

    `daemon`: a long-running handler. It has no timeout, keeps its lease by heartbeats, and is
    restarted with backoff when it fails or returns (an unexpected stop); cancelling ends it. It
    should watch `ctx.cancelled()` (or `ctx.sleep()`) and return when asked.

    `internal`: only Pulse's own code submits it (jobs.services.job_submit(internal=True)); a team
    naming it anywhere (a submit, a schedule, a cap, a rule) is answered as for an unknown name,
    and it is not listed."""
    schema = {"type": "object"} if schema is None else schema
    timeout = shipped_timeout(DEFAULT_TIMEOUT) if timeout is None else timeout
    _check_definition(name, title=title, schema=schema, retry_on=retry_on, timeout=timeout,
                      max_attempts=max_attempts, backoff_base=backoff_base, backoff_cap=backoff_cap,
                      exclusive=exclusive, description=description, version=version,
                      daemon=daemon, internal=internal)
    if callable(cost):
        _check_callable(name, "the cost estimator", cost, takes="the payload")
    fixed_cost = cost if callable(cost) else _fixed_cost(name, cost)

    def register(func: Callable[[JobContext], Any]) -> Callable[[JobContext], Any]:
        _check_callable(name, "the handler function", func, takes="the job's context (ctx)")
        _refuse_a_second_function(name, func)
        _warn_if_late(name, func)
        _registry[name] = Handler(
            name=name,
            func=func,
            title=title,
            description=description or (func.__doc__ or "").strip(),
            schema=schema,
            cost=fixed_cost,
            timeout=timeout,
            max_attempts=max_attempts,
            retry_on=frozenset(DEFAULT_RETRY_ON if retry_on is None else retry_on),
            version=version,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
            exclusive=exclusive,
            daemon=daemon,
            internal=internal,
            validator=Draft202012Validator(schema, format_checker=FORMATS),
        )
        return func

    return register


DEFAULT_TIMEOUT = 300


def shipped_timeout(seconds: int) -> int:
    """A timeout of Pulse's own (the default, a shipped handler's) within PULSE_MAX_JOB_TIMEOUT: an
    operator who lowers it is not stopped at start-up by a handler they cannot edit."""
    return min(seconds, settings.PULSE_MAX_JOB_TIMEOUT)


# A handler's name is a URL part (/handlers/<name>/), a word of the jobs search and a column of
# 100 characters: a slash, a space, an "=" or a line break in it broke one of those.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
MAX_ATTEMPTS = 100
# Retries further apart than a day are a schedule's work, not a retry policy's.
MAX_BACKOFF_SECONDS = 86_400.0
MIN_BACKOFF_SECONDS = 0.001


def _check_definition(name: object, *, title: object, schema: object, retry_on: object,
                      timeout: object, max_attempts: object, backoff_base: object, backoff_cap: object,
                      exclusive: object, description: object, version: object,
                      daemon: object = False, internal: object = False) -> None:
    """Refuse a definition mistake when the handler's module is imported (at start-up), naming
    the handler and the field, rather than at its first job."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"handler {name!r}: the name must be a non-empty string")
    if not NAME_RE.fullmatch(name):
        raise ValueError(f"handler {name!r}: the name may hold letters, digits, '.', '_' and '-', start with a "
                         "letter or digit and be at most 100 characters (e.g. 'reports.build')")
    if not isinstance(title, str) or not title.strip():
        raise ValueError(f"handler {name}: title is required")
    for field_name, text in (("description", description), ("version", version)):
        if not isinstance(text, str):
            raise ValueError(f"handler {name}: {field_name} must be a string (got {text!r})")
    if not isinstance(schema, dict):
        raise ValueError(f"handler {name}: the payload schema must be a dict, a JSON Schema of an object "
                         f"(got {schema!r})")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ValueError(f"handler {name}: invalid payload schema: {exc.message}") from None
    _check_refs(name, schema)
    if schema.get("type", "object") != "object":
        raise ValueError(f'handler {name}: the payload schema\'s type must be "object" (a payload is a JSON object)')
    for path, prop, _ in _properties(schema, "", nested=True):
        # A default is filled into payloads that leave the field out: one that does not fit its own
        # field would refuse every such payload with an error the submitter cannot mend.
        if "default" not in prop:
            continue
        wrong = next(Draft202012Validator(prop, format_checker=FORMATS).iter_errors(prop["default"]), None)
        if wrong is not None:
            raise ValueError(f"handler {name}: the default of payload.{path} does not fit it: {wrong.message}")
    if isinstance(retry_on, str):
        raise ValueError(f"handler {name}: retry_on must be a list of error codes, not a string")
    if retry_on is not None and not isinstance(retry_on, (list, tuple, set, frozenset)):
        raise ValueError(f"handler {name}: retry_on must be a list of error codes (got {retry_on!r})")
    # Not set(retry_on): a list inside it is unhashable, a TypeError naming neither handler nor field.
    unknown = [code for code in retry_on or () if not isinstance(code, str) or code not in FLAGS]
    if unknown:
        raise ValueError(f"handler {name}: unknown error codes in retry_on: {sorted(unknown, key=repr)}")
    if not _whole(timeout) or not 1 <= timeout <= settings.PULSE_MAX_JOB_TIMEOUT:  # type: ignore[operator]
        raise ValueError(f"handler {name}: timeout must be a whole number of seconds, "
                         f"1..{settings.PULSE_MAX_JOB_TIMEOUT} (got {timeout!r})")
    if not _whole(max_attempts) or not 1 <= max_attempts <= MAX_ATTEMPTS:  # type: ignore[operator]
        raise ValueError(f"handler {name}: max_attempts must be a whole number, 1..{MAX_ATTEMPTS} "
                         f"(got {max_attempts!r})")
    for field_name, seconds in (("backoff_base", backoff_base), ("backoff_cap", backoff_cap)):
        if (isinstance(seconds, bool) or not isinstance(seconds, (int, float))
                or not MIN_BACKOFF_SECONDS <= seconds <= MAX_BACKOFF_SECONDS):
            raise ValueError(f"handler {name}: {field_name} must be a number of seconds, {MIN_BACKOFF_SECONDS:g}.."
                             f"{MAX_BACKOFF_SECONDS:g} (a day) (got {seconds!r})")
    if backoff_cap < backoff_base:  # type: ignore[operator]
        raise ValueError(f"handler {name}: backoff_cap ({backoff_cap!r}) is below backoff_base ({backoff_base!r}): "
                         "the cap is the longest wait between two attempts")
    if exclusive not in (None, "hold", "refuse"):
        raise ValueError(f"handler {name}: exclusive must be None, 'hold' or 'refuse'")
    for field_name, flag in (("daemon", daemon), ("internal", internal)):
        # A string is truthy: daemon="no" would make a daemon of it.
        if not isinstance(flag, bool):
            raise ValueError(f"handler {name}: {field_name} must be True or False (got {flag!r})")


# Keywords whose values are data, not schemas: a {"$ref": …} inside a default is no reference.
_DATA_KEYWORDS = frozenset({"const", "default", "enum", "examples"})


def _check_refs(name: str, schema: dict[str, Any]) -> None:
    """Every `$ref` resolves within the schema. check_schema does not look: one pointing to
    nothing (or to a URL, never fetched) was registered, then every submit of it raised in
    jsonschema (a 500)."""
    # The registry jsonschema validates with: it knows the JSON Schema meta-schemas by their URLs.
    resolver = SPECIFICATIONS.resolver_with_root(DRAFT202012.create_resource(schema))
    for path, ref in _refs(schema, []):
        try:
            resolver.lookup(ref)
        except Unresolvable:
            where = ".".join(path) or "the top level"
            raise ValueError(f"handler {name}: invalid payload schema: the $ref {ref!r} at {where} points to "
                             "nothing in the schema") from None


def _refs(node: object, path: list[str]) -> Iterator[tuple[list[str], str]]:
    """(path, $ref) of every reference in the schema, outside data keywords and below no `$id` of
    its own (whose references resolve against it)."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from _refs(item, [*path, str(index)])
    if not isinstance(node, dict) or (path and "$id" in node):
        return
    if isinstance(node.get("$ref"), str):
        yield path, node["$ref"]
    for key, value in node.items():
        if key not in _DATA_KEYWORDS:
            yield from _refs(value, [*path, key])


def _check_callable(name: str, what: str, func: object, *, takes: str) -> None:
    """A handler function or estimator Pulse can call: with one argument, and neither `async def`
    nor a generator (either returns at once without running: its job completed having done nothing)."""
    if not callable(func):
        raise ValueError(f"handler {name}: {what} must be a function (got {func!r})")
    if inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func):
        raise ValueError(f"handler {name}: {what} {_dotted(func)} is async: Pulse calls it in a worker, not in "
                         "an event loop; write a plain def (run a coroutine inside it with asyncio.run)")
    if inspect.isgeneratorfunction(func):
        raise ValueError(f"handler {name}: {what} {_dotted(func)} is a generator (a yield in its body): calling it "
                         "runs nothing; return the result instead")
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return  # a builtin or C callable: nothing to read
    try:
        signature.bind(object())
    except TypeError:
        raise ValueError(f"handler {name}: {what} {_dotted(func)}{signature} must take one argument, "
                         f"{takes}") from None


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _fixed_cost(name: str, cost: object) -> Decimal:
    try:
        return parse_money(cost, field="cost", written=False)
    except ValidationError as exc:
        raise ValueError(f"handler {name}: {exc.message}") from None


def _refuse_a_second_function(name: str, func: Callable[..., Any]) -> None:
    """Two handlers under one name would leave whichever module was imported last running every
    job of it. The same function again (its module imported twice, a reload) is no clash; one of
    the same dotted name elsewhere in its file (a handler copied within its module) is."""
    existing = _registry.get(name)
    if existing is None:
        return
    if _dotted(existing.func) != _dotted(func):
        raise ValueError(f"handler {name}: the name is already registered by {_dotted(existing.func)}; "
                         f"give {_dotted(func)} a name of its own")
    if _line(existing.func) != _line(func):
        raise ValueError(f"handler {name}: the name is already registered by {_dotted(existing.func)} (line "
                         f"{_line(existing.func)}); give {_dotted(func)} (line {_line(func)}) a name of its own")


def _line(func: Callable[..., Any]) -> int | None:
    code = getattr(func, "__code__", None)
    return getattr(code, "co_firstlineno", None)


def _warn_if_late(name: str, func: Callable[..., Any]) -> None:
    """Every process imports the listed modules at start-up; a handler registered later (in a
    function, even one of a listed module, or a module imported on the way) is this process's alone."""
    if not _started or name in _registry:
        return
    log.warning("handler %s was registered after start-up by %s (in a function, or a module imported on the way): "
                "only this process has it, so web processes without it refuse its jobs and workers without it send "
                "them back. Register it at the top level of a module listed in PULSE_HANDLER_MODULES.",
                name, getattr(func, "__module__", "?"))


def _dotted(func: Callable[..., Any]) -> str:
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"


def get_handler(name: str) -> Handler:
    """The handler registered under `name`, internal ones too (a job's own handler, Pulse's own
    submit), or the ValidationError a submit answers with."""
    found = find_handler(name)
    if found is None:
        raise _unknown(name, field="handler")
    return found


def get_public_handler(name: str, *, field: str = "handler") -> Handler:
    """The handler a team may name `name`, or the ValidationError (naming `field`) of an unknown
    name: an internal handler is refused in the same words, so no team submits, schedules, caps
    or filters by one. Every place a team names a handler asks here."""
    found = find_public_handler(name)
    if found is None:
        raise _unknown(name, field=field)
    return found


def _unknown(name: str, *, field: str) -> ValidationError:
    return ValidationError(f"{field}: no handler is called '{name}'.", code="unknown_handler",
                           fields={field: [f"Unknown handler '{name}'."]})


def find_handler(name: str) -> Handler | None:
    """The handler registered under `name`, or None (a job or schedule may outlive its handler)."""
    return _registry.get(name)


def find_public_handler(name: str) -> Handler | None:
    """The handler a team may name `name` (its pages and links), or None, for an internal one too."""
    found = _registry.get(name)
    return found if found is not None and not found.internal else None


def registered_handlers(*, internal: bool = False) -> list[Handler]:
    """The handlers a team may name, by name; `internal`: Pulse's own too (a jobs list filters by
    them: their jobs are the team's)."""
    return sorted((h for h in _registry.values() if internal or not h.internal), key=lambda h: h.name)


def unregister(name: str) -> None:
    _registry.pop(name, None)


def restore(spec: Handler) -> None:
    """Register a handler again as it was (tests put back what a temporary handler replaced)."""
    _registry[spec.name] = spec


def load_handler_modules() -> None:
    global _started
    for module in getattr(settings, "PULSE_HANDLER_MODULES", DEFAULT_MODULES):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is None or not (module == exc.name or module.startswith(f"{exc.name}.")):
                raise  # the module is there; something it imports is not: that error is the news
            raise ImproperlyConfigured(
                f"PULSE_HANDLER_MODULES names {module!r}, which this process cannot import: no module "
                f"{exc.name!r} on its Python path (the project's directory and PYTHONPATH). Every web, "
                "worker and ticker process needs every handler module.") from exc
    _started = True
