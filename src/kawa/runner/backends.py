"""The runner's execution backends, composed when it knows its cluster: Docker always,
native when the config allows it and this machine's cgroups can be used."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import docker

from kawa.runner import task_tools
from kawa.runner.cgroups import CgroupError
from kawa.runner.docker_executor import DockerExecutor
from kawa.runner.executor import ContainerExecutor, Executor, OnEnd
from kawa.runner.executor_router import ExecutorRouter
from kawa.runner.journal import Journal
from kawa.runner.native_executor import NativeExecutor
from kawa.settings import RunnerConfig

log = logging.getLogger(__name__)
LOG_SUBDIR = "kawa-logs"

BuildExecutor = Callable[[Journal, str, OnEnd], ContainerExecutor]
"""Builds the runner's executor from its journal, the cluster id the host gave it and
what to call when a task ends."""


def log_dir(config: RunnerConfig) -> Path:
    """Where task logs are written: the shared directory when there is one (the host
    reads them there), else the runner's data directory."""
    if config.shared_dir is not None:
        return config.shared_dir / LOG_SUBDIR
    return config.data_dir / "logs"


def task_dirs(config: RunnerConfig) -> tuple[Path | None, Path]:
    """The shared-data and local-temp directories mounted into tasks (created)."""
    shared = config.shared_dir / "shared_data" if config.shared_dir else None
    local = config.local_temp_dir or config.data_dir / "local_temp"
    for d in (shared, local):
        if d is not None:
            d.mkdir(parents=True, exist_ok=True)
    return shared, local


def local_backends(config: RunnerConfig) -> BuildExecutor:
    """Docker (and native when allowed) on this machine, behind one router."""

    def build(journal: Journal, cluster_id: str, on_end: OnEnd) -> ContainerExecutor:
        shared, local = task_dirs(config)
        tools = task_tools.install(config.data_dir / "task-tools")
        containers = DockerExecutor(
            docker.from_env(timeout=120),
            journal,
            cluster_id,
            config.name,
            log_dir(config),
            on_end,
            shared,
            local,
            kawa_program=tools,
        )
        native = _native(config, journal, on_end, shared, local, tools)
        return ExecutorRouter(journal, containers, native)

    return build


def _native(
    config: RunnerConfig,
    journal: Journal,
    on_end: OnEnd,
    shared: Path | None,
    local: Path,
    tools: Path,
) -> Executor | None:
    """The native backend, unless the config forbids it or cgroups are unusable."""
    if not config.allow_native:
        return None
    try:
        return NativeExecutor(
            journal, config.name, log_dir(config), on_end, shared, local,
            state_dir=config.data_dir / "native", native_user=config.native_user,
            kawa_program=tools,
        )
    except (CgroupError, OSError) as exc:
        log.warning("native execution unavailable on this node: %s", exc)
        return None
