#!/usr/bin/env python3
"""Django's command-line utility, plus the bootstrap behind the README's two commands.

`python3 manage.py pulse_up` and `python3 manage.py pulse_test` work on a machine with only
Python: run outside the project's virtualenv, they create `.venv`, install the project into it
when pyproject.toml changed, and re-run themselves with the virtualenv's Python.
"""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BOOTSTRAP_COMMANDS = {"pulse_up", "pulse_test"}


def _venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _bootstrap() -> None:
    python = _venv_python()
    if not python.exists():
        print("Creating the virtualenv in .venv …", flush=True)
        subprocess.check_call([sys.executable, "-m", "venv", str(VENV)])
    stamp = VENV / ".pulse-installed"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != digest:
        print("Installing Pulse and its dependencies into .venv …", flush=True)
        subprocess.check_call([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
        subprocess.check_call([str(python), "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[dev]"])
        stamp.write_text(digest)
    os.execv(str(python), [str(python), str(ROOT / "manage.py"), *sys.argv[1:]])


def main() -> None:
    inside_venv = Path(sys.prefix).resolve() == VENV.resolve()
    if len(sys.argv) > 1 and sys.argv[1] in BOOTSTRAP_COMMANDS and not inside_venv:
        _bootstrap()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pulse_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
