"""The application layer's operations answered as JSON documents: the REST API's contract
(docs/portal.md, "The API for apps"), made here once for the portal's API
(portal/apps_api.py) and for the commands run on the portal itself
(commands/apps_local.py), so a command says the same on either path.

Each function takes a `Control` and returns plain data (dicts, lists); an error is the
Control's own (AppNotApplied, UnknownService, AppSpecInvalid, ParamsInvalid, RolloutFailed,
...), raised as it is.
"""

from __future__ import annotations

from dragonball.app.errors import UnknownService
from dragonball.app.model import SHARED
from dragonball.orchestrator import params as params_mod
from dragonball.orchestrator import slotting

ACTIONS = ("start", "stop", "restart")


def known_service(control, app: str, name: str, slots: bool = True,
                  jobs: bool = False) -> None:
    """AppNotApplied or UnknownService unless `app` has a service `name` (or, with
    `slots`, a slot of that name: `store-2`; with `jobs`, a one-shot job or SHARED, the
    app's shared parameters: what has parameters)."""
    spec = control.spec_of(app)
    if name in spec.services or (jobs and (name in spec.jobs or name == SHARED)):
        return
    units = slotting.expand(spec, (), place_new=False)
    if not (slots and units.units_of(name)):
        raise UnknownService(name, list(spec.services) + (list(units.slots) if slots else []))


def masked(found: dict) -> dict:
    """`Control.get_params`' answer with every secret's value (and default) masked."""
    for item in found["parameters"].values():
        if item["secret"] and item["value"] != "":
            item["value"] = params_mod.MASK
        if item["secret"] and item["default"] != "":
            item["default"] = params_mod.MASK
    return found


def params(control, app: str, name: str) -> dict:
    """{app, service, revision, parameters: {key: {value, default, type, secret, set}}},
    secrets masked; a shared parameter a service takes also has `shared` (its name), and
    each of SHARED's (`@shared`) `used_by` (["api.db_password", ...])."""
    return masked(control.get_params(app, name))


def act(control, action: str, app: str, name: str) -> dict:
    """Start, stop or restart `name` with its subtree: {app, service, <action>: [names],
    notes?} (`notes`: what a stop left running, and why)."""
    if action == "stop":
        done, notes = control.stop(app, name)
        return {"app": app, "service": name, "stop": done, "notes": list(notes)}
    return {"app": app, "service": name, action: getattr(control, action)(app, name)}


def plan(control, text: str, file: str) -> dict:
    """What applying the spec text would do, checked against the cluster: Plan.to_dict.
    AppSpecInvalid (every problem) when it is not valid; nothing is changed."""
    return control.prepare_text(text, file).plan.to_dict()


def apply(control, prepared, file: str) -> dict:
    """Carry out what `control.prepare_text` read, observed and planned once:
    {app, plan, applied}."""
    done = control.execute(prepared)
    return {"app": prepared.spec.app, "plan": done.to_dict(), "applied": True}


def set_values(control, app: str, name: str, values: dict, unset: list,
               spec: tuple[str, str] | None = None) -> dict:
    """Set typed parameter values (ParamsInvalid: nothing stored), deliver them to every
    task: {ok, tasks: [{service, task, server, ok, detail, refused}], restored}. With
    `spec` ((text, file)) for an app not applied yet: kept for its first apply."""
    if spec is None or control.store.app(app) is not None:
        known_service(control, app, name, slots=False, jobs=True)
    return task_answers(control.set_param_values(app, name, values, unset, spec))


def task_answers(results) -> dict:
    """{ok, tasks, restored}: `restored` when a task refused the values, so the ones
    before were put back everywhere (ParamCalls.restore)."""
    return {"ok": all(r.ok for r in results), "tasks": [r.to_dict() for r in results],
            "restored": any(r.refused for r in results)}


def move(control, app: str, slot: str, server: str, data_lost: bool = False) -> dict:
    """Move a slot's data to `server` (orchestrator.moving): {app, slot, from, to, volumes,
    kept, data_lost}."""
    return control.move(app, slot, server, data_lost)


def remove(control, app: str, purge_data: bool = False) -> dict:
    """Take an app away (orchestrator/removing.py), its volumes only with `purge_data`
    (removing.purges said so): {app, services, network, params, volumes, kept, purge_data,
    problems}."""
    return control.remove_app(app, purge_data)


def volumes(control) -> dict:
    """{"volumes": [{server, name, app, size, in_use, owner, why}]}: every application
    volume, the slot owning it or why none does (orchestrator.volumes)."""
    return {"volumes": control.volumes()}


def image_holdings(control) -> dict:
    """{"servers": [{server, address, ready, total, held, missing, error}]}: which images
    of the applied apps each server holds (orchestrator.images)."""
    return {"servers": control.image_holdings()}


def remove_volume(control, server: str, name: str) -> dict:
    """Remove an app volume no slot owns: {name, removed}."""
    return control.remove_volume(server, name)
