"""The login `dragonball login` keeps on a machine: the portals' URLs, the CA path, the token,
in ``$XDG_CONFIG_HOME/dragonball/portal.json`` (``~/.config`` by default), mode 0600 in a 0700
folder, written atomically (docs/portal.md, "The CLI from any machine"). The client it makes
is dragonball.portal_client's."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib

from dragonball.portal_client import TIMEOUT_S, PortalClient, portal_url
from dragonball.portal_errors import LOGIN_HINT, PortalAuthError, PortalInvalid


@dataclasses.dataclass(frozen=True)
class Login:
    """What `dragonball login` keeps: where the portal is (`url`, the one logged in to, and
    `portals`, every manager's, tried in order), its CA, the token. A login saved before
    `portals` existed has `url` alone."""

    url: str
    ca: str
    token: str
    username: str = "admin"
    expires_at: str = ""
    portals: tuple = ()

    def urls(self) -> list[str]:
        return list(dict.fromkeys([*self.portals, self.url] if self.portals else [self.url]))

    def client(self, timeout: float = TIMEOUT_S) -> PortalClient:
        return PortalClient(self.urls(), self.ca, token=self.token, timeout=timeout)


def portal_urls(text: str) -> list[str]:
    """Every portal URL of ``HOST[,HOST...]`` (`portal_url` of each); no address twice."""
    parts = [p for p in (p.strip() for p in text.split(",")) if p]
    if not parts:
        raise PortalInvalid("no portal address given",
                            "give HOST or HOST:PORT, or several: --portal 10.0.0.1,10.0.0.2")
    urls = [portal_url(p) for p in parts]
    return list(dict.fromkeys(urls))


def login_path(environ=os.environ) -> pathlib.Path:
    """``$XDG_CONFIG_HOME/dragonball/portal.json``, ``~/.config/...`` without it."""
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(
        environ.get("HOME") or os.path.expanduser("~"), ".config")
    return pathlib.Path(base) / "dragonball" / "portal.json"


def save_login(login: Login, path: pathlib.Path) -> None:
    """Write `login` 0600 (its folder 0700), atomically: no moment with a readable token."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(dataclasses.asdict(login), f, indent=2)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def saved_login(environ=os.environ) -> Login:
    """The login `dragonball login` saved; PortalAuthError (DENIED) when there is none."""
    found = load_login(login_path(environ))
    if found is None:
        raise PortalAuthError("not logged in to a portal from this machine",
                              "dragonball login --portal HOST --ca FILE (or run this on "
                              "the portal, as root)")
    return found


def load_login(path: pathlib.Path) -> Login | None:
    """The saved login, None when there is none; PortalAuthError when it is unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        found = {f.name: data[f.name] for f in dataclasses.fields(Login) if f.name in data}
        found["portals"] = tuple(str(u) for u in found.get("portals") or ())
        return Login(**found)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as e:
        raise PortalAuthError(f"the saved login {path} cannot be read ({e})",
                              f"remove it and {LOGIN_HINT}") from e
