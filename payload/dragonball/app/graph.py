"""The dependency graph: pure functions over ``{name: [names it starts after]}``.

Like Compose 1.x's ``sort_services``, but in levels: a name's wave is one more than
the latest wave among what it needs, so siblings share a wave and start together.
Names a node needs that are not nodes of the graph are ignored here (validation
reports them).
"""

from __future__ import annotations

from dragonball.app.errors import CycleError


def waves(graph: dict) -> list[list[str]]:
    """Names in start order, leaves first: wave i needs only waves before it.

    Raises CycleError with the first cycle's path.
    """
    cycles = find_cycles(graph)
    if cycles:
        raise CycleError(cycles[0])
    level = _levels(graph)
    result: list[list[str]] = []
    for name in sorted(graph):
        index = level[name]
        result.extend([] for _ in range(index + 1 - len(result)))
        result[index].append(name)
    return [sorted(wave) for wave in result]


def find_cycles(graph: dict) -> list[list[str]]:
    """Every elementary cycle met by a depth-first walk, each once, e.g. [a, b, a].

    A cycle is reported starting from its smallest name, so the result does not
    depend on where the walk entered it.
    """
    found: dict = {}
    state: dict = {}  # name -> "open" while on the path, "done" after
    for root in sorted(graph):
        if root in state:
            continue
        state[root], path, todo = "open", [root], [iter(sorted(set(graph[root])))]
        while todo:  # a walk with its own stack: a chain of any length, no RecursionError
            need = next(todo[-1], None)
            if need is None:
                state[path.pop()] = "done"
                todo.pop()
            elif need in graph and state.get(need) == "open":
                cycle = path[path.index(need):]
                start = cycle.index(min(cycle))
                cycle = cycle[start:] + cycle[:start]
                found.setdefault(tuple(cycle), cycle + [cycle[0]])
            elif need in graph and need not in state:
                state[need] = "open"
                path.append(need)
                todo.append(iter(sorted(set(graph[need]))))
    return [found[key] for key in sorted(found)]


def _levels(graph: dict) -> dict:
    """name -> its wave (0: needs nothing) of an acyclic graph, walked with its own stack."""
    level: dict = {}
    for root in sorted(graph):
        stack = [root]
        while stack:
            name = stack[-1]
            waiting = [n for n in graph[name] if n in graph and n not in level]
            if name in level or not waiting:
                level.setdefault(name, 1 + max((level[n] for n in graph[name] if n in graph),
                                               default=-1))
                stack.pop()
            else:
                stack.extend(waiting)
    return level


def subtree(graph: dict, name: str) -> set:
    """`name` and everything it needs, directly or not."""
    seen: set = set()
    todo = [name]
    while todo:
        current = todo.pop()
        if current in seen or current not in graph:
            continue
        seen.add(current)
        todo.extend(graph[current])
    return seen


def restrict(graph: dict, names: set) -> dict:
    """The part of `graph` on `names`, edges to other names dropped."""
    return {n: [m for m in graph[n] if m in names] for n in graph if n in names}


def dependents(graph: dict, name: str) -> list[str]:
    """The names that need `name` directly."""
    return sorted(n for n, needs in graph.items() if name in needs)
