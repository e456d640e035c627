"""interplay: real-time bidirectional streaming services.

``interplay.core`` is the pure domain core; ``interplay.stores`` the storage behind it;
``interplay.transports.grpc`` the grpclib adapter; ``interplay.cli`` the ``interplay`` command,
the one place that reads configuration and wires them together.
"""

__version__ = "0.1.0"
