"""Building a client from the user's configuration."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kawa.cli.output import CliError

if TYPE_CHECKING:
    from kawa.client import KawaClient


def client() -> KawaClient:
    from kawa.client import KawaClient
    from kawa.settings import ClientConfig, config_path

    config = ClientConfig.load()
    if not config.token:
        raise CliError(
            f"no API token configured: run `kawa up`, or set [client] token in "
            f"{config_path()} (or KAWA_CLIENT_TOKEN)"
        )
    return KawaClient(config.url, config.token, config.timeout, config.ca_file)
