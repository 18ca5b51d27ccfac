"""Upgrading an installed cluster to a newer release, and back (issue 18, docs/upgrade.md):
`plan` what changes (pure), `state` the upgrade's journal and lock, `run` the checks, the
phases and the rollback."""
