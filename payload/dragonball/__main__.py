"""``python -m dragonball``, and the entry script of the frozen runtime (builder/runtime.py)."""

from dragonball.cli import main

raise SystemExit(main())
