"""Errors of the portal's requests that its API, pages and commands share. The portal
layer's other errors live with what raises them (store, auth, jobs, swarm, settings)."""

from __future__ import annotations

from dragonball.errors import InvalidInput, PortalError

__all__ = ["PortalError", "RequestInvalid"]


class RequestInvalid(PortalError, InvalidInput):
    """A request to the portal (an API body, a form field, a command's option) is not valid;
    nothing was changed."""
