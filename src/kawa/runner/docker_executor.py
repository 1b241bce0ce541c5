"""Runs tasks as Docker containers through the official SDK.

Every container carries the labels ``kawa.cluster``, ``kawa.node`` and ``kawa.task``;
this executor only ever adopts, stops or removes containers with its own cluster and
node labels. Output is streamed to ``<log_dir>/<task>.out|.err`` so it outlives the
container. A VPS can be restarted in place (the same container stopped and started) and
removed with its snapshots.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container, _create_container_args
from docker.types import CancellableStream, DeviceRequest

from kawa.protocol.runner_api import RunTask
from kawa.protocol.tasks import NetworkMode
from kawa.runner import task_tools, vps
from kawa.runner.deadlines import Deadlines
from kawa.runner.docker_pool import share_connections
from kawa.runner.executor import (
    OnEnd,
    StartError,
    UnknownTask,
    launch_failure,
    record_ending,
)
from kawa.runner.journal import Entry, Journal, JournalClosed

log = logging.getLogger(__name__)

LABEL_CLUSTER, LABEL_NODE, LABEL_TASK = "kawa.cluster", "kawa.node", "kawa.task"


class DockerExecutor:
    def __init__(
        self,
        client: docker.DockerClient,
        journal: Journal,
        cluster_id: str,
        node: str,
        log_dir: Path,
        on_end: OnEnd,
        shared_data: Path | None = None,
        local_temp: Path | None = None,
        *,
        kawa_program: Path | None = None,
    ) -> None:
        self.docker = client
        share_connections(client)
        self.kawa_program = kawa_program
        """The standalone sweep program, mounted read-only as ``kawa`` in every container."""
        self.journal = journal
        self.cluster_id = cluster_id
        self.node = node
        self.log_dir = log_dir
        self.on_end = on_end
        self.shared_data = shared_data
        self.local_temp = local_temp
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._deadlines = Deadlines(self._time_out)
        self._machine_cpus = len(os.sched_getaffinity(0))
        self._runs: dict[str, int] = {}
        """Per task, which run of its container the watchers follow (a restart moves it
        on, so the watchers of the stopped run settle nothing)."""
        self._readers: dict[str, threading.Thread] = {}
        """Per task, the thread writing its log files (joined before a restart)."""
        self._restarts = threading.Lock()

    # -- naming ---------------------------------------------------------------------
    def container_name(self, task_id: str) -> str:
        return f"kawa-{self.node}-{task_id}"

    def log_path(self, task_id: str, stream: str) -> Path:
        return self.log_dir / f"{task_id}.{'out' if stream == 'stdout' else 'err'}"

    def _labels(self, order: RunTask) -> dict[str, str]:
        return {
            LABEL_CLUSTER: self.cluster_id,
            LABEL_NODE: self.node,
            LABEL_TASK: order.task_id,
            "kawa.kind": order.kind.value,
        }

    # -- start ----------------------------------------------------------------------
    def create_args(self, order: RunTask) -> dict[str, Any]:
        """The ``containers.create`` arguments for ``order`` (the limits it asks for)."""
        env = dict(order.env)
        env.update(KAWA_TASK_ID=order.task_id, KAWA_NODE=self.node)
        binds: dict[str, dict[str, str]] = {}
        if self.shared_data is not None:
            binds[str(self.shared_data)] = {"bind": "/shared", "mode": "rw"}
        if self.local_temp is not None:
            binds[str(self.local_temp)] = {"bind": "/local_temp", "mode": "rw"}
            env["KAWA_LOCAL_TEMP"] = "/local_temp"
        if self.kawa_program is not None and all(
            m.target.rstrip("/") != task_tools.IN_CONTAINER for m in order.mounts
        ):
            binds[str(self.kawa_program)] = {"bind": task_tools.IN_CONTAINER, "mode": "ro"}
        for m in order.mounts:
            binds[m.source] = {"bind": m.target, "mode": "ro" if m.read_only else "rw"}
        args: dict[str, Any] = dict(
            image=order.image,
            command=order.command,
            name=self.container_name(order.task_id),
            labels=self._labels(order),
            environment=env,
            volumes=binds,
            nano_cpus=int(min(order.cores, self._machine_cpus) * 1e9),
            network_mode="host" if order.network is NetworkMode.HOST else "bridge",
            privileged=order.privileged,
            working_dir=order.workdir,
            detach=True,
        )
        if order.memory:
            args.update(mem_limit=order.memory, memswap_limit=order.memory)
        if order.cpuset:
            args["cpuset_cpus"] = ",".join(map(str, order.cpuset))
        if order.numa is not None and Path(f"/sys/devices/system/node/node{order.numa}").is_dir():
            # Bind memory only to a NUMA node this machine really has (the real /sys, not
            # the runner's configured sysfs_root): Docker refuses to start a container whose
            # cpuset.mems names a missing node, e.g. zones recorded for a test topology.
            args["cpuset_mems"] = str(order.numa)
        if order.gpu_ids:
            ids = [str(i) for i in order.gpu_ids]
            args["device_requests"] = [DeviceRequest(device_ids=ids, capabilities=[["gpu"]])]
            env["NVIDIA_VISIBLE_DEVICES"] = ",".join(ids)
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(len(ids)))
            env["KAWA_GPU_IDS"] = ",".join(ids)
        if vps.is_vps(order):
            return vps.adjust_args(args, order)
        return args

    def _pull(self, image: str) -> None:
        try:
            self.docker.images.pull(image)
        except docker.errors.APIError as exc:
            raise StartError(
                f"image {image} is not on node {self.node} and could not be pulled: "
                f"{exc.explanation or exc}"
            ) from None

    def _create(self, order: RunTask) -> Container:
        """Create the container; pull the image only when Docker does not have it.

        Uses the low-level API: the high-level ``containers.create`` inspects the new
        container once more, which costs a round trip on every task start.
        """
        if vps.is_vps(order):  # a restarted VPS: its stopped container, else its snapshot
            kept = vps.existing_container(self.docker, self.container_name(order.task_id))
            if kept is not None:
                return kept
            order = order.model_copy(
                update={"image": vps.newest_snapshot(self.docker, order.task_id) or order.image}
            )
        kwargs = _create_container_args(
            {**self.create_args(order), "version": self.docker.api._version}
        )
        try:
            created = self.docker.api.create_container(**kwargs)
        except docker.errors.ImageNotFound:
            self._pull(order.image)
            created = self.docker.api.create_container(**kwargs)
        return self.docker.containers.prepare_model({"Id": created["Id"]})

    def start(self, order: RunTask) -> None:
        existing = self.journal.get(order.task_id)
        if existing is not None and existing.state != "ended":
            return  # a repeated dispatch of a task that is already running here
        if existing is not None and vps.is_vps(order):
            self.journal.forget(order.task_id)  # a VPS restart: it runs here again
        elif existing is not None:
            raise StartError(f"task {order.task_id} already ran on {self.node}")
        self.journal.begin(order)
        container: Container | None = None
        try:
            container = self._create(order)
            if vps.is_vps(order):
                vps.check_sshd(self.docker, container, order.image)
            self.journal.set_container(order.task_id, container.id or "")
            # Attached before the start (as ``docker run`` does), so the live stream has
            # all the output; replaying logs as well (logs=True) could repeat the first
            # lines when the container starts while Docker is still replaying.
            stream = self._attach(container, logs=False)
            container.start()
        except Exception as exc:  # nothing half-started may stay behind
            if not isinstance(exc, StartError | docker.errors.DockerException):
                log.exception("unexpected failure starting task %s", order.task_id)
            self.journal.forget(order.task_id)
            if container is not None:
                self._remove(container)
            if isinstance(exc, StartError):
                raise
            detail = getattr(exc, "explanation", None) or str(exc)
            raise StartError(f"docker could not start the task: {detail}") from None
        self.journal.set_state(order.task_id, "running")
        self._deadlines.arm(order.task_id, order.timeout)
        self._watch(order.task_id, container, stream)

    def _attach(self, container: Container, logs: bool) -> CancellableStream:
        """The container's output as (stdout, stderr) chunks. Kawa never gives a container
        a TTY, so this skips the inspect round trip ``attach`` makes to learn whether it
        has one."""
        api = self.docker.api
        response = api._post(
            api._url("/containers/{0}/attach", container.id),
            headers={"Connection": "Upgrade", "Upgrade": "tcp"},
            params={"logs": int(logs), "stdout": 1, "stderr": 1, "stream": 1},
            stream=True,
        )
        return CancellableStream(api._read_from_socket(response, True, False, demux=True), response)

    # -- watching -------------------------------------------------------------------
    def _watch(self, task_id: str, container: Container, stream: Any) -> None:
        """Drain the output in one thread and wait for the exit in another, so the exit
        status is already known when the output ends (no wait round trip after it)."""
        drain = threading.Thread(
            target=self._drain, args=(task_id, stream), name=f"logs-{task_id}", daemon=True
        )
        self._readers[task_id] = drain
        drain.start()
        threading.Thread(
            target=self._finish,
            args=(task_id, container, drain, self._runs.get(task_id, 0)),
            name=f"watch-{task_id}",
            daemon=True,
        ).start()

    def _drain(self, task_id: str, stream: Any) -> None:
        try:
            with (
                self.log_path(task_id, "stdout").open("wb") as out,
                self.log_path(task_id, "stderr").open("wb") as err,
            ):
                for chunk_out, chunk_err in stream:
                    if chunk_out:
                        out.write(chunk_out)
                        out.flush()
                    if chunk_err:
                        err.write(chunk_err)
                        err.flush()
        except Exception:  # the log stream broke; the exit code still matters
            log.exception("log stream of task %s broke", task_id)

    def _finish(
        self,
        task_id: str,
        container: Container,
        drain: threading.Thread | None = None,
        run: int | None = None,
    ) -> None:
        """Settle a task once its container has exited (and its output is written);
        nothing when ``run`` is no longer the container's current run (restarted)."""
        try:
            result = container.wait()
            code: int | None = int(result.get("StatusCode", -1))
            oom = False
            if code == 137:  # SIGKILL: ask Docker whether the OOM killer sent it
                container.reload()
                oom = bool(container.attrs.get("State", {}).get("OOMKilled"))
            error = (result.get("Error") or {}).get("Message") or None
        except docker.errors.NotFound:
            code, oom, error = None, False, "container disappeared"
        except docker.errors.APIError as exc:
            code, oom, error = None, False, f"cannot read exit status: {exc.explanation}"
        if drain is not None:
            drain.join()
        if run is not None and self._runs.get(task_id, 0) != run:
            return  # stopped by a restart, which follows the new run itself
        if error is None and code:
            out, err = self.log_path(task_id, "stdout"), self.log_path(task_id, "stderr")
            error = launch_failure(code, out, err)
        self._readers.pop(task_id, None)  # _runs keeps its count for late watchers
        try:
            entry = self.journal.get(task_id)
            keep = entry is not None and vps.is_vps(entry.order)  # a stopped VPS keeps it
            self._ended(task_id, code, oom, error)
        except JournalClosed:  # the container stays: the next start reads its exit code
            log.info("task %s ended as the runner stopped; its next start reports it", task_id)
            return
        if not keep:
            self._remove(container)

    def abandon(self, task_id: str, reason: str) -> None:
        """Settle a journaled task this runner can no longer follow (reported as vanished)."""
        self._ended(task_id, None, False, reason)

    def _ended(self, task_id: str, code: int | None, oom: bool, error: str | None) -> None:
        self._deadlines.cancel(task_id)
        record_ending(self.journal, self.on_end, task_id, code, oom, error)

    def _remove(self, container: Container) -> None:
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            log.warning("cannot remove container %s: %s", container.name, exc)

    # -- control --------------------------------------------------------------------
    def _container(self, task_id: str) -> Container:
        entry = self.journal.get(task_id)
        if entry is None or entry.state == "ended":
            raise UnknownTask(f"task {task_id} is not running on {self.node}")
        try:
            return self.docker.containers.get(entry.container or self.container_name(task_id))
        except docker.errors.NotFound:
            raise UnknownTask(f"the container of task {task_id} is gone") from None

    def kill(self, task_id: str) -> None:
        container = self._container(task_id)
        self.journal.mark(task_id, kill=True)
        if vps.is_vps_container(container):
            vps.stop(container)
            return
        self._hard_stop(container)

    def snapshot(self, task_id: str) -> str:
        """Commit a VPS's container (``docker commit``); the new image's tag."""
        container = self._container(task_id)
        if not vps.is_vps_container(container):
            raise UnknownTask(f"task {task_id} is not a VPS: only a VPS can be snapshotted")
        return vps.snapshot(self.docker, container, task_id)

    def restart(self, task_id: str) -> None:
        """Stop a running or paused VPS's container and start the same container again:
        its files, host key and authorized key stay. A failed start ends the task."""
        with self._restarts:
            container = self._container(task_id)
            if not vps.is_vps_container(container):
                raise UnknownTask(f"task {task_id} is not a VPS: only a VPS can be restarted")
            run = self._runs.get(task_id, 0)
            self._runs[task_id] = run + 1  # the watchers of this run stand down
            try:
                vps.stop(container)
            except docker.errors.DockerException as exc:
                self._runs[task_id] = run  # still running: its watchers carry on
                detail = getattr(exc, "explanation", None) or str(exc)
                raise StartError(f"docker could not stop the VPS: {detail}") from None
            reader = self._readers.pop(task_id, None)
            if reader is not None:
                reader.join(timeout=30)  # the old run's output is written before the new
            try:
                stream = self._attach(container, logs=True)
                container.start()
            except docker.errors.DockerException as exc:
                detail = getattr(exc, "explanation", None) or str(exc)
                self._ended(task_id, None, False, f"restart failed: {detail}")
                raise StartError(f"docker could not restart the VPS: {detail}") from None
            self.journal.set_state(task_id, "running")
            self._watch(task_id, container, stream)

    def remove(self, task_id: str, force: bool) -> None:
        """Remove a VPS's container and its snapshots. A VPS still live here is refused
        unless ``force``, which stops it first (its ending is reported as for a kill)."""
        entry = self.journal.get(task_id)
        if entry is not None and not vps.is_vps(entry.order):
            raise UnknownTask(f"task {task_id} is not a VPS: only a VPS can be removed")
        live = entry is not None and entry.state != "ended"
        if live and not force:
            raise UnknownTask(f"VPS {task_id} still runs on {self.node}: stop it first")
        container = vps.existing_container(self.docker, self.container_name(task_id))
        if container is not None:
            labels = container.labels
            if (labels.get(LABEL_CLUSTER), labels.get(LABEL_NODE)) != (
                self.cluster_id,
                self.node,
            ) or not vps.is_vps_container(container):
                raise UnknownTask(f"container {container.name} is not this node's VPS")
            if live:
                self.journal.mark(task_id, kill=True)
                vps.stop(container)
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
        vps.remove_snapshots(self.docker, task_id)

    def _hard_stop(self, container: Container) -> None:
        try:
            container.reload()
            if container.status == "paused":
                container.unpause()
            container.kill()
        except docker.errors.APIError as exc:
            if exc.status_code not in (404, 409):  # gone, or already stopped
                raise

    def pause(self, task_id: str) -> None:
        self._container(task_id).pause()
        self.journal.set_state(task_id, "paused")

    def resume(self, task_id: str) -> None:
        self._container(task_id).unpause()
        self.journal.set_state(task_id, "running")

    def _time_out(self, task_id: str) -> None:
        try:
            container = self._container(task_id)
        except UnknownTask:
            return
        self.journal.mark(task_id, timeout=True)
        self._hard_stop(container)

    # -- after a runner restart -----------------------------------------------------
    def own_containers(self) -> list[Container]:
        filters = {"label": [f"{LABEL_CLUSTER}={self.cluster_id}", f"{LABEL_NODE}={self.node}"]}
        return list(self.docker.containers.list(all=True, filters=filters))

    def adopt(self, entries: list[Entry]) -> None:
        """Re-attach to containers still running, settle those that ended meanwhile, and
        remove our own containers that the journal does not know."""
        mine = {c.labels.get(LABEL_TASK, ""): c for c in self.own_containers()}
        for entry in entries:
            container = mine.pop(entry.task_id, None)
            if container is None:
                self._ended(
                    entry.task_id,
                    None,
                    False,
                    "the container disappeared while the runner was down",
                )
                continue
            if container.status in ("running", "paused"):
                started = container.attrs.get("State", {}).get("StartedAt", "")
                self.journal.set_state(
                    entry.task_id, "paused" if container.status == "paused" else "running"
                )
                self._deadlines.arm(entry.task_id, entry.order.timeout, _since(started))
                follower = threading.Thread(
                    target=self._follow_history,
                    args=(entry.task_id, container, self._runs.get(entry.task_id, 0)),
                    name=f"adopt-{entry.task_id}",
                    daemon=True,
                )
                self._readers[entry.task_id] = follower
                follower.start()
                log.info("re-adopted running task %s", entry.task_id)
            else:
                self._save_logs(entry.task_id, container)
                self._finish(entry.task_id, container)
        for task_id, orphan in mine.items():
            if vps.is_vps_container(orphan) and orphan.status not in ("running", "paused"):
                continue  # a stopped VPS: kept for its restart
            log.warning("removing container %s of unknown task %s", orphan.name, task_id)
            self._remove(orphan)

    def _follow_history(self, task_id: str, container: Container, run: int) -> None:
        """Rewrite the log files from the container's full history, follow them until it
        exits, then settle the task. (``attach`` does not replay earlier output.)"""

        def copy(stream: str) -> None:
            flags = {"stdout": stream == "stdout", "stderr": stream == "stderr"}
            with self.log_path(task_id, stream).open("wb") as f:
                for chunk in container.logs(stream=True, follow=True, **flags):
                    f.write(chunk)
                    f.flush()

        readers = [
            threading.Thread(target=copy, args=(s,), daemon=True) for s in ("stdout", "stderr")
        ]
        for r in readers:
            r.start()
        for r in readers:
            r.join()
        self._finish(task_id, container, run=run)

    def _save_logs(self, task_id: str, container: Container) -> None:
        for stream, flags in (("stdout", (True, False)), ("stderr", (False, True))):
            data = container.logs(stdout=flags[0], stderr=flags[1])
            self.log_path(task_id, stream).write_bytes(data)


def _since(docker_time: str) -> float:
    """Seconds since a Docker timestamp (``2026-11-21T18:40:00.123456789Z``)."""
    from datetime import UTC, datetime

    try:
        stamp = datetime.fromisoformat(docker_time[:26].rstrip("Z") + "+00:00")
    except ValueError:
        return 0.0
    return max(0.0, time.time() - stamp.replace(tzinfo=UTC).timestamp())
