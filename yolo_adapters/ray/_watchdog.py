"""The stall watchdog: a Ray Data job that stops making progress ends with ``StallError`` naming the operator
that stalled, instead of waiting silently (docs/ray.md, "Stalls").

``with_stall_timeout(ds, seconds)`` gives ``ds`` its own DataContext with ``StallWatchdog`` among its execution
callbacks, so it acts wherever the Dataset (or one derived from it) is consumed: iteration, ``take_all``,
``materialize``, ``write_parquet``. Ray Data calls the watchdog at every step of its scheduling loop; progress
is any change in an operator's tasks, queues, outputs or actors. Time the consumer spends away from the
iterator while rows wait for it is not a stall. An exception raised from the callback ends the execution and is
raised where the Dataset is consumed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ray

from yolo_adapters.core.logs import warn_once
from yolo_adapters.errors import AdapterError, OptionError

if TYPE_CHECKING:
    import ray.data

LOGGER = logging.getLogger(__name__)

#: The DataContext key that carries a Dataset's stall timeout to its watchdog (seconds).
CONFIG_KEY = "yolo_adapters.stall_timeout_s"


class StallError(AdapterError, TimeoutError):
    """A Ray Data job made no progress for ``timeout`` seconds; ``operator`` is the one it waits on."""

    def __init__(self, message: str, operator: str, stalled_s: float, timeout: float) -> None:
        super().__init__(message)
        self.operator = operator
        self.stalled_s = stalled_s
        self.timeout = timeout


@dataclass(frozen=True)
class OpSnapshot:
    """One physical operator's progress at one scheduling step."""

    name: str
    done: bool
    running: int  # tasks in flight
    finished: int  # tasks finished
    outputs: int  # outputs taken downstream
    queued: tuple[int, int]  # blocks waiting at its input, at its output
    actors: tuple[int, int, int] = (0, 0, 0)  # running, pending, restarting
    marks: tuple[int, ...] = ()  # further counters: any change is progress


def stalled_operator(ops: Sequence[OpSnapshot]) -> tuple[OpSnapshot, str] | None:
    """The operator a stalled job waits on, and why; None when every operator has finished.

    The first unfinished operator with tasks in flight (downstream ones wait for its output); else the first
    unfinished one, which could start no task (no resources for its tasks or actors).
    """
    pending = [op for op in ops if not op.done]
    if not pending:
        return None
    for op in pending:
        if op.running:
            tasks = f"{op.running} task{'s' if op.running != 1 else ''}"
            return op, f"{tasks} in flight that produced nothing (running, or waiting for the resources they ask)"
    op = pending[0]
    if op.actors[1]:
        return op, f"{op.actors[1]} of its actors could not start (waiting for the resources they ask)"
    return op, "no task running and none could start (waiting for cluster resources)"


def stall_message(ops: Sequence[OpSnapshot], stalled_s: float, timeout: float, free: str = "") -> tuple[str, str]:
    """(the operator's name, the error message) for a job that has not moved for ``stalled_s`` seconds."""
    found = stalled_operator(ops)
    name, why = (found[0].name, found[1]) if found else ("?", "no operator reports work left")
    lines = [
        f"yolo_adapters.ray: the job made no progress for {stalled_s:.0f}s (stall_timeout={timeout:g}): "
        f"{name} stalled, {why}."
    ]
    unfinished = [op for op in ops if not op.done]
    if unfinished:
        lines.append("Unfinished operators:")
        for op in unfinished:
            actors = ""
            if any(op.actors):
                actors = f"; actors {op.actors[0]} running, {op.actors[1]} pending, {op.actors[2]} restarting"
            lines.append(
                f"  {op.name}: {op.running} task(s) in flight, {op.finished} finished, {op.outputs} outputs taken, "
                f"{op.queued[0]} block(s) queued{actors}"
            )
    if free:
        lines.append(f"Free in the cluster now: {free}.")
    lines.append(
        "Look at what that operator's tasks wait on (the Ray dashboard, `ray list tasks`); if the job is just this "
        "slow, raise stall_timeout (None turns the watchdog off)."
    )
    return name, "\n".join(lines)


# -- reading Ray Data's executor --------------------------------------------------------------------------------
def snapshot(executor: Any) -> list[OpSnapshot]:
    """The StreamingExecutor's operators, upstream first (its topology is built in that order)."""
    ops = []
    for op, state in executor._topology.items():
        if type(op).__name__ == "InputDataBuffer":
            continue
        metrics = op.metrics
        info = op.get_actor_info()
        ops.append(
            OpSnapshot(
                name=str(op.name),
                done=bool(op.has_completed()),
                running=int(op.num_active_tasks()),
                finished=int(metrics.num_tasks_finished),
                outputs=int(metrics.num_outputs_taken),
                queued=(int(state.total_enqueued_input_blocks()), int(state.total_enqueued_output_blocks())),
                actors=(int(info.running), int(info.pending), int(info.restarting)),
                marks=(
                    int(getattr(metrics, "num_inputs_received", 0)),
                    int(getattr(metrics, "num_task_outputs_generated", 0)),
                ),
            )
        )
    return ops


def _consumer_waiting(executor: Any) -> bool:
    """Whether the consumer waits on the job (no rows ready for it); True where Ray does not say."""
    idling = getattr(executor, "_consumer_idling", None)
    return bool(idling()) if callable(idling) else True


def _stop(executor: Any, within: float = 30.0) -> None:
    """Kill the stalled job's actors and cancel its tasks now, before the error is raised.

    Ray Data ends a failed job with a graceful shutdown, which cannot interrupt a running task of a plain actor:
    a stalled actor would go on holding its CPUs (and the next job would starve). A forced operator shutdown
    kills the actors first. It runs on a thread, bounded by ``within`` seconds, so that it cannot hang itself.
    """

    def stop_all() -> None:
        from ray.data._internal.stats import Timer

        for op in list(executor._topology):
            try:
                op.shutdown(Timer(), force=True)
            except Exception as exc:  # not started, or already shut down
                LOGGER.debug("shutting down %s: %s", getattr(op, "name", op), exc)

    thread = threading.Thread(target=stop_all, name="yolo_adapters-stall-stop", daemon=True)
    thread.start()
    thread.join(within)


def _free_resources() -> str:
    try:
        free, total = ray.available_resources(), ray.cluster_resources()
    except Exception:
        return ""
    parts = [f"{free.get(k, 0.0):g} of {total[k]:g} {k}" for k in ("CPU", "GPU") if total.get(k)]
    return ", ".join(parts)


try:
    from ray.data._internal.execution.execution_callback import ExecutionCallback
except ImportError:  # a Ray without execution callbacks: with_stall_timeout falls back to Ray's own guard
    ExecutionCallback = None  # type: ignore[assignment,misc]


if ExecutionCallback is not None:

    class StallWatchdog(ExecutionCallback):
        """Raises StallError from Ray Data's scheduling loop once nothing has moved for the Dataset's timeout."""

        def __init__(self) -> None:
            self.timeout: float | None = None
            self.last: tuple[OpSnapshot, ...] | None = None
            self.since = time.monotonic()

        def before_execution_starts(self, executor: Any) -> None:
            context = getattr(executor, "_data_context", None) or ray.data.DataContext.get_current()
            value = context.get_config(CONFIG_KEY)
            self.timeout = float(value) if value else None
            self.since = time.monotonic()

        def on_execution_step(self, executor: Any) -> None:
            if not self.timeout:
                return
            now = time.monotonic()
            try:
                ops = tuple(snapshot(executor))
                waiting = _consumer_waiting(executor)
            except Exception as exc:  # a Ray whose executor reads differently: never fail a job over it
                warn_once(LOGGER, "snapshot", "stall watchdog off, cannot read progress: %s", exc)
                self.timeout = None
                return
            if ops != self.last or not waiting:
                self.last, self.since = ops, now
                return
            stalled = now - self.since
            if stalled >= self.timeout:
                name, message = stall_message(ops, stalled, self.timeout, _free_resources())
                _stop(executor)
                raise StallError(message, name, stalled, self.timeout)


def check_stall_timeout(stall_timeout: Any) -> float | None:
    """``stall_timeout`` as seconds (None: no watchdog); OptionError for anything but a positive number."""
    if stall_timeout is None:
        return None
    if isinstance(stall_timeout, bool) or not isinstance(stall_timeout, (int, float)) or stall_timeout <= 0:
        raise OptionError(f"stall_timeout={stall_timeout!r}: give seconds (> 0), or None to turn the watchdog off")
    return float(stall_timeout)


def with_stall_timeout(dataset: ray.data.Dataset, stall_timeout: float | None) -> ray.data.Dataset:
    """``dataset`` with a stall watchdog: consuming it (or a Dataset derived from it) raises StallError once
    the job makes no progress for ``stall_timeout`` seconds. None returns ``dataset`` as it is.

    The copy has its own DataContext, so the Dataset passed in keeps its own. Ray's own no-progress guard
    (``DataContext.execution_no_progress_timeout_s``) is raised to ``stall_timeout`` where it is shorter.
    """
    seconds = check_stall_timeout(stall_timeout)
    if seconds is None:
        return dataset
    watched = ray.data.Dataset.copy(dataset, _deep_copy=True)
    context = watched.context
    guard = float(getattr(context, "execution_no_progress_timeout_s", -1) or -1)
    if 0 < guard < seconds:
        context.execution_no_progress_timeout_s = seconds
    if ExecutionCallback is None:
        warn_once(
            LOGGER,
            "no-callbacks",
            "this Ray has no execution callbacks; stalls end with Ray's ExecutionTimeoutError instead of StallError",
        )
        context.execution_no_progress_timeout_s = seconds
        return watched
    context.set_config(CONFIG_KEY, seconds)
    if StallWatchdog not in context.custom_execution_callback_classes:
        context.custom_execution_callback_classes = [*context.custom_execution_callback_classes, StallWatchdog]
    return watched
