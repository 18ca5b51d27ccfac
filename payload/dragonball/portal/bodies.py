"""The bodies the portal's enrollment API takes (pure pydantic models: what a caller may send,
checked before any route runs; portal/api.py has the routes)."""

from __future__ import annotations

import ipaddress

from pydantic import BaseModel, Field, field_validator

from dragonball import pki
from dragonball.shared import names, node_labels


class EnrollRequest(BaseModel):
    code: str = Field(min_length=1, max_length=64)
    hostname: str = Field(min_length=1, max_length=253)
    address: str = Field(min_length=1, max_length=64)
    # the device's agent identity: a signing request for the key it made (issue 13); the
    # certificate names the address and hostname enrolled, whatever the request says
    csr: str | None = Field(default=None, min_length=1, max_length=pki.CSR_MAX_BYTES)

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, value: str) -> str:
        verdict = names.hostname(value)
        if verdict is not True:
            raise ValueError(verdict)
        return value

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address") from None


class CodeRequest(BaseModel):
    ttl: str = Field(default="24h", min_length=1, max_length=16)


_TOKEN = r"^[A-Za-z0-9._+~-]+$"   # a version or release name (shared/node_labels.py)


class ReleaseRef(BaseModel):
    name: str = Field(min_length=1, max_length=node_labels.TOKEN_MAX, pattern=_TOKEN)
    version: str = Field(min_length=1, max_length=node_labels.TOKEN_MAX, pattern=_TOKEN)


class JoinedRequest(BaseModel):
    node_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9]+$")
    # what the server's kernel said at its install (shared/overlay.py); absent: not asked
    overlay_encryption: bool | None = None
    # which DragonBall and release the server runs (its node's labels); absent: unknown
    version: str | None = Field(default=None, min_length=1, max_length=node_labels.TOKEN_MAX,
                                pattern=_TOKEN)
    release: ReleaseRef | None = None
