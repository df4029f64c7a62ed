"""A solution of the placement problem, its objective values, and the greedy heuristic.

The greedy heuristic seeds the exact solver and is the whole planner when HiGHS is not
installed (then no optimality is claimed).  It places guests largest first; each memory unit
takes the option that keeps the worst node's fill lowest (ties: the lower remote-access cost,
then the emptier nodes), a guest that may stay as it is stays when that is no worse, and a
guest is left unplaced only when no option fits what is left.  With a move budget, guests
that may stay stay first, and the budget goes to those that must move, largest first.
"""

from __future__ import annotations

from dataclasses import dataclass

from numaguard.core.plan.problem import Choice, Load, Problem, add_load, empty_totals

#: a guest's decision: ``None`` unplaced, ``"stay"`` left as it is, else one option index per
#: item
Decision = tuple[int, ...] | str | None
STAY = "stay"


@dataclass(frozen=True, slots=True)
class Objective:
    """The objective values of a solution, in lexicographic order."""

    placed: int
    #: the worst node's fill: ordinary memory taken / capacity (0..1)
    peak: float
    #: Σ bytes × (distance − 10) between vCPU nodes and memory nodes
    remote: int
    #: Σ weights of the guests that change (core/plan/problem.py MOVE_WEIGHT)
    moves: int
    #: how many guests change
    moved: int


def loads_of(problem: Problem, decisions: tuple[Decision, ...]) -> dict[str, dict]:  # type: ignore[type-arg]
    """Per-node totals (fixed loads included) of *decisions*."""
    tot = empty_totals()
    add_load(tot, problem.fixed)
    for choice, d in zip(problem.choices, decisions, strict=True):
        for load in decision_loads(choice, d):
            add_load(tot, load)
    return tot


def decision_loads(choice: Choice, d: Decision) -> list[Load]:
    if d is None:
        return []
    if d == STAY:
        assert choice.stay is not None
        return [choice.stay]
    assert isinstance(d, tuple)
    return [item.options[o].load for item, o in zip(choice.items, d, strict=True)]


def peak_of(problem: Problem, mem: dict[int, int]) -> float:
    fills = [mem.get(n, 0) / c for n, c in problem.capacity.items() if c > 0]
    return max(fills, default=0.0)


def evaluate(problem: Problem, decisions: tuple[Decision, ...]) -> Objective:
    tot = loads_of(problem, decisions)
    remote = problem.fixed.remote
    moves = moved = placed = 0
    for choice, d in zip(problem.choices, decisions, strict=True):
        if d is None:
            continue
        placed += 1
        remote += sum(load.remote for load in decision_loads(choice, d))
        if d != STAY:
            moved += 0 if choice.new else 1
            moves += choice.weight
    return Objective(placed, peak_of(problem, tot["mem"]), remote, moves, moved)


def fits(problem: Problem, tot: dict[str, dict], load: Load) -> bool:  # type: ignore[type-arg]
    """*load* fits on top of *tot*: capacity, hugepage pools and vCPU slots."""
    mem = tot["mem"]
    for n, b in load.mem.items():
        if mem.get(n, 0) + b > problem.capacity.get(n, 0):
            return False
    pages = tot["pages"]
    for k, p in load.pages.items():
        if pages.get(k, 0) + p > problem.pools.get(k, 0):
            return False
    vcpus = tot["vcpus"]
    return all(vcpus.get(n, 0) + v <= problem.cpu_limit.get(n, 0) + 1e-9
               for n, v in load.vcpus.items())


def _score(problem: Problem, tot: dict[str, dict], peak: float,  # type: ignore[type-arg]
           load: Load) -> tuple[float, int, float]:
    mem = tot["mem"]
    touched = [(mem.get(n, 0) + b) / problem.capacity[n] for n, b in load.mem.items()
               if problem.capacity.get(n, 0) > 0]
    worst = max(touched, default=0.0)
    if not load.mem:  # hugepages: balance the pools instead
        pages = tot["pages"]
        worst = max(((pages.get(k, 0) + p) / problem.pools[k] for k, p in load.pages.items()
                     if problem.pools.get(k, 0)), default=0.0)
        return (peak, load.remote, worst)
    return (max(peak, worst), load.remote, worst)


def _place(problem: Problem, tot: dict[str, dict], peak: float,  # type: ignore[type-arg]
           choice: Choice) -> tuple[tuple[int, ...] | None, float]:
    """Each item's best option in turn (added to *tot* as it goes); ``None`` (and *tot* as it
    was) when some item fits nowhere."""
    picked: list[int] = []
    added: list[Load] = []
    for item in choice.items:
        best: tuple[tuple[float, int, float], int] | None = None
        for i, opt in enumerate(item.options):
            if not fits(problem, tot, opt.load):
                continue
            s = _score(problem, tot, peak, opt.load)
            if best is None or s < best[0]:
                best = (s, i)
        if best is None:
            for load in added:
                add_load(tot, load, -1)
            return None, peak
        opt = item.options[best[1]]
        add_load(tot, opt.load)
        added.append(opt.load)
        picked.append(best[1])
        peak = max(peak, best[0][0])
    return tuple(picked), peak


def _size(choice: Choice) -> int:
    return sum(i.unit.size for i in choice.items)


def greedy(problem: Problem) -> tuple[Decision, ...]:
    tot = empty_totals()
    add_load(tot, problem.fixed)
    peak = peak_of(problem, tot["mem"])
    decisions: list[Decision] = [None] * len(problem.choices)
    order = sorted(range(len(problem.choices)), key=lambda i: -_size(problem.choices[i]))
    budget = problem.max_moves
    if budget is not None:
        # stay first where one may, then spend the budget on those that must move
        for i in order:
            c = problem.choices[i]
            if c.stay is not None and fits(problem, tot, c.stay):
                add_load(tot, c.stay)
                decisions[i] = STAY
        peak = peak_of(problem, tot["mem"])
    for i in order:
        c = problem.choices[i]
        if decisions[i] is not None:
            continue
        if budget is not None and not c.new and budget <= 0:
            continue
        stay_score = None
        if c.stay is not None and fits(problem, tot, c.stay):
            stay_score = _score(problem, tot, peak, c.stay)[:2]
        picked, new_peak = _place(problem, tot, peak, c)
        if picked is not None and stay_score is not None:
            placed_remote = sum(item.options[o].load.remote
                                for item, o in zip(c.items, picked, strict=True))
            if stay_score <= (new_peak, placed_remote):
                for item, o in zip(c.items, picked, strict=True):
                    add_load(tot, item.options[o].load, -1)
                picked = None
        if picked is None and stay_score is not None:
            add_load(tot, c.stay)  # type: ignore[arg-type]
            decisions[i] = STAY
            peak = max(peak, stay_score[0])
        elif picked is not None:
            decisions[i] = picked
            peak = new_peak
            if budget is not None and not c.new:
                budget -= 1
    return tuple(decisions)


def feasible(problem: Problem, decisions: tuple[Decision, ...]) -> bool:
    """Every node within its capacity, pools and vCPU slots (exact, in bytes and pages), and
    the move budget kept."""
    tot = loads_of(problem, decisions)
    mem, pages, vcpus = tot["mem"], tot["pages"], tot["vcpus"]
    fixed = problem.fixed
    if any(b > problem.capacity.get(n, 0) and b > fixed.mem.get(n, 0) for n, b in mem.items()):
        return False
    if any(p > problem.pools.get(k, 0) and p > fixed.pages.get(k, 0) for k, p in pages.items()):
        return False
    if any(v > problem.cpu_limit.get(n, 0) + 1e-9 and v > fixed.vcpus.get(n, 0)
           for n, v in vcpus.items()):
        return False
    if problem.max_moves is not None:
        moved = sum(1 for c, d in zip(problem.choices, decisions, strict=True)
                    if d is not None and d != STAY and not c.new)
        return moved <= problem.max_moves
    return True
