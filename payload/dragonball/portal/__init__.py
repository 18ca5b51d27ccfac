"""The portal: the cluster's HTTPS API (enrollment first), its SQLite store, its CLI.

    from dragonball.portal.api import create_app      # FastAPI app over a Store
    from dragonball.portal.store import Store         # SQLite (WAL), secrets hashed
    dragonball portal serve --config FILE            # uvicorn, TLS, the portal's address
    dragonball enroll [--ttl 24h] [--json]           # a one-time code + the join command

docs/enrollment.md is the contract with joining servers; docs/portal.md the rest.
`store`, `settings` and `swarm.plan_promotions` are pure or local; the engine is reached
through the one Swarm adapter (dragonball.swarm), made in `wiring`; `api` imports FastAPI,
`serve` uvicorn.
"""
