"""Processes in containers behind ``docker exec``, shared by the host (workspace
containers on its own Docker) and the runner (task containers): a TTY exec as a relay
pipe (:mod:`kawa.docker_exec.exec_tty`) and a terminal stream served by one
(:mod:`kawa.docker_exec.terminal`). It knows containers, the Docker SDK and streams
only: it may import :mod:`kawa.relay`, :mod:`kawa.mux` and :mod:`kawa.protocol`, never
the host or the runner, whose state it never sees."""
