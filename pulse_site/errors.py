"""One exception tree for every refusal Pulse makes.

Services raise these; each edge maps them once: DRF responses (pulse_site.api), dashboard
messages (views), WebSocket error frames (consumers) and management commands (CommandError).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager


class PulseError(Exception):
    code = "error"
    status = 400

    def __init__(self, message: str, *, code: str | None = None, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.fields = fields or {}

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, "fields": self.fields}


class ValidationError(PulseError):
    code = "validation_error"
    status = 400

    @classmethod
    def for_field(cls, field: str, reason: str) -> ValidationError:
        return cls(f"{field}: {reason}", fields={field: [reason]})


class FieldErrors:
    """The refusals of a body's or a form's fields, gathered so that one error names every bad
    field at once: `with errors.collect(): value = parse(...)` records a refusal instead of
    raising it, and `raise_any()` raises them together."""

    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = {}

    def add(self, exc: PulseError) -> None:
        for name, reasons in (exc.fields or {"non_field_errors": [exc.message]}).items():
            self.fields.setdefault(name, []).extend(reasons)

    def add_reason(self, field: str, reason: str) -> None:
        self.fields.setdefault(field, []).append(reason)

    @contextmanager
    def collect(self, *kinds: type[PulseError]) -> Iterator[None]:
        """Record a refusal of `kinds` (ValidationError unless given) raised inside."""
        try:
            yield
        except kinds or (ValidationError,) as exc:
            self.add(exc)

    def raise_any(self) -> None:
        if self.fields:
            first = next(iter(self.fields))
            message = self.fields[first][0]
            raise ValidationError(message if first == "non_field_errors" else f"{first}: {message}", fields=self.fields)


def choose_one_of(choices: Sequence[str]) -> str:
    """The refusal of a value that is not one of `choices`, in the words every list and form uses."""
    return f"Choose one of {', '.join(choices)}."


def check_choice(field: str, value: str, choices: Sequence[str]) -> None:
    """Refuse a given `value` (blank: not given) that is not one of `choices`, naming `field`."""
    if value and value not in choices:
        raise ValidationError.for_field(field, choose_one_of(choices))


class NotFound(PulseError):
    code = "not_found"
    status = 404


class PermissionDenied(PulseError):
    code = "permission_denied"
    status = 403


class Conflict(PulseError):
    code = "conflict"
    status = 409


class Unprocessable(PulseError):
    code = "unprocessable"
    status = 422
