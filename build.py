#!/usr/bin/env python3
"""Build DragonBall: ``python build.py [base|examples|all] [--debug]``.

Run it with the project's virtual environment (``.venv/bin/python build.py``,
set up by ``sudo bash scripts/setup.sh``). The pipeline lives in builder/.
"""

import sys

try:
    from builder.cli import main
except ModuleNotFoundError as e:  # run by a python3 without the project installed
    sys.exit(f"build.py: cannot import {e.name!r}: run it with the project's venv, "
             f".venv/bin/python build.py (create it with 'sudo bash scripts/setup.sh')")

if __name__ == "__main__":
    sys.exit(main())
