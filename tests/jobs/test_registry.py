"""Registering a handler: a definition mistake is refused when its module is imported (at start-up),
naming the handler and what is wrong."""

from __future__ import annotations

import pytest

from jobs.handlers import get_handler, handler
from jobs.handlers.registry import restore, unregister
from pulse_site.errors import ValidationError


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


def test_a_second_function_of_the_same_name_in_the_same_module_is_refused(cleanup):
    """A handler copied within its module, its name and its function's name left as they were:
    the two read as one function registered again, and the second silently replaced the first."""
    cleanup("test.copied")

    def build(ctx):
        return "first"
    handler("test.copied", title="First", cost="0")(build)
    first_line = build.__code__.co_firstlineno

    def build(ctx):  # noqa: F811
        return "second"
    with pytest.raises(ValueError) as refused:
        handler("test.copied", title="Second", cost="0")(build)
    dotted = ("tests.jobs.test_registry.test_a_second_function_of_the_same_name_in_the_same_module_is_refused."
              "<locals>.build")
    assert str(refused.value) == (
        f"handler test.copied: the name is already registered by {dotted} (line {first_line}); "
        f"give {dotted} (line {build.__code__.co_firstlineno}) a name of its own")
    assert get_handler("test.copied").title == "First"


def test_the_same_function_registered_again_replaces_itself(cleanup):
    """A module imported twice (a reload) registers its functions again: that is no clash."""
    cleanup("test.again")
    handler("test.again", title="Once", cost="0")(noop)
    handler("test.again", title="Twice", cost="0")(noop)
    assert get_handler("test.again").title == "Twice"


@pytest.mark.parametrize(("options", "reason"), [
    ({"timeout": "600"}, "timeout must be a whole number of seconds, 1..3600 (got '600')"),
    ({"timeout": 1.5}, "timeout must be a whole number of seconds, 1..3600 (got 1.5)"),
    ({"timeout": -5}, "timeout must be a whole number of seconds, 1..3600 (got -5)"),
    ({"max_attempts": 0}, "max_attempts must be a whole number, 1..100 (got 0)"),
    ({"max_attempts": "3"}, "max_attempts must be a whole number, 1..100 (got '3')"),
    ({"backoff_base": -1}, "backoff_base must be a number of seconds, 0.001..86400 (a day) (got -1)"),
    ({"backoff_cap": 0}, "backoff_cap must be a number of seconds, 0.001..86400 (a day) (got 0)"),
    ({"retry_on": "network_error"}, "retry_on must be a list of error codes, not a string"),
    ({"cost": 0.5}, "cost: Give the amount as a string (e.g. \"0.10\"), not a float."),
    ({"cost": "-1"}, "cost: The amount cannot be negative."),
    ({"title": ""}, "title is required"),
    ({"schema": {"type": "array"}}, "the payload schema's type must be \"object\" (a payload is a JSON object)"),
    ({"schema": {"type": "objekt"}}, "invalid payload schema: 'objekt' is not valid under any of the given schemas"),
    ({"schema": True}, "the payload schema must be a dict, a JSON Schema of an object (got True)"),
    ({"max_attempts": 10**12}, "max_attempts must be a whole number, 1..100 (got 1000000000000)"),
    ({"backoff_base": 1e300}, "backoff_base must be a number of seconds, 0.001..86400 (a day) (got 1e+300)"),
    ({"backoff_cap": float("inf")}, "backoff_cap must be a number of seconds, 0.001..86400 (a day) (got inf)"),
    ({"backoff_base": 60, "backoff_cap": 10},
     "backoff_cap (10) is below backoff_base (60): the cap is the longest wait between two attempts"),
    ({"retry_on": {"timeout": True}}, "retry_on must be a list of error codes (got {'timeout': True})"),
    ({"retry_on": 5}, "retry_on must be a list of error codes (got 5)"),
    # set() of the list raised "TypeError: unhashable type: 'list'", naming neither handler nor field.
    ({"retry_on": [["network_error"]]}, "unknown error codes in retry_on: [['network_error']]"),
    # Registered, then every submit of it was a 500 (jsonschema's PointerToNowhere / Unresolvable).
    ({"schema": {"type": "object", "properties": {"a": {"$ref": "#/$defs/account"}}}},
     "invalid payload schema: the $ref '#/$defs/account' at properties.a points to nothing in the schema"),
    ({"schema": {"type": "object", "properties": {"a": {"$ref": "https://example.com/account.json"}}}},
     "invalid payload schema: the $ref 'https://example.com/account.json' at properties.a points to nothing "
     "in the schema"),
    # A string is truthy: daemon="no" made a daemon of it, restarted until cancelled.
    ({"daemon": "no"}, "daemon must be True or False (got 'no')"),
    ({"version": 2}, "version must be a string (got 2)"),
    ({"description": ["Builds"]}, "description must be a string (got ['Builds'])"),
    ({"cost": lambda: "1"},
     "the cost estimator tests.jobs.test_registry.<lambda>() must take one argument, the payload"),
    ({"cost": lambda payload, rate: "1"},
     "the cost estimator tests.jobs.test_registry.<lambda>(payload, rate) must take one argument, the payload"),
])
def test_a_definition_mistake_is_refused_naming_the_handler_and_the_field(cleanup, options, reason):
    cleanup("test.bad")
    with pytest.raises(ValueError) as refused:
        handler("test.bad", **{"title": "Bad", "cost": "0", **options})(noop)
    assert str(refused.value) == f"handler test.bad: {reason}"


def test_a_schema_whose_refs_resolve_is_registered_and_checks_payloads(cleanup):
    cleanup("test.ref")
    handler("test.ref", title="Ref", cost="0", schema={
        "type": "object", "$defs": {"account": {"type": "string"}},
        "properties": {"a": {"$ref": "#/$defs/account"}, "b": {"$ref": "#/properties/a"},
                       "rules": {"$ref": "https://json-schema.org/draft/2020-12/schema"}}})(noop)
    with pytest.raises(ValidationError) as refused:
        get_handler("test.ref").validate({"a": 1, "b": "x"})
    assert refused.value.fields == {"payload.a": ["1 is not of type 'string'"]}


def test_a_handler_needs_a_name(cleanup):
    cleanup("")
    with pytest.raises(ValueError) as refused:
        handler("", title="Nameless", cost="0")(noop)
    assert str(refused.value) == "handler '': the name must be a non-empty string"


def test_a_handler_module_that_is_not_there_stops_start_up_naming_the_variable(settings):
    """A worker machine whose PYTHONPATH lacked the directory of a handler module stopped with a
    bare `ModuleNotFoundError: No module named 'reports'` at the end of a long traceback, naming
    neither the variable nor where the module was looked for."""
    from django.core.exceptions import ImproperlyConfigured

    from jobs.handlers.registry import load_handler_modules

    settings.PULSE_HANDLER_MODULES = ["jobs.handlers.builtin", "pulse_no_such_reports"]
    with pytest.raises(ImproperlyConfigured) as refused:
        load_handler_modules()
    message = str(refused.value)
    assert "PULSE_HANDLER_MODULES" in message and "'pulse_no_such_reports'" in message
    assert "PYTHONPATH" in message


def test_a_handler_module_whose_own_import_fails_stops_start_up_with_its_own_error(settings, tmp_path, monkeypatch):
    # The module is there; what it imports is not: that error, with its traceback, is the news.
    (tmp_path / "pulse_broken_reports.py").write_text("import pulse_no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from jobs.handlers.registry import load_handler_modules

    settings.PULSE_HANDLER_MODULES = ["pulse_broken_reports"]
    with pytest.raises(ModuleNotFoundError, match="pulse_no_such_dependency"):
        load_handler_modules()


@pytest.mark.parametrize("name", ["reports build", "reports/build", "user=42", "a\nb", "rapport.été", ".hidden",
                                  "x" * 101])
def test_a_name_that_is_no_url_part_or_search_word_is_refused(cleanup, name):
    """A space, a slash, an "=" or a line break made the handler's page a 404 and its jobs
    unsearchable; a name over 100 characters did not fit the jobs' column (a 500 at submit)."""
    cleanup(name)
    with pytest.raises(ValueError) as refused:
        handler(name, title="Odd", cost="0")(noop)
    assert str(refused.value) == (f"handler {name!r}: the name may hold letters, digits, '.', '_' and '-', start "
                                  "with a letter or digit and be at most 100 characters (e.g. 'reports.build')")


def test_an_async_handler_is_refused_instead_of_completing_without_running(cleanup):
    """Called as a plain function it returned a coroutine at once: the job completed with
    "<coroutine object …>" as its result and the handler's body never ran."""
    cleanup("test.async")

    async def fetch(ctx):
        return "fetched"

    with pytest.raises(ValueError) as refused:
        handler("test.async", title="Async", cost="0")(fetch)
    assert str(refused.value) == (
        "handler test.async: the handler function tests.jobs.test_registry.test_an_async_handler_is_refused_instead_"
        "of_completing_without_running.<locals>.fetch is async: Pulse calls it in a worker, not in an event loop; "
        "write a plain def (run a coroutine inside it with asyncio.run)")


def test_a_handler_function_that_takes_no_context_is_refused(cleanup):
    cleanup("test.no_ctx")

    def no_ctx():
        return None

    with pytest.raises(ValueError, match=r"handler test.no_ctx: the handler function .*no_ctx\(\) must take one "
                                         r"argument, the job's context \(ctx\)"):
        handler("test.no_ctx", title="No context", cost="0")(no_ctx)


def test_a_generator_handler_is_refused_instead_of_completing_without_running(cleanup):
    """A `yield` in the body makes calling it return a generator at once: the job completed with
    "<generator object …>" as its result and nothing of the body ran."""
    cleanup("test.generator")

    def pages(ctx):
        yield 1

    with pytest.raises(ValueError) as refused:
        handler("test.generator", title="Generator", cost="0")(pages)
    assert str(refused.value).endswith(
        ".pages is a generator (a yield in its body): calling it runs nothing; return the result instead")


def test_a_handler_registered_after_start_up_is_warned_of_wherever_its_module_is(cleanup, caplog, settings):
    """Registered in a function or a module imported on the way, it exists only in the process
    that ran that code: the web processes refused its jobs as an unknown handler, or the workers
    sent them back, and nothing said why. A function of a listed module is no different: the
    module's import (at start-up, everywhere) does not run it."""
    cleanup("test.late")
    cleanup("test.listed_late")
    with caplog.at_level("WARNING", logger="pulse.jobs"):
        handler("test.late", title="Late", cost="0")(noop)
        settings.PULSE_HANDLER_MODULES = [*settings.PULSE_HANDLER_MODULES, "tests.jobs.test_registry"]
        handler("test.listed_late", title="Listed", cost="0")(noop)
    assert [r.getMessage() for r in caplog.records if r.name == "pulse.jobs"] == [
        f"handler {name} was registered after start-up by tests.jobs.test_registry (in a function, or a module "
        "imported on the way): only this process has it, so web processes without it refuse its jobs and workers "
        "without it send them back. Register it at the top level of a module listed in PULSE_HANDLER_MODULES."
        for name in ("test.late", "test.listed_late")]

def test_a_lower_max_job_timeout_caps_the_default_and_the_shipped_handlers_instead_of_stopping_start_up(
        cleanup, settings):
    """PULSE_MAX_JOB_TIMEOUT=1800 stopped every process at start-up: "handler pulse.sleep: timeout
    must be a whole number of seconds, 1..1800 (got 3600)", a handler the operator cannot edit."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env["PULSE_MAX_JOB_TIMEOUT"] = "45"
    shown = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c",
         "from jobs.handlers.registry import registered_handlers as r; "
         "print(sorted((h.name, h.timeout) for h in r(internal=True) "
         "if h.name.startswith(('pulse.', 'http.', 'demo.'))))"],
        cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert shown.stdout.strip().splitlines()[-1] == (
        "[('demo.report', 45), ('http.request', 45), ('pulse.fail', 45), ('pulse.noop', 45), "
        "('pulse.notify', 45), ('pulse.sleep', 45)]")

    cleanup("test.default_timeout")
    settings.PULSE_MAX_JOB_TIMEOUT = 45
    handler("test.default_timeout", title="Default", cost="0")(noop)
    assert get_handler("test.default_timeout").timeout == 45
    with pytest.raises(ValueError, match=r"timeout must be a whole number of seconds, 1\.\.45 \(got 46\)"):
        handler("test.default_timeout", title="Explicit", cost="0", timeout=46)(noop)
