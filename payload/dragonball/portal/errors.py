"""Errors of the portal's requests that its API, pages and commands share. The portal
layer's other errors live with what raises them (store, auth, jobs, swarm, settings)."""

from __future__ import annotations

from dragonball.errors import InvalidInput, PortalError, Unavailable

__all__ = ["CannotSign", "PortalError", "RequestInvalid"]


class RequestInvalid(PortalError, InvalidInput):
    """A request to the portal (an API body, a form field, a command's option) is not valid;
    nothing was changed."""


class CannotSign(PortalError, Unavailable):
    """This portal cannot sign a server's certificate now (the cluster CA unreadable here);
    another manager's portal may (503)."""
