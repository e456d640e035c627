"""Our hubs pass the hub machines (``interplay.testing.hubs``): one class each."""

from interplay.testing.hubs import DocumentHubConformance, MatchHubConformance, RoomHubConformance


class TestRoomHub(RoomHubConformance):
    pass


class TestDocumentHub(DocumentHubConformance):
    pass


class TestMatchHub(MatchHubConformance):
    pass
