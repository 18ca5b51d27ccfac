"""Choosing which processes to end and reap: pure functions over process tables."""

from __future__ import annotations

from dragonball.supervisor.procs import descendants, read_table, zombies

# pid: (ppid, state). 10 is the supervisor; 1 is tini.
TABLE = {1: (0, "S"), 10: (1, "S"), 11: (10, "S"), 12: (11, "S"), 13: (10, "Z"),
         14: (12, "R"), 20: (1, "S"), 21: (20, "S")}


def test_descendants_are_the_whole_subtree_without_zombies():
    assert descendants(TABLE, 10) == {11, 12, 14}


def test_processes_outside_the_subtree_are_never_chosen():
    assert descendants(TABLE, 20) == {21}
    assert descendants(TABLE, 99) == set()


def test_zombies_of_ours_are_reaped_unless_someone_waits_for_them():
    assert zombies(TABLE, 10, busy=set()) == {13}
    assert zombies(TABLE, 10, busy={13}) == set()


def test_read_table_parses_names_with_spaces_and_parens(tmp_path):
    for pid, line in {"7": "7 (a) b) S 3 7 7 0", "8": "8 (sleep) Z 7 7 7 0"}.items():
        (tmp_path / pid).mkdir()
        (tmp_path / pid / "stat").write_text(line)
    (tmp_path / "self").mkdir()
    assert read_table(str(tmp_path)) == {7: (3, "S"), 8: (7, "Z")}
