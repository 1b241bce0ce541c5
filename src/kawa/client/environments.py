"""The streaming environment calls of the sync client: package, import, export,
bootstrap (NDJSON progress) and the scripted shell.

Each function takes the client's ``httpx.Client`` (base URL ``…/api/v1``)."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from kawa.client.errors import KawaError, raise_for
from kawa.client.refs import path_segment
from kawa.digests import CHUNK, read_chunks, sha256_file
from kawa.protocol.environments import (
    DIGEST_HEADER,
    VERSION_HEADER,
    EnvironmentVersionView,
    ExecFrame,
    Progress,
)

OnProgress = Callable[[Progress], None]
OnBytes = Callable[[int, int | None], None]
"""``(bytes done, bytes in all or None)``"""
LONG = httpx.Timeout(None, connect=10.0)


def _name(name: str) -> str:
    return path_segment(name, "environment name")


def _lines(response: httpx.Response) -> Iterator[str]:
    if response.status_code >= 300:
        response.read()
        raise_for(response)
    for line in response.iter_lines():
        if line.strip():
            yield line


def _follow(response: httpx.Response, on_progress: OnProgress | None) -> EnvironmentVersionView:
    for line in _lines(response):
        frame = Progress.model_validate_json(line)
        if frame.error is not None:
            raise KawaError(frame.error, frame.status)
        if frame.result is not None:
            return frame.result
        if on_progress is not None:
            on_progress(frame)
    raise KawaError("the host's answer ended before the operation did")


def package(
    http: httpx.Client, name: str, on_progress: OnProgress | None
) -> EnvironmentVersionView:
    with http.stream("POST", f"/environments/{_name(name)}/package", timeout=LONG) as r:
        return _follow(r, on_progress)


def bootstrap(
    http: httpx.Client, name: str, suite: str, mirror: str | None, on_progress: OnProgress | None
) -> EnvironmentVersionView:
    params = {"suite": suite, **({"mirror": mirror} if mirror else {})}
    with http.stream(
        "POST", f"/environments/{_name(name)}/bootstrap", params=params, timeout=LONG
    ) as r:
        return _follow(r, on_progress)


def import_file(
    http: httpx.Client,
    name: str,
    path: Path,
    on_upload: OnBytes | None,
    on_progress: OnProgress | None,
) -> EnvironmentVersionView:
    size = path.stat().st_size

    def body() -> Iterator[bytes]:
        sent = 0
        for chunk in read_chunks(path):
            sent += len(chunk)
            yield chunk
            if on_upload is not None:
                on_upload(sent, size)

    headers = {"Content-Type": "application/x-tar", "Content-Length": str(size)}
    with http.stream(
        "POST", f"/environments/{_name(name)}/import", content=body(), headers=headers, timeout=LONG
    ) as r:
        return _follow(r, on_progress)


def export(
    http: httpx.Client, name: str, version: str | None, dest: Path, on_bytes: OnBytes | None
) -> tuple[str, str]:
    """Download a version's tarball to ``dest``, resuming ``dest.partial`` if one is
    there, and check its digest; (version, digest)."""
    partial = dest.with_name(dest.name + ".partial")
    have = partial.stat().st_size if partial.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    params = {"version": version} if version else {}
    with http.stream(
        "GET", f"/environments/{_name(name)}/tarball", params=params, headers=headers, timeout=LONG
    ) as r:
        if r.status_code == 416:  # the partial file is stale: start over
            partial.unlink()
            return export(http, name, version, dest, on_bytes)
        if r.status_code >= 300:
            r.read()
            raise_for(r)
        digest, found = r.headers[DIGEST_HEADER], r.headers[VERSION_HEADER]
        if r.status_code == 206:
            total = int(r.headers["content-range"].rsplit("/", 1)[1])
        else:
            have, total = 0, int(r.headers.get("content-length", 0))
        with partial.open("ab" if have else "wb") as f:
            for chunk in r.iter_bytes(CHUNK):
                f.write(chunk)
                have += len(chunk)
                if on_bytes is not None:
                    on_bytes(have, total)
    got = sha256_file(partial)
    if got != digest:
        partial.unlink()
        raise KawaError(f"the download's sha256 is {got}, the host says {digest}; try again")
    partial.replace(dest)
    return found, digest


def run_script(
    http: httpx.Client,
    name: str,
    stdin: bytes,
    command: str | None,
    on_output: Callable[[str, bytes], None],
) -> int:
    """Run a script (or ``command`` fed ``stdin``) in a workspace; its exit status."""
    params = {"command": command} if command else {}
    with http.stream(
        "POST", f"/environments/{_name(name)}/exec", content=stdin, params=params, timeout=LONG
    ) as r:
        for line in _lines(r):
            frame = ExecFrame.model_validate_json(line)
            if frame.stream == "exit":
                if frame.error is not None:
                    raise KawaError(frame.error)
                return -1 if frame.exit_code is None else frame.exit_code
            on_output(frame.stream, base64.b64decode(frame.data))
    raise KawaError("the host's answer ended before the command did")


def delete(http: httpx.Client, name: str, force: bool) -> None:
    r = http.delete(f"/environments/{_name(name)}", params={"force": str(force).lower()})
    raise_for(r)
