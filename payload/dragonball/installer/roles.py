"""Which steps an install runs on each role, and in which order: the one place that says it.

    every server  os.kernel, os.limits, [os.selinux]   OS preparation (osprep.py, apply.py)
                  engine.use | engine.*                the engine (engine/)
                  os.firewall                          the role's ports (shared/ports.py)
                                                       through firewalld or ufw, if active
                  os.firewall_chain                    the DRAGONBALL chain: cluster ports
                                                       for members only (installer/firewall.py)
                  images.load                          the release's images from this .bin
                                                       (installer/images.py): tasks pinned
                                                       by image ID start on any server
                  release.record                       which release this server runs, and
                                                       on the portal the app it carries
                                                       (installer/release_record.py)
    portal        portal.swarm ... portal.service      installer/portal/
                  agent.params, agent.pki,             installer/agent.py: pulled from the
                  agent.service                        registry portal.images filled
                  portal.first_code                    printed once all of the above answers
    device        join.ca ... join.registry            installer/join.py
                  firewall.members                     the managers the enrollment listed
                  agent.params                         before the node joins: the agent's
                                                       task may start there at once
                  join.swarm, join.report
                  portal.runtime,                      the runtime and `dragonball`, and the
                  portal.standby                       portal's unit waiting to be a manager
                                                       (installer/standby.py)
                  agent.ready                          its node agent healthy: the portal can
                                                       drive it once install says done

The firewall comes after the engine, whose first start makes Docker's own chains.

`installer/install.py` plans from `STEPS` (or `BASE_ONLY`, for tests of OS preparation
and the engine alone). Importing this module imports every step module, and with them
every undo kind (`@undoer`): reset imports it for that, since a journal may hold kinds a
run of this server's role would not plan.
"""

from __future__ import annotations

from dragonball.installer import agent, firewall, images, osprep, release_record
from dragonball.installer.engine import apply as engine_apply
from dragonball.installer.join import DeviceJoin
from dragonball.installer.plan import InstallContext, RoleSteps, prep_step
from dragonball.installer.portal import first_code_step, portal_steps
from dragonball.installer.portal import service as portal_service
from dragonball.installer.steps import Step


def base_steps(ctx: InstallContext) -> list[Step]:
    """Every server's: OS preparation, the engine, the role's firewall ports and chain."""
    consent = bool(getattr(ctx.answers, "selinux_permissive", False))
    return [*(prep_step(ctx, prep) for prep in osprep.os_preps(ctx.facts, consent)),
            *engine_apply.engine_steps(ctx),
            prep_step(ctx, osprep.firewall_prep(ctx.facts, ctx.role)),
            firewall.chain_step(ctx)]


def for_portal(ctx: InstallContext) -> list[Step]:
    """The first server: a cluster of one with its registry, node agent and portal."""
    return [*base_steps(ctx),
            images.images_step(ctx),
            release_record.record_step(ctx),
            *portal_steps(ctx),
            *agent.agent_steps(ctx),
            first_code_step(ctx)]


def for_device(ctx: InstallContext) -> list[Step]:
    """Every other server: enrolled on the portal, then in its Swarm."""
    join = DeviceJoin(ctx)  # one for all its steps: they share the pinned CA and enrollment
    return [*base_steps(ctx),
            images.images_step(ctx),
            release_record.record_step(ctx),
            *join.enroll_steps(),
            firewall.members_step(ctx),
            agent.params_step(ctx),
            *join.swarm_steps(),
            *standby_steps(ctx),
            agent.ready_step(ctx)]


def standby_steps(ctx: InstallContext) -> list[Step]:
    """A device's: the runtime, and the portal's unit in standby (any server may become a
    Swarm manager, and every manager runs a portal)."""
    return [Step("portal.runtime", "copy the runtime to /opt/dragonball/runtime",
                 lambda: portal_service.install_runtime(ctx)),
            Step("portal.standby", "the portal, in standby until this server is a manager",
                 lambda: portal_service.start_standby(ctx))]


#: role -> its steps, in order
STEPS: dict[str, RoleSteps] = {"portal": for_portal, "device": for_device}
#: OS preparation, the engine and the firewall alone, whatever the role (install
#: --base-only: the e2e test of that layer on a bare server).
BASE_ONLY: dict[str, RoleSteps] = {role: base_steps for role in STEPS}
