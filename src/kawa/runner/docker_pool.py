"""One kept-alive connection pool for the short Docker calls on a task's path.

The Docker SDK's adapter for the local socket keeps a pool per URL, so every call about
a new container (start, inspect, kill, remove) opens and later closes a connection of
its own. Here those short calls share one pool; calls that hold their connection for
long (wait, attach, logs, events, exec) keep the SDK's pool per URL, as before.
"""

from __future__ import annotations

import re
from typing import Any

import docker
from docker.transport.unixconn import UnixHTTPAdapter

_SHORT = re.compile(
    r"/containers/(create|[0-9a-zA-Z_.-]+(/(start|json|kill|pause|unpause))?)(\?|$)"
)
_SHARED = "http+docker://localhost/short-calls"
SHARED_POOL_SIZE = 32
"""Idle connections the shared pool keeps (more may be open at once; extra ones close)."""


class SharedPoolAdapter(UnixHTTPAdapter):  # type: ignore[misc]
    def get_connection(self, url: str, proxies: Any = None) -> Any:
        path = url.split("://", 1)[-1]
        path = path[path.find("/") :] if "/" in path else path
        return super().get_connection(_SHARED if _SHORT.search(path) else url, proxies)


def share_connections(client: docker.DockerClient) -> None:
    """Send ``client``'s short calls through one pool when it talks to a local socket,
    and skip requests' reading of proxy settings there (a socket has no proxy; the
    lookup costs more CPU than the call)."""
    api = client.api
    adapter = getattr(api, "_custom_adapter", None)
    if not isinstance(adapter, UnixHTTPAdapter) or isinstance(adapter, SharedPoolAdapter):
        return
    shared = SharedPoolAdapter(
        "http+unix://" + adapter.socket_path,
        timeout=adapter.timeout,
        max_pool_size=max(adapter.max_pool_size, SHARED_POOL_SIZE),
    )
    api.mount("http+docker://", shared)
    api._custom_adapter = shared
    adapter.close()
    api.trust_env = False
