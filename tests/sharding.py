"""A pytest plugin (`-p tests.sharding`, as manage.py pulse_test runs pytest): with
PULSE_TEST_SHARD="k/n" only the tests of every n-th file from the k-th run, the files in name
order, so that n parts of one configuration share the machine's cores."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    shard = os.environ.get("PULSE_TEST_SHARD", "")
    if not shard:
        return
    part, count = (int(number) for number in shard.split("/"))
    files = sorted({item.nodeid.split("::")[0] for item in items})
    mine = {name for n, name in enumerate(files) if n % count == part - 1}
    config.hook.pytest_deselected(items=[item for item in items if item.nodeid.split("::")[0] not in mine])
    items[:] = [item for item in items if item.nodeid.split("::")[0] in mine]
