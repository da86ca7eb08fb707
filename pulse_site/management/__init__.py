"""Operator commands of the project app (label "pulse")."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.core.management.base import CommandError

from pulse_site.errors import PulseError


@contextmanager
def refusals_as_command_errors() -> Iterator[None]:
    """Turn a service's refusal into CommandError: its message on stderr and a non-zero exit."""
    try:
        yield
    except PulseError as exc:
        raise CommandError(exc.message) from exc
