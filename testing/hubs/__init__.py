"""The core's hubs against plain models, for an app that embeds, subclasses or wraps one.

    from interplay.testing.hubs import RoomHubConformance

    class TestMyRoomHub(RoomHubConformance):
        def make_hub(self, **options):
            return MyRoomHub(**options)

pytest runs the machine on ``TestMyRoomHub`` (only ``Test*`` classes are collected); it fails
with ``HubBroken``, naming the promise broken and the steps Hypothesis found. Each machine runs
under the current Hypothesis profile. ``stored.Stored`` performs a hub's storage effects at
once on a backend's sync side, as the machines (and core tests without an event loop) need.
"""

from .documents import DocumentHubConformance, DocumentHubMachine
from .matches import MatchHubConformance, MatchHubMachine
from .rooms import RoomHubConformance, RoomHubMachine
from .run import HubBroken

__all__ = [
    "DocumentHubConformance",
    "DocumentHubMachine",
    "HubBroken",
    "MatchHubConformance",
    "MatchHubMachine",
    "RoomHubConformance",
    "RoomHubMachine",
]
