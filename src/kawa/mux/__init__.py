"""Many streams over one message channel: a session (:mod:`kawa.mux.session`) that
reads every frame of :mod:`kawa.protocol.streams` and hands it to its stream
(:mod:`kawa.mux.stream`), each a byte pipe with its own credit windows. It may import
:mod:`kawa.protocol`, :mod:`kawa.relay` and the channel interface
(:mod:`kawa.ws.channel`), never a WebSocket implementation: what a channel can do beyond
sending and receiving messages it declares itself. :mod:`kawa.mux.stream` does not
import :mod:`kawa.mux.session` (a stream sees its session through a protocol)."""
