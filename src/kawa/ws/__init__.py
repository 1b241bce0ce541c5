"""Kawa's WebSockets as message channels: the channel interface
(:mod:`kawa.ws.channel`), Kawa's own lean WebSocket on a socket it holds
(:mod:`kawa.ws.websocket`, payloads spliced past Python by :mod:`kawa.ws.direct`), its
dialer (:mod:`kawa.ws.dial`), uvicorn's server protocol with socket detach
(:mod:`kawa.ws.uvicorn_detach`), and Starlette's and the ``websockets`` library's
connections as channels. It may import :mod:`kawa.protocol` and :mod:`kawa.relay`, never
:mod:`kawa.mux` (the multiplexer runs on top of these channels) or the host, runner or
client."""
