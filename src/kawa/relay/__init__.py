"""Joining two byte pipes: the relay primitive (:mod:`kawa.relay.pipe`: backpressure,
half-close, teardown), two sockets joined in the kernel (:mod:`kawa.relay.splice`), a
socket whose bytes can be spliced (:mod:`kawa.relay.raw_socket`) and kernel pipes
themselves (:mod:`kawa.relay.kernel_pipe`). The bottom layer of stream sessions: it
may import :mod:`kawa.protocol` and the standard library only, never :mod:`kawa.mux`,
:mod:`kawa.ws` or the host, runner or client."""
