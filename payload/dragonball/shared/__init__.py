"""The floor: facts every layer of DragonBall shares, and nothing else.

Ports (`ports`), where things live on a server (`paths`), enrollment codes (`codes`), CA
fingerprints (`fingerprints`), `host:port` text (`addresses`), YAML from people we do not
trust (`safe_yaml`) and the environment a child
process of the frozen runtime gets (`childenv`). Modules here import only the standard
library, `dragonball.errors` and well-kept third-party libraries; never another part of
DragonBall (docs/architecture.md; import-linter keeps it so).
"""
