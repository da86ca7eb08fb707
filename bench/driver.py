"""One measurement in a fresh process: `python -m bench.driver NAME PARAMS_JSON`.

The harness sets the environment (bench database, broker, queue name, settings module); the
result is the last line of stdout, as JSON.
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    import django

    from bench.procs import exit_on_sigterm

    exit_on_sigterm()
    django.setup()
    from bench.measures import MEASURES

    name, params = sys.argv[1], json.loads(sys.argv[2])
    result = MEASURES[name](**params)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
