"""systemd unit files for the host and the runner (``kawa init service``)."""

from __future__ import annotations

import shlex
from pathlib import Path

UNIT = """\
[Unit]
Description=Kawa {role}
After=network-online.target{after}
Wants=network-online.target{wants}

[Service]
Type=simple
ExecStart={exec_start}
Restart=always
RestartSec=3
{environment}
[Install]
WantedBy=multi-user.target
"""


def render_unit(role: str, executable: str, config: Path) -> str:
    """The unit text for ``role`` (``host`` or ``runner``) running ``executable``."""
    if role not in ("host", "runner"):
        raise ValueError(f"unknown role {role!r}: use host or runner")
    command = [executable, "-m", "kawa.cli.main", role, "--config", str(config)]
    docker = role == "runner"
    return UNIT.format(
        role=role,
        after=" docker.service" if docker else "",
        wants=" docker.service" if docker else "",
        exec_start=shlex.join(command),
        environment=f"Environment=KAWA_CONFIG={shlex.quote(str(config))}\n",
    )
