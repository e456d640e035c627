"""The browser app: static files that ``interplay serve`` serves on ``--ws-port``."""
