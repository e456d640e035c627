"""The suite's ``listen`` for interplay's own transports (``interplay.testing.transport`` is the
suite): ``grpc_transport`` for gRPC, ``websocket_transport`` for WebSocket in both subprotocols.
Mix one into a conformance class (tests/transports/conformance/test_transports.py)."""
