"""The Swarm, through one adapter: nodes, services, tasks as domain types.

    from dragonball.swarm import Swarm, Node, ServiceState, Task, SwarmError

`model` is pure (the types and their translation from the Engine API's JSON); `client` is
the adapter over the docker SDK, the only code that talks to the engine's Swarm. The
orchestrator (observe, rollout) and the portal (enrollment: join token, node labels,
manager promotions) both use it; tests give fakes speaking the same types.
"""

from dragonball.swarm.client import Swarm, transient_update_error
from dragonball.swarm.model import (SPEC_HASH_LABEL, Node, ServiceState, SwarmError, Task,
                                    parse_time)

__all__ = ["SPEC_HASH_LABEL", "Node", "ServiceState", "Swarm", "SwarmError", "Task",
           "parse_time", "transient_update_error"]
