"""Moving bytes between two endpoints: the relay primitive (:mod:`kawa.relay.pipe`) and
many streams over one WebSocket (:mod:`kawa.relay.mux`, framing in
:mod:`kawa.protocol.streams`). Used by the host, the runner and the client alike."""
