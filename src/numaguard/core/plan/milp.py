"""The exact planner: the placement problem as a mixed-integer program, solved by HiGHS.

Why HiGHS (``highspy``, the ``numaguard[plan]`` extra) and not OR-Tools CP-SAT: it is MIT
licensed and one small wheel (numpy its only dependency; CP-SAT brings ~30 MB with protobuf),
and its branch and bound reports what this planner must report — the MIP gap and the dual
bound of the best plan found when the time limit stops it (``Highs.getInfo().mip_gap``,
``mip_dual_bound``; https://ergo-code.github.io/HiGHS/stable/structures/classes/HighsInfo/).
CP-SAT is strong on min-max objectives, but the peak-fill stage here is one continuous
variable over linear rows, which an LP relaxation bounds well (issue 14 measured 1.6–14.4 s to
a proven optimum with HiGHS on 500 guests × 16 nodes).

Model.  Binary ``x[i,o]``: item i (a memory unit) takes option o; ``s[g]``: guest g stays as it
is; ``p[g]``: guest g is placed; continuous ``P``: the worst node's fill.  Rows: for every item
of g, Σ_o x[i,o] + s[g] = p[g] (all of a guest's units or none); per node, the ordinary memory
placed there over its capacity ≤ P ≤ 1; per node and page size, the pages ≤ the pool; per node,
the pinned vCPUs ≤ threads × the over-commit ratio; Σ moved ≤ the move budget.

Lexicographic, one stage after the other, each stage's optimum (or best found) fixed as a row
for the next (with a tiny tolerance): (0) as many guests placed as can be, when the greedy
heuristic could not place them all; then, in the objective's order, (peak) min P, (remote) min
Σ remote cost, (moves) min Σ weighted moves.  The greedy plan seeds the first stage; each
stage's plan seeds the next.

The HiGHS banner ("Running HiGHS …") goes to the process's stdout from C++ when the first
``Highs`` object is made: callers printing machine-readable output make it under a
redirected file descriptor (an edge's job: core is pure), through *factory*.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from numaguard.core.plan.greedy import STAY, Decision
from numaguard.core.plan.problem import Problem
from numaguard.units import GiB

#: the stages, in the default lexicographic order
STAGES = ("peak", "remote", "moves")
#: the fill the solver may reach is 1 less this: its row tolerance (1e-7 of a capacity) never
#: turns into bytes over a node's capacity
PEAK_MARGIN = 1e-5
#: a stage's value fixed for the next may exceed its optimum by this much (relative)
TOLERANCE = 1e-6


@dataclass(frozen=True, slots=True)
class StageResult:
    """One stage of the lexicographic solve: the value of the plan found, HiGHS' dual bound,
    the relative gap between them, and whether the stage was proven optimal."""

    name: str
    value: float
    bound: float
    gap: float
    optimal: bool
    seconds: float
    status: str


def load_highs() -> Callable[[], Any] | None:
    """``highspy.Highs`` when the extra is installed, else ``None``."""
    try:
        import highspy
    except ImportError:
        return None
    return highspy.Highs


class _Model:
    """The columns and rows, built once; stages change the objective and add rows."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.cols_lb: list[float] = []
        self.cols_ub: list[float] = []
        self.integer: list[bool] = []
        self.rows: list[tuple[float, float, list[int], list[float]]] = []
        self.p: list[int] = []
        self.s: list[int | None] = []
        self.x: list[list[list[int]]] = []   # per choice, per item, per option
        self.remote_cost: dict[int, float] = {}
        self.move_cost: dict[int, float] = {}
        self.peak = self._col(0.0, 1.0 - PEAK_MARGIN, integer=False)
        mem: dict[int, list[tuple[int, float]]] = {}
        pages: dict[tuple[int, int], list[tuple[int, float]]] = {}
        vcpus: dict[int, list[tuple[int, float]]] = {}

        def account(col: int, load: Any) -> None:
            for n, b in load.mem.items():
                mem.setdefault(n, []).append((col, b))
            for k, v in load.pages.items():
                pages.setdefault(k, []).append((col, v))
            for n, v in load.vcpus.items():
                vcpus.setdefault(n, []).append((col, v))
            if load.remote:
                self.remote_cost[col] = self.remote_cost.get(col, 0.0) + load.remote / GiB

        moves: list[tuple[int, float]] = []
        for c in problem.choices:
            pc = self._col(0.0, 1.0)
            self.p.append(pc)
            sc = None
            if c.stay is not None:
                sc = self._col(0.0, 1.0)
                account(sc, c.stay)
            self.s.append(sc)
            per_item = []
            for item in c.items:
                cols = []
                for opt in item.options:
                    xc = self._col(0.0, 1.0)
                    account(xc, opt.load)
                    cols.append(xc)
                idx = [*cols, pc] + ([sc] if sc is not None else [])
                val = [1.0] * len(cols) + [-1.0] + ([1.0] if sc is not None else [])
                self.rows.append((0.0, 0.0, idx, val))
                per_item.append(cols)
            if not c.items and sc is not None:
                self.rows.append((0.0, 0.0, [sc, pc], [1.0, -1.0]))
            self.x.append(per_item)
            # moved = p − s; weighted in the moves stage
            self.move_cost[pc] = self.move_cost.get(pc, 0.0) + c.weight
            if sc is not None:
                self.move_cost[sc] = self.move_cost.get(sc, 0.0) - c.weight
            if not c.new:
                moves.append((pc, 1.0))
                if sc is not None:
                    moves.append((sc, -1.0))
        fixed = problem.fixed
        for n, terms in mem.items():
            cap = problem.capacity.get(n, 0)
            base = fixed.mem.get(n, 0)
            if cap > 0:
                self.rows.append((-_INF, -base / cap, [t[0] for t in terms] + [self.peak],
                                  [t[1] / cap for t in terms] + [-1.0]))
            else:
                self.rows.append((-_INF, -base / GiB, [t[0] for t in terms],
                                  [t[1] / GiB for t in terms]))
        for k, terms in pages.items():
            self.rows.append((-_INF, problem.pools.get(k, 0) - fixed.pages.get(k, 0),
                              [t[0] for t in terms], [t[1] for t in terms]))
        for n, terms in vcpus.items():
            self.rows.append((-_INF, problem.cpu_limit.get(n, 0) - fixed.vcpus.get(n, 0) + 1e-9,
                              [t[0] for t in terms], [t[1] for t in terms]))
        if problem.max_moves is not None and moves:
            self.rows.append((-_INF, float(problem.max_moves), [t[0] for t in moves],
                              [t[1] for t in moves]))

    def _col(self, lb: float, ub: float, integer: bool = True) -> int:
        self.cols_lb.append(lb)
        self.cols_ub.append(ub)
        self.integer.append(integer)
        return len(self.cols_lb) - 1

    def values(self, decisions: Sequence[Decision]) -> list[float]:
        """Column values of *decisions* (a seed)."""
        v = [0.0] * len(self.cols_lb)
        for ci, d in enumerate(decisions):
            if d is None:
                continue
            v[self.p[ci]] = 1.0
            if d == STAY:
                sc = self.s[ci]
                assert sc is not None
                v[sc] = 1.0
                continue
            assert isinstance(d, tuple)
            for cols, o in zip(self.x[ci], d, strict=True):
                v[cols[o]] = 1.0
        tot: dict[int, float] = {}
        for n, b in self.problem.fixed.mem.items():
            tot[n] = tot.get(n, 0) + b
        for ci, d in enumerate(decisions):
            c = self.problem.choices[ci]
            loads = ([] if d is None else [c.stay] if d == STAY else
                     [item.options[o].load for item, o in zip(c.items, d, strict=True)]
                     if isinstance(d, tuple) else [])
            for load in loads:
                assert load is not None
                for n, b in load.mem.items():
                    tot[n] = tot.get(n, 0) + b
        cap = self.problem.capacity
        v[self.peak] = min(1.0 - PEAK_MARGIN, max(
            (b / cap[n] for n, b in tot.items() if cap.get(n, 0) > 0), default=0.0))
        return v

    def decisions(self, col: Sequence[float]) -> tuple[Decision, ...]:
        out: list[Decision] = []
        for ci in range(len(self.problem.choices)):
            if col[self.p[ci]] < 0.5:
                out.append(None)
                continue
            sc = self.s[ci]
            if sc is not None and col[sc] > 0.5:
                out.append(STAY)
                continue
            out.append(tuple(_argmax([col[x] for x in cols]) for cols in self.x[ci]))
        return tuple(out)


_INF = float("inf")


def _argmax(values: list[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)


def solve(problem: Problem, seed: tuple[Decision, ...], *, factory: Callable[[], Any],
          objective: Sequence[str] = STAGES, time_limit: float = 30.0,
          place_all: bool = True, clock: Callable[[], float] | None = None
          ) -> tuple[tuple[Decision, ...], tuple[StageResult, ...]]:
    """The lexicographic optimum (or the best plan found in *time_limit* seconds in all) and
    each stage's result.  *place_all*: the seed placed every guest (stage 0 is skipped).
    *clock* (seconds, e.g. ``time.monotonic``): the limit then counts building the model and
    everything between the stages too, not only HiGHS's own run time."""
    import numpy as np

    deadline = clock() + time_limit if clock is not None else None

    m = _Model(problem)
    h = factory()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("mip_rel_gap", 0.0)
    h.setOptionValue("random_seed", 0)
    inf = h.getInfinity()
    ncol = len(m.cols_lb)
    if place_all:   # the seed placed every guest: every plan must
        for pc in m.p:
            m.cols_lb[pc] = 1.0
    h.addVars(ncol, np.array(m.cols_lb), np.array(m.cols_ub))
    ints = [i for i, flag in enumerate(m.integer) if flag]
    h.changeColsIntegrality(len(ints), np.array(ints, dtype=np.int32),
                            np.array([1] * len(ints), dtype=np.uint8))

    def add_row(lb: float, ub: float, idx: list[int], val: list[float]) -> None:
        h.addRow(max(lb, -inf), min(ub, inf), len(idx), np.array(idx, dtype=np.int32),
                 np.array(val, dtype=np.float64))

    for row in m.rows:
        add_row(*row)

    stages: list[StageResult] = []
    best = list(m.values(seed))
    spent = 0.0
    plan = list(objective)
    if not place_all:
        plan.insert(0, "placed")

    for k, name in enumerate(plan):
        remaining = max(0.0, time_limit - spent if deadline is None or clock is None
                        else deadline - clock())
        share = remaining if k == len(plan) - 1 else remaining * (0.6 if k == 0 else 0.5)
        costs = np.zeros(ncol)
        if name == "placed":
            for pc in m.p:
                costs[pc] = -1.0
        elif name == "peak":
            costs[m.peak] = 1.0
        elif name == "remote":
            for col, v in m.remote_cost.items():
                costs[col] = v
        elif name == "moves":
            for col, v in m.move_cost.items():
                costs[col] = v
        else:
            raise ValueError(f"unknown objective {name!r} ({', '.join(STAGES)})")
        h.changeColsCost(ncol, np.arange(ncol, dtype=np.int32), costs)
        h.setOptionValue("time_limit", max(share, 0.05))
        sol = _solution(best)
        h.setSolution(sol)
        h.run()
        info = h.getInfo()
        status = h.modelStatusToString(h.getModelStatus())
        seconds = h.getRunTime() - spent if spent else h.getRunTime()
        spent = h.getRunTime()
        if info.primal_solution_status == 2:   # kSolutionStatusFeasible
            best = list(h.getSolution().col_value)
        value = float(np.dot(costs, best))
        bound = float(info.mip_dual_bound)
        gap = 0.0 if abs(value - bound) <= 1e-9 else abs(value - bound) / max(abs(value), 1e-9)
        optimal = status == "Optimal"
        if optimal:
            gap = min(gap, float(info.mip_gap))
        sign = -1.0 if name == "placed" else 1.0
        stages.append(StageResult(name, sign * value, sign * bound, gap, optimal, seconds,
                                  status))
        # fix this stage's value for the next
        nz = [i for i in range(ncol) if costs[i] != 0.0]
        if nz:
            slack = TOLERANCE * max(abs(value), 1.0)
            add_row(-inf, value + slack, nz, [float(costs[i]) for i in nz])
    return m.decisions(best), tuple(stages)


def _solution(values: list[float]) -> Any:
    import highspy

    sol = highspy.HighsSolution()
    sol.col_value = values
    sol.value_valid = True
    return sol
