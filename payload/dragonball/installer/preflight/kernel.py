"""Kernel features the engine and Swarm need, and how to tell whether a kernel has them (pure).

A feature is *active* (in use now: a loaded module, a file system the kernel
lists, a /proc entry only the feature creates), *builtin* (compiled in), *module*
(can be loaded: the engine loads it when it starts), *missing* (a module list or
the kernel's config was read and it is not there) or *unknown* (nothing was
readable: a container without /lib/modules and without the kernel config).
"""

from __future__ import annotations

import dataclasses

ACTIVE, BUILTIN, MODULE, MISSING, UNKNOWN = "active", "builtin", "module", "missing", "unknown"


@dataclasses.dataclass(frozen=True)
class Feature:
    name: str
    modules: tuple[str, ...]  # any one of them is enough
    config: tuple[str, ...]   # the matching CONFIG_ symbols
    required: bool            # missing: fail (else warn)
    why: str


FEATURES = (
    Feature("overlay", ("overlay",), ("CONFIG_OVERLAY_FS",), True,
            "the engine's overlay2 storage driver"),
    Feature("bridge", ("bridge",), ("CONFIG_BRIDGE",), True, "container networks (docker0)"),
    Feature("veth", ("veth",), ("CONFIG_VETH",), True, "connecting containers to networks"),
    Feature("br_netfilter", ("br_netfilter",), ("CONFIG_BRIDGE_NETFILTER",), False,
            "bridge-nf-call-iptables: published ports and DNS between containers"),
    Feature("vxlan", ("vxlan",), ("CONFIG_VXLAN",), True, "Swarm overlay networks"),
    Feature("netfilter", ("ip_tables", "nf_tables"), ("CONFIG_IP_NF_IPTABLES", "CONFIG_NF_TABLES"),
            True, "the engine's NAT and filter rules (iptables or nf_tables)"),
)


@dataclasses.dataclass(frozen=True)
class Evidence:
    """What the host's files say about its kernel; `None` where a source was not readable."""

    loaded: frozenset = frozenset()        # /proc/modules
    sys_module: frozenset = frozenset()    # /sys/module/*: loaded, or built in with parameters
    active: dict = dataclasses.field(default_factory=dict)  # feature -> where it shows in use
    builtin: frozenset | None = None       # /lib/modules/<release>/modules.builtin
    available: frozenset | None = None     # /lib/modules/<release>/modules.dep
    config: dict | None = None             # /proc/config.gz or /boot/config-<release>
    config_source: str = ""


def feature_state(feature: Feature, evidence: Evidence) -> tuple[str, str]:
    """(state, where it was seen) of one feature."""
    if feature.name in evidence.active:
        return ACTIVE, evidence.active[feature.name]
    for name in feature.modules:
        if name in evidence.loaded or name in evidence.sys_module:
            return ACTIVE, f"module {name} loaded"
    found = _from_module_lists(feature, evidence) or _from_config(feature, evidence)
    if found:
        return found
    if evidence.builtin is None and evidence.available is None and evidence.config is None:
        return UNKNOWN, "no module list and no kernel config to read"
    return MISSING, _searched(evidence)


def _from_module_lists(feature: Feature, evidence: Evidence) -> tuple[str, str] | None:
    for name in feature.modules:
        if evidence.builtin is not None and name in evidence.builtin:
            return BUILTIN, f"{name} in modules.builtin"
        if evidence.available is not None and name in evidence.available:
            return MODULE, f"{name} in modules.dep"
    return None


def _from_config(feature: Feature, evidence: Evidence) -> tuple[str, str] | None:
    for symbol in feature.config:
        value = (evidence.config or {}).get(symbol)
        if value == "y":
            return BUILTIN, f"{symbol}=y in {evidence.config_source}"
        if value == "m":
            return MODULE, f"{symbol}=m in {evidence.config_source}"
    return None


def _searched(evidence: Evidence) -> str:
    sources = [name for name, value in (("modules.builtin", evidence.builtin),
                                         ("modules.dep", evidence.available),
                                         (evidence.config_source, evidence.config))
               if value is not None]
    return "not in " + ", ".join(sources)


def features(evidence: Evidence) -> dict[str, dict]:
    """Every feature's {"state", "source"}, by name, in FEATURES order."""
    found = {}
    for feature in FEATURES:
        state, source = feature_state(feature, evidence)
        found[feature.name] = {"state": state, "source": source}
    return found
