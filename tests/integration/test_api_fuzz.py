"""Schemathesis against the host's own OpenAPI description: a real host on 127.0.0.1
with real SQLite (and PostgreSQL, given ``KAWA_TEST_POSTGRES_URL``) and no runners,
called with an admin token (the runner calls with the cluster secret). Every answer
must be a non-5xx, with a documented status code, a documented content type and
headers, and a body that conforms to the documented schema.

Schemathesis's examples, coverage (boundary values: huge numbers, long strings,
wrong types) and fuzzing phases run in its deterministic mode, a few cases per
operation and at most 50 seconds a run, so the test is bounded and cannot fail by
chance (a slower machine tests fewer cases, never different ones). Left out, and why:

- WebSockets (events, terminals, forwarding) are not plain HTTP and not in the OpenAPI
  description; their bad input is in test_bad_input.py.
- Operations that build or run containers and images (create a workspace, package,
  bootstrap, import, exec): each case would take Docker seconds to minutes. Their
  parameters are the same bounded types as everywhere else.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kawa.host.app import prepare_database
from kawa.host.auth import Authenticator
from tests.conftest import BASE_IMAGE
from tests.integration.cluster import Cluster

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)
RUNNER_CALLS = r"^/api/v1/runner/"
LEFT_OUT = r"^/api/v1/(environments(/\{name\}/(package|bootstrap|import|exec))?|runner/.*)$"


POSTGRES_URL = os.environ.get("KAWA_TEST_POSTGRES_URL")
DATABASES = [
    pytest.param(None, id="sqlite"),
    pytest.param(
        POSTGRES_URL,
        id="postgresql",
        marks=pytest.mark.skipif(
            not POSTGRES_URL, reason="set KAWA_TEST_POSTGRES_URL to test PostgreSQL"
        ),
    ),
]


@pytest.fixture(scope="module", params=DATABASES)
def host(
    request: pytest.FixtureRequest,
    docker_available: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    """A host alone, on SQLite or (given a URL) on PostgreSQL."""
    c = Cluster(Path(tmp_path_factory.mktemp("fuzz")), BASE_IMAGE)
    url: str | None = request.param
    if url is not None:
        config = c.host_config().model_copy(update={"database_url": url})
        sessions = prepare_database(config)
        c.token = Authenticator(sessions, c.secret).create_token("fuzz", "admin")
        sessions.kw["bind"].dispose()  # the host opens its own connections
        c.extra_host_env["KAWA_HOST_DATABASE_URL"] = url
    try:
        c.start_host()
        yield c
    finally:
        c.close()


def schemathesis_run(host: Cluster, credential: str, *selection: str) -> str:
    """``st run`` against the host; its report when it finds anything, else ''."""
    args = [
        *("run", f"{host.url}/openapi.json"),
        *("--header", f"Authorization: Bearer {credential}"),
        *("--checks", CHECKS),
        *("--phases", "examples,coverage,fuzzing"),
        *("--max-examples", "10"),
        "--generation-deterministic",
        *("--workers", "1"),
        *("--request-timeout", "30"),
        *("--max-time", "50"),
        *("--suppress-health-check", "all"),
        *("--report-dir", str(host.root / "schemathesis")),
        "--no-color",
        *selection,
    ]
    r = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=host.root,
    )
    if r.returncode == 0:
        return ""
    return f"exit {r.returncode}\n{r.stdout[-20000:]}\n{r.stderr[-5000:]}"


def test_user_api_answers_as_documented(host: Cluster) -> None:
    report = schemathesis_run(
        host,
        host.token,
        *("--exclude-path-regex", LEFT_OUT),
    )
    assert not report, report


def test_runner_api_answers_as_documented(host: Cluster) -> None:
    report = schemathesis_run(host, host.secret, "--include-path-regex", RUNNER_CALLS)
    assert not report, report
