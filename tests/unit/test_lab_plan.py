"""The lab's plan (tests/lab/plan.py): servers on other userlands than the lab's image."""

from __future__ import annotations

import ipaddress

import pytest

from tests.lab import LabError
from tests.lab import plan


def test_a_server_can_run_another_image():
    spec = plan.LabSpec("mixed", 3, subnet=ipaddress.ip_network("10.9.0.0/24"),
                        images={"s2": "dragonball-bare:bullseye"})
    plan.validate(spec)
    argv = {s: plan.run_argv(spec, s, "10.9.0.9", plan.PRIVILEGED, "0" * 32)
            for s in spec.server_names}
    assert "dragonball-bare:bullseye" in argv["s2"] and plan.BARE_IMAGE not in argv["s2"]
    assert plan.BARE_IMAGE in argv["s1"] and plan.BARE_IMAGE in argv["s3"]


def test_an_image_for_a_server_the_lab_lacks_is_refused():
    with pytest.raises(LabError, match="images for s4: the lab has s1, s2"):
        plan.validate(plan.LabSpec("mixed", 2, images={"s4": "x"}))
