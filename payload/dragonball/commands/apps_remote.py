"""The app operations through the portal's REST API (the `Apps` interface of
commands/app_access.py), with the login `dragonball login` saved (dragonball.portal_client).

The API's answers are the contract, returned as they come. A job (start, stop, restart,
apply) is followed to its end by polling it, each new event given once as it comes; a failed
job raises JobFailed with the job's own error, hint and category. Every other failure is a
ClientError whose category is the answer's HTTP status's (errors.CATEGORY_OF_HTTP), which is
the category of the error the portal's Control raised: the same exit status as on the portal.
"""

from __future__ import annotations

from dragonball.portal_client import PortalClient
from dragonball.portal_login import saved_login


def open_remote(args) -> RemoteApps:
    """RemoteApps with the saved login (PortalAuthError when there is none), following a
    job for up to `--timeout` seconds."""
    return RemoteApps(saved_login().client(), timeout=getattr(args, "timeout", 300.0))


class RemoteApps:
    """`Apps` over one PortalClient."""

    def __init__(self, portal: PortalClient, timeout: float = 300.0) -> None:
        self.portal, self.timeout = portal, timeout

    def close(self) -> None:
        self.portal.session.close()

    def apps(self) -> list[str]:
        return self.portal.apps()

    def services(self, app: str) -> list[dict]:
        return self.portal.services(app)["services"]

    def notifications(self, app: str, limit: int) -> list[dict]:
        return self.portal.notifications(app, limit)["notifications"]

    def params(self, app: str, service: str) -> dict:
        return self.portal.params(app, service)

    def set_params(self, app: str, service: str, values: dict, unset: list,
                   spec: tuple[str, str] | None = None) -> dict:
        return self.portal.set_params(app, service, values, unset, spec)

    def logs(self, app: str, service: str, tail: int) -> list[dict]:
        return self.portal.logs(app, service, tail)["tasks"]

    def plan(self, text: str, file: str) -> dict:
        return self.portal.plan(text, file)

    def apply(self, text: str, file: str, on_event) -> dict:
        return self._follow(self.portal.apply(text, file), on_event)

    def act(self, action: str, app: str, service: str, on_event) -> dict:
        return self._follow(self.portal.action(app, service, action), on_event)

    def move(self, app: str, slot: str, server: str, on_event, data_lost: bool = False) -> dict:
        return self._follow(self.portal.move(app, slot, server, data_lost), on_event)

    def remove(self, app: str, purge_data: str | None, on_event) -> dict:
        return self._follow(self.portal.remove_app(app, purge_data), on_event)

    def volumes(self) -> list[dict]:
        return self.portal.volumes()

    def image_holdings(self) -> list[dict]:
        return self.portal.image_holdings()

    def remove_volume(self, server: str, name: str) -> dict:
        return self.portal.remove_volume(server, name)

    def _follow(self, job_id: str, on_event) -> dict:
        """The job's result once it ended done (JobFailed when failed)."""
        job = self.portal.wait_job(job_id, on_event, timeout=self.timeout)
        return job.get("result") or {}
