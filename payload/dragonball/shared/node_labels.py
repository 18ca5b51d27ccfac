"""The node label every server the portal enrolled carries, and the constraint that keeps
every DragonBall task (the apps', their moving addresses', the agent's) on those servers.

Only a manager can label a node, and the portal labels a node only when its device
reported the join with its own device token (portal/api.py `/joined`): a machine that
joined the Swarm with a leaked join token is given no task, not even for the seconds
before the portal drains it (portal/strangers.py), so no secret of a task reaches it.
"""

ENROLLED = "io.dragonball.enrolled"
ENROLLED_CONSTRAINT = f"node.labels.{ENROLLED}==true"
