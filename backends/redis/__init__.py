"""Redis, the engine many nodes share (DESIGN §10): ``RedisEngine`` is a node's backend and
the shared rooms its ``interplay.runtime.node.Node`` follows; the scripts are in ``scripts``."""

from .engine import RedisEngine

__all__ = ["RedisEngine"]
