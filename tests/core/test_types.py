"""The code type-checks: mypy with django-stubs and the DRF stubs, as configured in pyproject.toml
([tool.mypy]), finds nothing. A wrong type in a service's call (a None where a row is needed, a
field that is not the model's) shows here before it shows as a 500."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


# mypy reads the code, not the database or the broker: one configuration's run checks it for both.
@pytest.mark.skipif(settings.IS_POSTGRES, reason="the same on every configuration: checked on the embedded one")
def test_mypy_finds_nothing(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache")],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout
