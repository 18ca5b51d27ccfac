"""The command layer: every `dragonball` sub-command's arguments, output and exit status.

Each module registers its commands (`register(commands)`) with the top-level parser in
`dragonball.cli` and calls into the layers below (installer, portal, orchestrator, app,
release, registry, wizard). Nothing below imports this package (docs/architecture.md;
import-linter keeps it so).
"""
