"""The quick path of ``kawa run``, ``kawa task submit`` and ``kawa task logs``: commands
typed in loops, run with the standard library alone (no typer, rich, httpx or pydantic).

Only plain command lines take it: the options below, one target at most, a command after
``--`` (``task logs``: an id, ``--stderr``, ``-f``), a client configuration
:mod:`kawa.cli.lite` can read. Anything else — another
option, ``--help``, a value the full parser would refuse or word differently — returns
None from :func:`fast_path`, and the full CLI runs instead. The same holds after the
attempt when the submission was not stored (the host could not be connected to, or
refused it): the full CLI then submits again and says what went wrong in its own words.
So the output, errors and exit codes are those of the full path; the tests compare them.

The task is followed without the event stream: ``GET /tasks/{id}/wait`` (a long poll)
until it starts and until it is done, and its two logs are read with ``follow=true``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import sys
import threading
from collections.abc import Callable

from kawa.cli import lite
from kawa.cli.output import CliError, visible
from kawa.cli.run_output import BROKEN_PIPE, DONE, LOST_CONTACT, STARTED, UNSTARTED, Status, sink
from kawa.cli.run_output import waiting_line as waiting

TYPE_CHECKING = False  # typing is not imported at run time: the quick CLI path skips it
if TYPE_CHECKING:
    from typing import Any

_VALUES = {
    "--target": "targets",
    "--cores": "cores",
    "--memory": "memory",
    "--gpus": "gpus",
    "--env": "env",
    "--container": "container",
    "--image": "image",
    "--workdir": "workdir",
    "--network": "network",
    "--timeout": "timeout",
    "--priority": "priority",
    "--name": "name",
}
"""Options that take a value, by the spec field they fill."""
_SHORT = {"run": {"-e": "--env"}, "submit": {"-e": "--env", "-t": "--target"}}
_FLAGS = {"run": {"--detach": "detach", "-d": "detach"}, "submit": {"--wait": "wait"}}
_INTEGERS = frozenset({"cores", "gpus", "priority"})
_REPEATED = frozenset({"targets", "env"})
_INTEGER = re.compile(r"-?[0-9]+")
_RICH_FORCED = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")
"""Variables that make rich style output that is not a terminal (the full path's)."""
WAIT_STEP = 60
"""Seconds of one long poll while waiting for a task to end."""


class Plan:
    """A plain command line, read: what to submit and what to do after."""

    def __init__(self, kind: str, body: dict[str, Any]) -> None:
        self.kind = kind
        self.body = body
        self.detach = False
        self.wait = False
        self.values: dict[str, Any] = {}


def parse(kind: str, words: list[str]) -> Plan | None:
    """``words`` (after ``run`` or ``task submit``) as a :class:`Plan`; None unless the
    line is plain (see the module's description)."""
    if "--" not in words:
        return None
    at = words.index("--")
    head, command = words[:at], words[at + 1 :]
    if not command:
        return None
    plan = Plan(kind, {"command": command})
    i = 0
    while i < len(head):
        word = head[i]
        flag = _FLAGS[kind].get(word)
        if flag is not None:
            setattr(plan, flag, True)
            i += 1
            continue
        name, sep, value = word.partition("=") if word.startswith("--") else (word, "", "")
        name = _SHORT[kind].get(name, name)
        key = _VALUES.get(name)
        if key is None:
            return None
        if not sep:
            if i + 1 >= len(head):
                return None
            value = head[i + 1]
            i += 1
        i += 1
        if not _plain_value(key, value):
            return None
        if key in _REPEATED:
            plan.values.setdefault(key, []).append(value)
        else:
            plan.values[key] = int(value) if key in _INTEGERS else value
    if len(plan.values.get("targets", [])) > 1:
        return None
    env = plan.values.pop("env", None)
    if env is not None:
        plan.values["env"] = dict(item.split("=", 1) for item in env)
    plan.body.update(plan.values)
    return plan


def _plain_value(key: str, value: str) -> bool:
    """Whether the full parser reads ``value`` for ``key`` as it is (else it refuses it,
    words it differently, or gives it a meaning of its own)."""
    if key in _INTEGERS:
        return _INTEGER.fullmatch(value) is not None
    if key == "env":
        k, sep, _ = value.partition("=")
        return bool(sep and k)
    if key == "container" and value == "NULL":
        return False  # another spelling of --native
    if key == "name":
        return visible(value) == value
    return True


def fast_path(argv: list[str]) -> Callable[[], int | None] | None:
    """What runs ``argv`` quickly, or None when the full CLI must. The callable returns
    the exit code, or None when the full CLI must run after all (nothing was stored)."""
    if argv[:2] == ["task", "logs"]:
        found = _logs_line(argv[2:])
        creds = _credentials()
        if found is None or creds is None:
            return None
        return functools.partial(_print_logs, creds, *found)
    if argv[:2] == ["task", "list"]:
        query = _list_line(argv[2:])
        creds = _credentials()
        if query is None or creds is None:
            return None
        return functools.partial(_print_list, creds, query)
    if argv[:2] == ["task", "status"]:
        ids = [w for w in argv[2:] if w != "--json"]
        creds = _credentials()
        if "--json" not in argv or len(ids) != 1 or not _TASK_ID.fullmatch(ids[0]):
            return None
        if creds is None:
            return None
        return functools.partial(_print_task, creds, ids[0])
    if argv[:1] == ["run"]:
        kind, words = "run", argv[1:]
    elif argv[:2] == ["task", "submit"]:
        kind, words = "submit", argv[2:]
    else:
        return None
    plan = parse(kind, words)
    if plan is None:
        return None
    if kind == "submit" and plan.wait and (
        sys.stdout.isatty() or any(v in os.environ for v in _RICH_FORCED)
    ):
        return None  # the full path's outcome lines are styled by rich there
    creds = _credentials()
    if creds is None:
        return None
    return lambda: _execute(plan, creds)


def _credentials() -> lite.Credentials | None:
    creds = lite._plain_client_config()
    if creds is None or not creds.token or not lite.usable(creds, several=True):
        return None
    return creds


_LOG_FLAGS = {"--stderr": "stderr", "--follow": "follow", "-f": "follow"}


def _logs_line(words: list[str]) -> tuple[str, str, bool] | None:
    """``ID [--stderr] [-f]`` as (task id, stream, follow); None for any other line."""
    flags = {_LOG_FLAGS.get(w) for w in words if w.startswith("-")}
    ids = [w for w in words if not w.startswith("-")]
    if None in flags or len(ids) != 1 or not _TASK_ID.fullmatch(ids[0]):
        return None
    return ids[0], "stderr" if "stderr" in flags else "stdout", "follow" in flags


_TASK_ID = re.compile(r"[0-9]{1,19}")


def _print_logs(creds: lite.Credentials, task_id: str, stream: str, follow: bool) -> int | None:
    """The task's bytes as they are (``kawa task logs``); None when the host refused
    before any byte (the full CLI words it)."""
    query = f"stream={stream}&follow={'true' if follow else 'false'}"
    try:
        lite.stream(creds, f"/tasks/{task_id}/logs", query, sink(sys.stdout.fileno()))
    except (lite.NotSent, lite.Refused):
        return None
    return 0


def _execute(plan: Plan, creds: lite.Credentials) -> int | None:
    try:
        answer = lite.call(creds, "POST", "/tasks", plan.body)
    except lite.NotSent:
        return None
    except lite.Refused as exc:
        if exc.status >= 500:
            raise
        return None  # refused, so nothing stored: the full path explains it
    tasks: list[dict[str, Any]] = answer["tasks"]
    if plan.kind == "run":
        return _run(creds, tasks[0], plan.detach)
    if not plan.wait:
        for t in tasks:
            print(f"submitted {t['id']} ({visible(t['target'] or 'auto')})")
        return 0
    final = [_wait(creds, t["id"], "done") for t in tasks]
    for t in final:
        print(_outcome(t))
    return exit_code_of(final)


def exit_code_of(tasks: list[dict[str, Any]]) -> int:
    """0 if every task completed, else the first failure's exit code (1 if it has none)."""
    for t in tasks:
        if t["state"] != "completed":
            code = t.get("exit_code")
            return code if code not in (None, 0) else 1
    return 0


def _outcome(t: dict[str, Any]) -> str:
    """``ID on NODE: STATE (exit code N): WHY``, as ``kawa task submit --wait`` prints it."""
    from kawa.cli.failures import reason

    code = "" if t.get("exit_code") is None else f" (exit code {t['exit_code']})"
    found = reason(_View(t))  # type: ignore[arg-type]
    why = f": {visible(found)}" if found else ""
    name = f" {visible(t['name'])}" if t.get("name") else ""
    return f"{t['id']}{name} on {visible(t.get('node') or '-')}: {visible(t['state'])}{code}{why}"


class _State:
    def __init__(self, value: str) -> None:
        self.value = value


class _View:
    """A task's JSON read by attribute, as :mod:`kawa.cli.failures` reads a TaskView."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data
        self.state = _State(data["state"])

    def __getattr__(self, name: str) -> Any:
        return self._data.get(name)


def _wait(creds: lite.Credentials, task_id: str, until: str) -> Any:
    """The task once ``until`` (``started`` or ``done``) holds."""
    while True:
        view = _poll(creds, task_id, until, WAIT_STEP)
        if _reached(view, until):
            return view


def _poll(creds: lite.Credentials, task_id: str, until: str, timeout: float) -> Any:
    """The task once ``until`` holds, or as it is after ``timeout`` seconds."""
    query = f"until={until}&timeout={timeout:g}"
    return lite.call(creds, "GET", f"/tasks/{task_id}/wait", query=query)


def _reached(view: dict[str, Any], until: str) -> bool:
    if until == "done":
        return view["state"] in DONE
    return view["state"] not in UNSTARTED


class _Logs:
    """The task's stdout and stderr, each read by a thread from byte 0 to the end."""

    def __init__(self, creds: lite.Credentials, task_id: str) -> None:
        self.error: BaseException | None = None
        self.task_id = task_id
        self.threads = [
            threading.Thread(target=self._pump, args=(creds, name, fd), daemon=True)
            for name, fd in (("stdout", sys.stdout.fileno()), ("stderr", sys.stderr.fileno()))
        ]
        for t in self.threads:
            t.start()

    def _pump(self, creds: lite.Credentials, name: str, fd: int) -> None:
        try:
            query = f"stream={name}&follow=true"
            lite.stream(creds, f"/tasks/{self.task_id}/logs", query, sink(fd))
        except BaseException as exc:
            self.error = exc

    def join(self) -> None:
        while any(t.is_alive() for t in self.threads):
            for t in self.threads:
                t.join(0.5)  # a bounded join lets Ctrl-C through
            self._check()
        self._check()

    def _check(self) -> None:
        if self.error is None:
            return
        if isinstance(self.error, CliError):
            message = f"{self.error.message} (task {self.task_id} keeps running)"
            raise CliError(message, LOST_CONTACT)
        raise self.error


def _run(creds: lite.Credentials, task: dict[str, Any], detach: bool) -> int:
    task_id = task["id"]
    if detach:
        print(task_id)
        return 0
    status = Status()
    try:
        view = task
        while view["state"] in UNSTARTED:
            status.show(waiting(visible(view.get("waiting_reason") or view["state"]), 1, 1))
            view = _poll(creds, task_id, "started", 1 if status.on else WAIT_STEP)
        status.clear()
        ran = view["state"] in STARTED or view.get("started_at") is not None
        if ran or view.get("exit_code") is not None:
            _Logs(creds, task_id).join()
        final = _wait(creds, task_id, "done")
    except KeyboardInterrupt:
        status.clear()
        _kill(creds, task_id)
        return 130
    except BrokenPipeError:
        _kill(creds, task_id)
        return BROKEN_PIPE
    _report(final)
    return exit_code_of([final])


def _kill(creds: lite.Credentials, task_id: str) -> None:
    """Kill the task unless it ended, and wait (briefly) until it has."""
    try:
        lite.call(creds, "POST", f"/tasks/{task_id}/kill")
    except CliError:
        return  # ended meanwhile, or the host is gone: nothing more to do here
    print(f"kawa run: killed task {task_id}", file=sys.stderr, flush=True)
    with contextlib.suppress(CliError):
        _poll(creds, task_id, "done", 15)


def _report(t: dict[str, Any]) -> None:
    from kawa.cli.failures import failure_line

    line = failure_line(_View(t))  # type: ignore[arg-type]
    if line:
        who = f"task {t['id']}" + (f" on {visible(t['node'])}" if t.get("node") else "")
        print(f"kawa run: {who}: {line}", file=sys.stderr, flush=True)


class ListQuery:
    """A plain ``kawa task list`` line that prints JSON or ids."""

    def __init__(self) -> None:
        self.status: list[str] = []
        self.node: str | None = None
        self.limit: int | None = None
        self.before: int | None = None
        self.output = ""


_LIST_VALUES = {"--status": "status", "-s": "status", "--node": "node", "--limit": "limit",
                "--before": "before", "--output": "output", "-o": "output"}  # fmt: skip
_MAX_ID = 2**63 - 1


def _list_line(words: list[str]) -> ListQuery | None:
    """``words`` after ``task list`` read as the full CLI reads them, when they ask for
    ``--json``, ``-o json`` or ``-o ids``; None for any other line (tables, ``--batch``,
    ``--watch``, values it would refuse)."""
    query = ListQuery()
    i = 0
    while i < len(words):
        word = words[i]
        if word == "--json":
            query.output = query.output or "json"
            i += 1
            continue
        name, sep, value = word.partition("=") if word.startswith("--") else (word, "", "")
        key = _LIST_VALUES.get(name)
        if key is None:
            return None
        if not sep:
            if i + 1 >= len(words):
                return None
            value = words[i + 1]
            i += 1
        i += 1
        if key == "status":
            query.status.append(value)
        elif key == "node":
            query.node = value
        elif key == "output":
            if value not in ("json", "ids"):
                return None
            query.output = value
        elif not _INTEGER.fullmatch(value):
            return None
        elif key == "limit":
            query.limit = int(value)
        else:
            query.before = int(value)
    if not query.output:
        return None
    if "--json" in words and query.output != "json":
        return None  # the full CLI decides between --json and -o
    if query.limit is not None and not 1 <= query.limit <= 10_000:
        return None
    if query.before is not None and not 0 <= query.before <= _MAX_ID:
        return None
    return query


def _print_list(creds: lite.Credentials, q: ListQuery) -> int | None:
    """The newest tasks (``kawa task list``) as JSON or ids, and the next page's command
    on standard error when older tasks exist."""
    from urllib.parse import urlencode

    from kawa.cli.paging import older_hint

    page = q.limit or 200
    params: list[tuple[str, object]] = [("state", s) for s in q.status]
    if q.node:
        params.append(("node", q.node))
    params += [("kind", "command"), ("limit", min(page + 1, 10_000))]
    if q.before is not None:
        params.append(("before", q.before))
    try:
        tasks = lite.call(creds, "GET", "/tasks", query=urlencode(params))
    except (lite.NotSent, lite.Refused):
        return None  # nothing printed yet: the full CLI words it
    more = len(tasks) > page
    tasks = tasks[:page]
    if q.output == "json":
        sys.stdout.write(json.dumps(tasks, indent=2) + "\n")
    else:
        sys.stdout.write("".join(f"{t['id']}\n" for t in tasks))
    if more:
        sys.stdout.flush()
        older_hint(tasks[-1]["id"], q.status, q.node, q.limit)
    return 0


def _print_task(creds: lite.Credentials, task_id: str) -> int | None:
    """``kawa task status ID --json``."""
    try:
        task = lite.call(creds, "GET", f"/tasks/{task_id}")
    except (lite.NotSent, lite.Refused):
        return None
    sys.stdout.write(json.dumps(task, indent=2) + "\n")
    return 0
