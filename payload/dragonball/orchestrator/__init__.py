"""The application layer on Swarm (docs/orchestrator.md): apply an app spec, start and stop
services with their subtree, parameters, notifications.

Pure parts (names, service specs, rollout decisions, parameter coercion, state transitions)
are kept apart from the adapters that touch the engine, the agents and the store.
"""
