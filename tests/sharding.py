"""A pytest plugin (`-p tests.sharding`, as manage.py pulse_test runs pytest) that shares the test
files between the n parts of one configuration running side by side (PULSE_TEST_SHARD="k/n").

A file's time varies with what runs beside it (a browser or a fault file takes a minute where
most take seconds, and longer when the other parts are in their heavy files too), so no split
made beforehand keeps the parts even. Instead the parts take files as they go: each runs the
next file no part has taken yet, the longest first by their seconds in tests/durations.json (a
file not in it counts as the median one), taking it by creating a file named after it in the
directory PULSE_TEST_CLAIMS that pulse_test makes for the run. Without that directory, part k
runs the k-th of n parts split beforehand by the same seconds.

With PULSE_TEST_RECORD set, a part writes the seconds of the files it ran into
tests/durations.json when it ends (`PULSE_TEST_RECORD=1 python3 manage.py pulse_test` measures
them all again)."""

from __future__ import annotations

import fcntl
import json
import os
import statistics
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

DURATIONS = Path(__file__).with_name("durations.json")

_seconds: defaultdict[str, float] = defaultdict(float)


def _file(nodeid: str) -> str:
    return nodeid.split("::")[0]


def read_durations(path: Path = DURATIONS) -> dict[str, float]:
    try:
        return {name: float(seconds) for name, seconds in json.loads(path.read_text()).items()}
    except (OSError, ValueError, AttributeError):
        return {}  # none yet, or unreadable: every file weighs the same


def longest_first(files: list[str], durations: dict[str, float]) -> list[tuple[str, float]]:
    """`files` with their expected seconds, the longest first (ties by name)."""
    known = [durations[name] for name in files if name in durations]
    usual = statistics.median(known) if known else 1.0
    weighed = [(name, durations.get(name, usual)) for name in files]
    return sorted(weighed, key=lambda pair: (-pair[1], pair[0]))


def parts(files: list[str], count: int, durations: dict[str, float]) -> list[list[str]]:
    """`files` in `count` parts of about equal time by `durations` (longest first, each to the part
    with the least so far); the same files and durations give the same parts in every process."""
    loads: list[tuple[float, int]] = [(0.0, n) for n in range(count)]
    split: list[list[str]] = [[] for _ in range(count)]
    for name, seconds in longest_first(files, durations):
        load, n = min(loads)
        split[n].append(name)
        loads[n] = (load + seconds, n)
    return split


def claim(directory: Path, name: str) -> bool:
    """Take test file `name` for this part: True for exactly one of the parts that ask."""
    try:
        os.close(os.open(directory / name.replace("/", "__"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def _shard() -> tuple[int, int] | None:
    shard = os.environ.get("PULSE_TEST_SHARD", "")
    if not shard:
        return None
    part, count = (int(number) for number in shard.split("/"))
    return part, count


def _claims() -> Path | None:
    directory = os.environ.get("PULSE_TEST_CLAIMS", "")
    return Path(directory) if directory and _shard() else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    shard = _shard()
    if shard is None or _claims() is not None:
        return
    part, count = shard
    mine = set(parts(sorted({_file(item.nodeid) for item in items}), count, read_durations())[part - 1])
    config.hook.pytest_deselected(items=[item for item in items if _file(item.nodeid) not in mine])
    items[:] = [item for item in items if _file(item.nodeid) in mine]


def _claimed_items(session: pytest.Session, directory: Path) -> Iterator[pytest.Item]:
    """The items of the files this part takes, file by file as it comes to them."""
    by_file: dict[str, list[pytest.Item]] = defaultdict(list)
    for item in session.items:
        by_file[_file(item.nodeid)].append(item)
    for name, _ in longest_first(list(by_file), read_durations()):
        if claim(directory, name):
            yield from by_file.pop(name)
    # What the other parts took is reported as deselected here, as a split made beforehand is.
    session.config.hook.pytest_deselected(items=[item for items in by_file.values() for item in items])


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> bool | None:
    """pytest's own loop (_pytest.main.pytest_runtestloop) over the files this part takes: the next
    file is taken as the last test of the one before starts, for that test's teardown depends on
    which test comes next (a module's fixtures end with it, a session's go on)."""
    directory = _claims()
    if directory is None or session.config.option.collectonly:
        return None  # pytest's own loop
    if session.testsfailed and not session.config.option.continue_on_collection_errors:
        return None  # pytest's own loop stops the session, saying why
    items = _claimed_items(session, directory)
    item = next(items, None)
    while item is not None:
        nextitem = next(items, None)
        item.config.hook.pytest_runtest_protocol(item=item, nextitem=nextitem)
        if session.shouldfail:
            raise session.Failed(session.shouldfail)
        if session.shouldstop:
            raise session.Interrupted(session.shouldstop)
        item = nextitem
    return True


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _seconds[_file(report.nodeid)] += report.duration


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not (os.environ.get("PULSE_TEST_RECORD") and _shard() and _seconds):
        return
    # The parts end at about the same time: each merges its files into the others' under a lock.
    with open(DURATIONS, "a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        merged = {**read_durations(), **{name: round(seconds, 1) for name, seconds in _seconds.items()}}
        handle.seek(0)
        handle.truncate()
        json.dump(dict(sorted(merged.items())), handle, indent=1)
        handle.write("\n")
