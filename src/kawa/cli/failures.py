"""Why a task did not complete, in one line: ``oom_killed: reached its 64 MB memory
limit``, ``timed_out after 30m``, ``lost: node3 went silent``, ``failed: exited with
code 3``. Built from the task's state, limits and error; the host's text is made
:func:`~kawa.cli.output.visible`, so the line is safe to print on a terminal."""

from __future__ import annotations

from kawa.cli.output import visible

TYPE_CHECKING = False  # typing is not imported at run time: the quick CLI path skips it
if TYPE_CHECKING:
    from kawa.protocol.tasks import TaskView


def memory_text(n: int) -> str:
    """``64_000_000`` -> ``64 MB`` (1000-based, at most one decimal)."""
    from kawa.core.units import format_memory

    text = format_memory(n, digits=1)
    return f"{text[:-1]} {text[-1]}B" if text[-1] in "KMGT" else text


def reason(t: TaskView) -> str | None:
    """Why ``t`` ended without completing (``reached its 64 MB memory limit``); None for
    a completed or unfinished task, or a failure that says nothing."""
    from kawa.core.units import format_duration

    state = t.state.value
    error = visible(t.error) if t.error else None
    if state == "oom_killed":
        if t.memory:
            return f"reached its {memory_text(t.memory)} memory limit"
        return error or "killed by the out-of-memory killer"
    if state == "timed_out":
        return f"ran past its {format_duration(t.timeout)} timeout" if t.timeout else error
    if state == "lost":
        return f"{visible(t.node) if t.node else 'its node'} went silent"
    if state == "killed":
        return error or "killed on request"
    if state == "failed":
        if error:
            return error
        return None if t.exit_code is None else f"exited with code {t.exit_code}"
    if state in ("stopped", "removed"):
        return error
    return None


def failure_line(t: TaskView) -> str | None:
    """``STATE: WHY`` for a task that ended without completing (``timed_out after 30m``);
    None for a completed or unfinished one."""
    state = t.state.value
    if state in ("completed", "pending", "assigning", "running", "paused"):
        return None
    if state == "timed_out" and t.timeout:
        from kawa.core.units import format_duration

        return f"timed_out after {format_duration(t.timeout)}"
    why = reason(t)
    return f"{state}: {why}" if why else state
