"""Registering a handler: a definition mistake is refused when its module is imported (at start-up),
naming the handler and what is wrong."""

from __future__ import annotations

import pytest

from jobs.handlers import get_handler, handler
from jobs.handlers.registry import restore, unregister


@pytest.fixture
def cleanup():
    names: list[str] = []
    yield names.append
    for name in names:
        unregister(name)


def noop(ctx):
    return None


def test_a_second_handler_under_a_registered_name_is_refused_naming_both(cleanup):
    def other(ctx):
        return "other"

    shipped = get_handler("pulse.noop")
    try:
        with pytest.raises(ValueError) as refused:
            handler("pulse.noop", title="Mine", cost="0")(other)
    finally:
        restore(shipped)  # what the code before the refusal replaced it with
    assert str(refused.value) == (
        "handler pulse.noop: the name is already registered by jobs.handlers.builtin.noop; "
        "give tests.jobs.test_registry.test_a_second_handler_under_a_registered_name_is_refused_naming_both."
        "<locals>.other a name of its own")


def test_the_same_function_registered_again_replaces_itself(cleanup):
    """A module imported twice (a reload) registers its functions again: that is no clash."""
    cleanup("test.again")
    handler("test.again", title="Once", cost="0")(noop)
    handler("test.again", title="Twice", cost="0")(noop)
    assert get_handler("test.again").title == "Twice"
