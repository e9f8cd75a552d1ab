"""Sizing the actor pool so that it never starves the tasks that feed it (docs/ray.md, "Sizing").

Ray Data schedules the actors of ``map_batches`` and the tasks upstream of them (``read_images``, ``map``...)
from the same CPUs. A pool that holds every CPU leaves the read tasks none, and Ray waits for them forever
without an error. ``plan_pool`` decides, before any actor starts, how many actors with how many CPUs each fit
beside those tasks: it lowers the CPUs of each actor when the caller left ``num_cpus`` unset, and raises
``PoolFitError`` (what would starve, what to pass instead) when the caller's own numbers cannot fit.

Pure logic over the nodes' resources: no Ray here, so the rule is unit-tested without a cluster.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from yolo_adapters.errors import OptionError

#: Float slack in resource arithmetic (Ray itself keeps four decimals).
_EPS = 1e-6
#: Sized CPUs per actor are rounded down to this step, so that Ray's rounding cannot push a pool over a node.
_STEP = 0.01
#: No pool is planned larger than this (a bound for the searches, far above any real pool).
_MAX_ACTORS = 4096


class PoolFitError(OptionError):
    """An actor pool that cannot fit the cluster beside the tasks feeding it: Ray would wait forever, so
    ``predict`` refuses it before any actor starts."""


@dataclass(frozen=True)
class Node:
    """One alive Ray node's resources."""

    cpus: float
    gpus: float = 0.0
    resources: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def from_ray(cls, resources: Mapping[str, float]) -> Node:
        """From ``ray.nodes()[i]["Resources"]``."""
        custom = {k: float(v) for k, v in resources.items() if k not in ("CPU", "GPU")}
        return cls(float(resources.get("CPU", 0.0)), float(resources.get("GPU", 0.0)), custom)


@dataclass(frozen=True)
class Upstream:
    """What runs before the pool: the CPUs one task of its most demanding operator asks for (0 when the
    Dataset already holds its rows, as ``from_items`` or ``materialize()`` give it), and the operators' names."""

    cpus: float = 0.0
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class PoolPlan:
    """What ``map_batches`` is given: the pool (N, or (min, max[, initial])) and each actor's resources."""

    concurrency: int | tuple[int, ...]
    num_cpus: float
    num_gpus: float | None
    resources: dict[str, float] | None
    sized: bool = False  # num_cpus was lowered from the default so that the pool fits
    note: str = ""


def parse_concurrency(concurrency: Any) -> tuple[int, int, int | None]:
    """``N`` or ``(min, max[, initial])`` as (min, max, initial); ValueError for anything else."""
    if isinstance(concurrency, bool):
        raise ValueError(f"concurrency={concurrency!r}: give N actors, or (min, max) or (min, max, initial)")
    if isinstance(concurrency, int):
        sizes = [concurrency, concurrency]
    else:
        try:
            sizes = [int(v) for v in concurrency]
        except TypeError:
            raise ValueError(
                f"concurrency={concurrency!r}: give N actors, or (min, max) or (min, max, initial)"
            ) from None
    if len(sizes) not in (2, 3):
        raise ValueError(f"concurrency={concurrency!r}: give N actors, or (min, max) or (min, max, initial)")
    low, high = sizes[0], sizes[1]
    initial = sizes[2] if len(sizes) == 3 else None
    if low < 1 or high < low or (initial is not None and not low <= initial <= high):
        raise ValueError(f"concurrency={concurrency!r}: sizes must satisfy 1 <= min <= initial <= max")
    return low, high, initial


def upstream_of(dataset: Any) -> Upstream:
    """The tasks a Ray ``Dataset`` runs before rows reach the pool, read from its logical plan: every operator
    that runs tasks asks ``num_cpus`` of its ``ray_remote_args`` (Ray's default 1) per task; sources that hold
    their rows (``InputData``, ``From*``) run none. When the plan cannot be read, one 1-CPU task is assumed."""
    try:
        root = dataset._logical_plan.dag
        cpus, names = 0.0, []
        stack, seen = [root], set()
        while stack:
            op = stack.pop()
            if id(op) in seen:
                continue
            seen.add(id(op))
            stack.extend(op.input_dependencies)
            kind = type(op).__name__
            if kind == "InputData" or kind.startswith("From"):
                continue
            args = getattr(op, "ray_remote_args", None) or {}
            cpus = max(cpus, float(args.get("num_cpus", 1.0)))
            names.append(str(op.name))
        return Upstream(cpus, tuple(reversed(names)))
    except Exception:  # a Ray whose plan reads differently: assume the usual read task
        return Upstream(1.0, ("the Dataset's upstream tasks",))


# -- feasibility ----------------------------------------------------------------------------------------------
def _per_node(node: Node, cpus: float, gpus: float, resources: Mapping[str, float]) -> int:
    """How many actors asking (cpus, gpus, resources) one node holds."""
    fits = [_MAX_ACTORS]
    if cpus > _EPS:
        fits.append(math.floor(node.cpus / cpus + _EPS))
    if gpus > _EPS:
        fits.append(math.floor(node.gpus / gpus + _EPS))
    for name, amount in resources.items():
        if amount > _EPS:
            fits.append(math.floor(node.resources.get(name, 0.0) / amount + _EPS))
    return max(0, min(fits))


def _nodes_text(nodes: Sequence[Node], what: str = "cpus") -> str:
    values = [getattr(n, what) for n in nodes]
    return (
        f"{sum(values):g} ({' + '.join(f'{v:g}' for v in values)} on {len(values)} nodes)"
        if len(values) > 1
        else (f"{sum(values):g}")
    )


def shortfall(
    nodes: Sequence[Node],
    actors: int,
    cpus: float,
    gpus: float = 0.0,
    resources: Mapping[str, float] | None = None,
    reserve: float = 0.0,
) -> str | None:
    """Why ``actors`` actors of (cpus, gpus, resources) each cannot run beside upstream tasks of ``reserve``
    CPUs, or None when they can whatever nodes Ray places them on.

    Three conditions: every actor has a node (identical actors: each node holds its own floor); Ray Data's
    budget (the pool's CPUs plus one upstream task within the cluster's CPUs); and, as Ray spreads actors
    over nodes, no placement may leave every node with less than ``reserve`` free CPUs.
    """
    resources = dict(resources or {})
    caps = [_per_node(n, cpus, gpus, resources) for n in nodes]
    if sum(caps) < actors:
        asks = [f"num_cpus={cpus:g}"] + ([f"num_gpus={gpus:g}"] if gpus else [])
        asks += [f"{k}={v:g}" for k, v in resources.items()]
        have = [f"{_nodes_text(nodes)} CPUs"]
        if gpus:
            have.append(f"{_nodes_text(nodes, 'gpus')} GPUs")
        for name in resources:
            have.append(f"{sum(n.resources.get(name, 0.0) for n in nodes):g} {name}")
        return (
            f"{_actors(actors)} asking {', '.join(asks)} each do not fit the cluster ({', '.join(have)}): "
            f"Ray can place {sum(caps)}"
        )
    if reserve <= _EPS:
        return None
    total = sum(n.cpus for n in nodes)
    if actors * cpus + reserve > total + _EPS:
        return (
            f"{_actors(actors)} x num_cpus={cpus:g} hold {actors * cpus:g} of the cluster's {total:g} CPUs, "
            f"leaving {max(total - actors * cpus, 0.0):g} for the upstream tasks, which need {reserve:g} per task"
        )
    if cpus <= _EPS:
        return None
    blockers = 0
    for node, cap in zip(nodes, caps):
        if node.cpus + _EPS < reserve:
            continue  # too small for an upstream task anyway
        needed = math.floor((node.cpus - reserve) / cpus + _EPS) + 1  # actors that leave it under `reserve`
        if needed > cap:
            return None  # this node always keeps room for an upstream task
        blockers += needed
    if blockers <= actors:
        return (
            f"{_actors(actors)} x num_cpus={cpus:g}, spread over the nodes as Ray places them, can leave no node "
            f"with the {reserve:g} CPU an upstream task needs (nodes: {_nodes_text(nodes)} CPUs)"
        )
    return None


def _largest_cpus(
    nodes: Sequence[Node], actors: int, upper: float, gpus: float, resources: Mapping[str, float], reserve: float
) -> float | None:
    """The most CPUs per actor, at most ``upper``, with which ``actors`` actors fit; None when none do.

    Whether a pool fits changes only where a node's CPUs (or what is left of them beside ``reserve``) divide
    into whole actors, so those points and ``upper`` are the candidates, rounded down to ``_STEP``.
    """
    total = sum(n.cpus for n in nodes)
    spans = {n.cpus for n in nodes} | {n.cpus - reserve for n in nodes} | {total - reserve}
    candidates = {upper} | {x / k for x in spans if x > _EPS for k in range(1, min(actors, _MAX_ACTORS) + 2)}
    for c in sorted({math.floor(c / _STEP + _EPS) * _STEP for c in candidates if c <= upper + _EPS}, reverse=True):
        if c >= _STEP - _EPS and shortfall(nodes, actors, round(c, 4), gpus, resources, reserve) is None:
            return round(c, 4)
    return None


def _most_actors(
    nodes: Sequence[Node], cpus: float, gpus: float, resources: Mapping[str, float], reserve: float, up_to: int
) -> int:
    """The largest pool (at most ``up_to``) that fits; 0 when not even one actor does."""
    for n in range(max(up_to, 0), 0, -1):
        if shortfall(nodes, n, cpus, gpus, resources, reserve) is None:
            return n
    return 0


# -- the plan -------------------------------------------------------------------------------------------------
def plan_pool(
    nodes: Sequence[Node],
    *,
    concurrency: int | Sequence[int] | None,
    num_cpus: float | None,
    num_gpus: float | None = None,
    resources: Mapping[str, float] | None = None,
    default_cpus: float = 1.0,
    upstream: Upstream = Upstream(),
    default_reserve: float | None = None,
    check: bool = True,
) -> PoolPlan:
    """The pool ``predict`` asks Ray for, or PoolFitError before any actor starts.

    ``num_cpus`` None: each actor gets ``default_cpus``, lowered (fractional CPUs are legal for actors) until
    the pool fits beside ``upstream``'s tasks. ``num_cpus`` given: the caller's numbers are used as they are, or
    refused with what would starve and what to pass instead. ``concurrency`` None: as many actors as fit beside
    ``default_reserve`` CPUs for upstream tasks (``upstream.cpus`` when None). An autoscaling ``(min, max)`` must
    fit at its max. ``check=False`` (a cluster that adds nodes on demand) skips the checks and the sizing.
    """
    for name, value in (("num_cpus", num_cpus), ("num_gpus", num_gpus), *(resources or {}).items()):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise OptionError(f"{name}={value!r}: give a number of resources per actor, 0 or more")
    gpus = float(num_gpus or 0.0)
    res = {k: float(v) for k, v in (resources or {}).items()}
    cpus = float(default_cpus if num_cpus is None else num_cpus)
    reserve = upstream.cpus
    default_reserve = reserve if default_reserve is None else default_reserve
    total = sum(n.cpus for n in nodes)
    feeders = ", ".join(upstream.names) or "upstream"

    if concurrency is None:
        up_to = _default_count(nodes, cpus, gpus, res, default_reserve)
        if not check:
            return PoolPlan(up_to, cpus, num_gpus, _copy(resources), note=f"{_actors(up_to)} (unchecked)")
        count = _most_actors(nodes, cpus, gpus, res, max(reserve, default_reserve), up_to)
        if count == 0:
            count = _most_actors(nodes, cpus, gpus, res, reserve, up_to)
        if count:
            return PoolPlan(count, cpus, num_gpus, _copy(resources), note=f"{_actors(count)} x {cpus:g} CPU")
        return _size_or_refuse(nodes, 1, 1, None, num_cpus, cpus, num_gpus, resources, upstream, total, feeders)

    low, high, initial = parse_concurrency(concurrency)
    pool: int | tuple[int, ...] = (
        high
        if low == high and not isinstance(concurrency, Sequence)
        else ((low, high) if initial is None else (low, high, initial))
    )
    if not check or shortfall(nodes, high, cpus, gpus, res, reserve) is None:
        return PoolPlan(pool, cpus, num_gpus, _copy(resources), note=f"{_actors(high)} x {cpus:g} CPU")
    return _size_or_refuse(nodes, high, low, pool, num_cpus, cpus, num_gpus, resources, upstream, total, feeders)


def _default_count(nodes: Sequence[Node], cpus: float, gpus: float, res: Mapping[str, float], reserve: float) -> int:
    """The default pool before the checks: the CPUs left beside ``reserve`` over ``cpus`` (the whole CPUs when
    actors ask none), no more than the accelerators allow, at least one."""
    total = sum(n.cpus for n in nodes)
    spare = max(total - reserve, 0.0)
    count = math.floor(spare / cpus + _EPS) if cpus > _EPS else math.floor(spare + _EPS)
    if gpus or any(res.values()):
        count = min(count, sum(_per_node(n, 0.0, gpus, res) for n in nodes))
    return max(1, min(count, _MAX_ACTORS))


def _size_or_refuse(
    nodes: Sequence[Node],
    actors: int,
    low: int,
    pool: int | tuple[int, ...] | None,
    num_cpus: float | None,
    cpus: float,
    num_gpus: float | None,
    resources: Mapping[str, float] | None,
    upstream: Upstream,
    total: float,
    feeders: str,
) -> PoolPlan:
    """Lower each actor's CPUs until ``actors`` fit (``num_cpus`` unset), else PoolFitError saying what would
    starve and what to pass instead."""
    gpus = float(num_gpus or 0.0)
    res = {k: float(v) for k, v in (resources or {}).items()}
    reserve = upstream.cpus
    if num_cpus is None:
        sized = _largest_cpus(nodes, actors, cpus, gpus, res, reserve)
        if sized is not None:
            beside = f" so that {feeders} keeps {reserve:g} CPU per task" if reserve else ""
            note = f"{_actors(actors)} x {sized:g} CPU (lowered from {cpus:g}){beside} on a {total:g}-CPU cluster"
            return PoolPlan(pool if pool is not None else actors, sized, num_gpus, _copy(resources), True, note)
    why = shortfall(nodes, actors, cpus, gpus, res, reserve) or "the pool does not fit"
    placeable = shortfall(nodes, actors, cpus, gpus, res, 0.0) is None
    starving = (
        f"{feeders} would never get a CPU and the job would wait forever"
        if reserve and placeable
        else "the job would wait forever for actors that cannot start"
    )
    fixes = []
    most = _most_actors(nodes, cpus, gpus, res, reserve, actors - 1)
    if most:
        fixes.append(
            f"pass concurrency={most}"
            if not isinstance(pool, tuple)
            else f"pass concurrency=({min(low, most)}, {most})"
        )
    lower = _largest_cpus(nodes, actors, cpus, gpus, res, reserve) if num_cpus is not None else None
    if lower is not None:
        fixes.append(f"pass num_cpus={lower:g}")
        fixes.append("leave num_cpus unset (predict then lowers each actor's CPUs until the pool fits)")
    elif reserve and shortfall(nodes, actors, 0.0, gpus, res, reserve) is None:
        fixes.append(f"pass num_cpus=0 (the actors then share the CPUs with {feeders}, unreserved)")
    if gpus and shortfall(nodes, actors, 0.0, gpus, res, 0.0) is not None:
        fixes.append("pass a fractional num_gpus to put several actors on one card")
    if not placeable:
        fixes.append("add nodes (or pass check_fit=False on a cluster that adds nodes on demand)")
    message = f"{why}: {starving}."
    if fixes:
        message += " Instead: " + "; or ".join(fixes) + "."
    raise PoolFitError(message)


def _actors(count: int) -> str:
    return f"{count} actor" if count == 1 else f"{count} actors"


def _copy(resources: Mapping[str, float] | None) -> dict[str, float] | None:
    return dict(resources) if resources else None
