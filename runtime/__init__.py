"""interplay's transport-neutral server runtime (DESIGN §8).

Sessions, their outboxes, fan-out, backpressure, rate shaping, deadlines, the tick driver,
drain and auth live here once, under every transport. Nothing here imports a wire library
(grpclib, h2, protobuf, betterproto2, websockets): a transport adapter does only wire work.
"""
