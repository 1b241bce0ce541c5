"""Files inside a task's container (confined to it), from the client: list, read, write,
rename, delete, mkdir. Reads and writes stream, with an optional progress callback
``on_bytes(done, total)`` (total is None when unknown)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import httpx

from kawa.client.errors import KawaError, raise_for, unreachable
from kawa.client.refs import path_segment
from kawa.protocol.common import API_PREFIX
from kawa.protocol.files import FileEntry, FileList, FileWritten, MkdirRequest, MoveRequest
from kawa.tls.contexts import PathLike, httpx_verify

OnBytes = Callable[[int, int | None], None]
CHUNK = 256 * 1024


def _task(ref: str) -> str:
    return path_segment(ref, "task id")


class RemoteFiles:
    """The files API of one host, with the user's token. Use as a context manager."""

    def __init__(
        self, url: str, token: str, timeout: float = 60.0, ca_file: PathLike | None = None
    ) -> None:
        self.url = url.rstrip("/")
        try:
            self._http = httpx.Client(
                base_url=self.url + API_PREFIX,
                timeout=httpx.Timeout(timeout, connect=10.0),
                headers={"Authorization": f"Bearer {token}"},
                verify=httpx_verify(ca_file),
            )
        except httpx.InvalidURL as exc:
            raise KawaError(f"bad host URL {url!r}: {exc}") from None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RemoteFiles:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise unreachable(self.url, exc) from None
        raise_for(response)
        return response.json()

    # -- metadata -------------------------------------------------------------------
    def list(self, task: str, path: str) -> FileList:
        return FileList.model_validate(
            self._request("GET", f"/tasks/{_task(task)}/files", params={"path": path})
        )

    def stat(self, task: str, path: str) -> FileEntry:
        return FileEntry.model_validate(
            self._request("GET", f"/tasks/{_task(task)}/files/stat", params={"path": path})
        )

    def mkdir(self, task: str, path: str, parents: bool = False) -> FileEntry:
        body = MkdirRequest(path=path, parents=parents).model_dump()
        return FileEntry.model_validate(
            self._request("POST", f"/tasks/{_task(task)}/files/mkdir", json=body)
        )

    def move(self, task: str, source: str, destination: str) -> FileEntry:
        body = MoveRequest(source=source, destination=destination).model_dump()
        return FileEntry.model_validate(
            self._request("POST", f"/tasks/{_task(task)}/files/move", json=body)
        )

    def remove(self, task: str, path: str, recursive: bool = False) -> FileEntry:
        params = {"path": path, "recursive": str(recursive).lower()}
        return FileEntry.model_validate(
            self._request("DELETE", f"/tasks/{_task(task)}/files", params=params)
        )

    # -- content --------------------------------------------------------------------
    def iter_read(self, task: str, path: str, on_bytes: OnBytes | None = None) -> Iterator[bytes]:
        """The file's bytes in chunks as they arrive."""
        try:
            with self._http.stream(
                "GET",
                f"/tasks/{_task(task)}/files/content",
                params={"path": path},
                timeout=httpx.Timeout(None, connect=10.0),
            ) as response:
                if response.status_code >= 300:
                    response.read()
                    raise_for(response)
                length = response.headers.get("content-length")
                total = int(length) if length and length.isdigit() else None
                done = 0
                for chunk in response.iter_raw(CHUNK):
                    done += len(chunk)
                    if on_bytes is not None:
                        on_bytes(done, total)
                    yield chunk
        except httpx.HTTPError as exc:
            raise unreachable(self.url, exc) from None

    def read(self, task: str, path: str) -> bytes:
        return b"".join(self.iter_read(task, path))

    def download(
        self, task: str, path: str, dest: Path | IO[bytes], on_bytes: OnBytes | None = None
    ) -> int:
        """Copy the file to ``dest`` (a local path, written whole or not at all, or an
        open binary file); the number of bytes."""
        size = 0
        if isinstance(dest, Path):
            partial = dest.with_name(dest.name + ".partial")
            try:
                with partial.open("wb") as out:
                    for chunk in self.iter_read(task, path, on_bytes):
                        out.write(chunk)
                        size += len(chunk)
                partial.replace(dest)
            finally:
                partial.unlink(missing_ok=True)
            return size
        for chunk in self.iter_read(task, path, on_bytes):
            dest.write(chunk)
            size += len(chunk)
        return size

    def write(
        self,
        task: str,
        path: str,
        data: bytes | IO[bytes],
        parents: bool = False,
        size: int | None = None,
        on_bytes: OnBytes | None = None,
    ) -> FileWritten:
        """Write ``data`` (bytes or an open binary file, streamed) to ``path``."""
        if isinstance(data, bytes):
            size = len(data)

        def chunks() -> Iterator[bytes]:
            done = 0
            views: Iterator[bytes]
            if isinstance(data, bytes):
                views = (data[i : i + CHUNK] for i in range(0, len(data), CHUNK))
            else:
                views = iter(lambda: data.read(CHUNK), b"")
            for chunk in views:
                done += len(chunk)
                yield chunk
                if on_bytes is not None:
                    on_bytes(done, size)
            if done == 0 and on_bytes is not None:
                on_bytes(0, size)

        params = {"path": path, "parents": str(parents).lower()}
        return FileWritten.model_validate(
            self._request(
                "PUT",
                f"/tasks/{_task(task)}/files/content",
                params=params,
                content=chunks(),
                timeout=httpx.Timeout(None, connect=10.0),
            )
        )

    def upload(
        self,
        task: str,
        source: Path,
        path: str,
        parents: bool = False,
        on_bytes: OnBytes | None = None,
    ) -> FileWritten:
        with source.open("rb") as f:
            return self.write(task, path, f, parents, source.stat().st_size, on_bytes)
