"""The module spec: what a module folder must look like (docs/module-spec.md).

`scan` reads a folder into a `Listing` (the only part that touches the disk);
`validate` is pure and returns every problem at once; `load_module` combines
them and raises `ModuleError`. Standard library only (runs inside images).
"""

from dragonball.module.spec import (  # noqa: F401  (the package's interface)
    EVENTS, Entry, Listing, Module, Problem, load_module, scan, validate,
)
from dragonball.module.timeouts import DEFAULT_TIMEOUT, TimeoutPolicy  # noqa: F401
