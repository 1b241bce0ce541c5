"""Joining across machines: tokens, advertise addresses found by route, refusals."""

from __future__ import annotations

from tests.integration.cluster import KAWA
from tests.netns.conftest import CLIENT, R1, R2, RUNNER_PORT, SPARE, NetCluster, eventually


def test_two_runners_joined_with_one_token_at_their_own_addresses(net: NetCluster) -> None:
    nodes = {n.name: n for n in net.api(lambda c: c.nodes())}
    assert set(nodes) == {R1, R2}
    for name in (R1, R2):
        address = net.lab.machines[name].address
        assert nodes[name].url == f"http://{address}:{RUNNER_PORT}"  # found by route
        assert nodes[name].status.value == "online"
    [token] = [t for t in net.api(lambda c: c.join_tokens()) if t.uses == 2]
    assert (token.used, token.state) == (2, "used up")


def refused_join(net: NetCluster, token: str) -> str:
    done = net.cli("join", net.url, token, "--name", "nobody", "--no-start", machine=SPARE)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    return done.stderr


def test_reused_revoked_and_expired_tokens_are_refused(net: NetCluster) -> None:
    used = net.join_token()
    ok = net.cli("join", net.url, used, "--name", "once", "--no-start", machine=SPARE)
    assert ok.returncode == 0, ok.stderr
    assert "used up" in refused_join(net, used)
    revoked = net.api(lambda c: c.join_tokens())[-1]
    revoked_token = net.join_token(uses=3)
    token_id = net.api(lambda c: c.join_tokens())[-1].id
    assert token_id != revoked.id
    net.api(lambda c: c.revoke_join_token(token_id))
    assert f"join token {token_id} was revoked" in refused_join(net, revoked_token)
    short = net.join_token(ttl=0.2)
    short_id = net.api(lambda c: c.join_tokens())[-1].id
    eventually(
        lambda: net.api(lambda c: c.join_tokens())[-1].state == "expired", 10, "the token to expire"
    )
    assert f"join token {short_id} expired at" in refused_join(net, short)
    other = "kawajoin.0123456789ab." + "e" * 40
    assert "this join token is for cluster 0123456789ab" in refused_join(net, other)


def test_an_advertised_address_the_host_cannot_reach_is_refused(net: NetCluster) -> None:
    token = net.join_token()
    ghost = "http://10.213.0.99:8421"
    log = net.root / f"runner-{SPARE}.log"
    data = net.root / "runners" / "ghost"
    argv = ["join", net.url, token, "--name", "ghost", "--data-dir", str(data)]
    proc = net.lab.spawn(SPARE, [*KAWA, *argv, "--advertise", ghost], net.env(), log)
    try:
        eventually(
            lambda: (
                "cannot reach runner ghost at address 10.213.0.99 port 8421"
                in log.read_text(errors="replace")
            ),
            60,
            "the refusal in the runner's log",
        )
        assert "ghost" not in {n.name for n in net.api(lambda c: c.nodes())}
    finally:
        net.lab.stop(proc)


def test_the_host_is_unreachable_from_a_machine_without_a_cable(net: NetCluster) -> None:
    token = net.join_token()
    net.lab.link(SPARE, up=False)
    try:
        done = net.cli("join", net.url, token, "--no-start", machine=SPARE, timeout=120)
    finally:
        net.lab.link(SPARE, up=True)
    assert done.returncode == 1 and "cannot reach the Kawa host at" in done.stderr, done.stderr
    assert net.api(lambda c: c.join_tokens())[-1].used == 0
    assert CLIENT  # the client machine kept its cable
