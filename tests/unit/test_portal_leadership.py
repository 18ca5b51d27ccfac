"""Who does the background work (dragonball.portal.leadership): one holder of the leader key
at a time, another takes it once the holder's lease ends, and a holder that cannot renew stops
counting itself leader before etcd lets another in. Also the notification loop runs its rounds
only while its portal leads."""

from __future__ import annotations

import threading

from dragonball.orchestrator import notify
from dragonball.portal.leadership import AlwaysLeader, Leadership
from etcd_fakes import FakeEtcd
from portal_web_fakes import Clock

KEY = "/dragonball/portal/leader"


def test_one_portal_leads_and_another_takes_over_when_its_lease_ends():
    etcd, clock = FakeEtcd(), Clock()
    one, two = (Leadership(etcd, KEY, clock=clock, name=n) for n in ("s1", "s2"))
    assert one.step() is True and one.is_leader()
    assert two.step() is False and not two.is_leader()
    assert etcd.get(KEY) == one.identity.encode()
    etcd.expire(one.lease)  # s1 stopped renewing: etcd drops its key after the TTL
    assert two.step() is True and two.is_leader()
    assert one.step() is False and not one.is_leader()


def test_a_holder_that_cannot_renew_stops_leading_before_its_lease_ends():
    etcd, clock = FakeEtcd(), Clock()
    one = Leadership(etcd, KEY, ttl_s=10, every_s=3, clock=clock)
    one.step()
    etcd.down = True
    clock.now += 6.9
    assert one.is_leader()
    clock.now += 0.2  # 7.1 s after its last renewal began: 10 s TTL less one interval
    assert not one.is_leader()


def test_resigning_frees_the_key_at_once():
    etcd = FakeEtcd()
    one, two = Leadership(etcd, KEY), Leadership(etcd, KEY)
    one.step()
    one.resign()
    assert not one.is_leader() and etcd.get(KEY) is None
    assert two.step() is True


def test_without_replicated_state_the_one_portal_always_leads():
    assert AlwaysLeader().is_leader()


def test_the_notification_loop_runs_rounds_only_while_leading():
    stop, leading, rounds = threading.Event(), [False], []

    def make_control():
        rounds.append(1)
        if len(rounds) >= 2:
            stop.set()
        raise RuntimeError("a round ran")  # caught and logged by the loop

    thread = threading.Thread(target=notify.run_forever, args=(make_control, stop, 0.01),
                              kwargs={"active": lambda: leading[0]})
    thread.start()
    threading.Event().wait(0.1)
    assert rounds == []
    leading[0] = True
    thread.join(5)
    assert not thread.is_alive() and len(rounds) == 2
