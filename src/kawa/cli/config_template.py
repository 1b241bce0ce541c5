"""The commented configuration file ``kawa init config`` writes."""

from __future__ import annotations

TEMPLATE = """\
# Kawa configuration. Every key can be overridden by an environment variable
# KAWA_<SECTION>_<KEY> (e.g. KAWA_HOST_PORT=9000) and by command-line flags.

[host]
bind = "0.0.0.0"            # address the API listens on
port = 8420                 # REST + WebSocket API and dashboard
ssh_port = 8422             # SSH gateway
data_dir = "/var/lib/kawa"  # database and host state
# database_url = "postgresql://kawa:secret@db/kawa"   # default: SQLite in data_dir
#   (with PostgreSQL, several hosts may share the database: docs/operations.md)
cluster_secret = "{secret}" # runners join with this; keep it private
heartbeat_interval = 2.0    # seconds between runner heartbeats
node_timeout = 10.0         # a runner silent this long is offline; its tasks are lost
strategy = "binpack"        # or "spread"
default_container = "default"
# shared_dir = "/mnt/cluster-share"   # optional shared filesystem (logs, tarballs)
keep_versions = 3           # packaged versions kept per environment
sweep_limit = 10000         # most combinations one `kawa task submit --sweep` may have
submit_limit = 256          # submissions handled at once; more are answered 429 + Retry-After
api_threads = 8             # worker threads for API calls' database work (more wait their turn)
# TLS (docs/tls.md; `kawa init tls` writes the files and prints these lines):
# tls_cert = "/etc/kawa/tls/server.pem"     # serve https with this certificate
# tls_key = "/etc/kawa/tls/server-key.pem"
# ca_file = "/etc/kawa/tls/ca.pem"          # verify runners serving https with it

[runner]
name = "{hostname}"
host_url = "http://HOST:8420"   # hosts sharing a database: "http://A:8420,http://B:8420"
port = 8421
# advertise_url = "http://{hostname}:8421"   # how the host reaches this runner
cluster_secret = "{secret}"
data_dir = "/var/lib/kawa-runner"           # journal and logs; never mounted into tasks
# shared_dir = "/mnt/cluster-share"
# local_temp_dir = "/scratch"               # mounted at /local_temp in tasks
# cores = 16                                # offer fewer cores than the machine has
allow_native = true                         # accept --native tasks (cgroups or systemd-run)
# native_user = "kawa"                      # run native tasks as this user
# tls_cert = "/etc/kawa/tls/server.pem"     # serve https to the host (docs/tls.md)
# tls_key = "/etc/kawa/tls/server-key.pem"
# ca_file = "/etc/kawa/tls/ca.pem"          # verify a host serving https with it

[client]
url = "http://HOST:8420"        # hosts sharing a database: "http://A:8420,http://B:8420"
token = ""                  # `kawa init token` prints one
# ca_file = "/etc/kawa/tls/ca.pem"   # verify a host serving https with it
"""


def render(secret: str, hostname: str) -> str:
    return TEMPLATE.format(secret=secret, hostname=hostname)
