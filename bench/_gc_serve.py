"""``interplay serve`` with the cyclic GC's time counted (``chat_load.py --gc``).

    python bench/_gc_serve.py serve --port 0 ...      (the arguments of ``interplay serve``)

Run by the Python of the build measured (any checkout's venv): on exit it writes
``{"seconds": ..., "collections": [gen0, gen1, gen2]}`` to the file named by
``INTERPLAY_GC_REPORT``, counting from the first collection on (start-up included).
"""

from __future__ import annotations

import atexit
import gc
import json
import os
import sys
import time
from typing import Any

began = 0.0
seconds = 0.0
collections = [0, 0, 0]


def _timed(phase: str, info: dict[str, Any]) -> None:
    global began, seconds
    if phase == "start":
        began = time.perf_counter()
    else:
        seconds += time.perf_counter() - began
        collections[info["generation"]] += 1


def _report() -> None:
    path = os.environ.get("INTERPLAY_GC_REPORT")
    if path:
        with open(path, "w") as out:
            json.dump({"seconds": seconds, "collections": collections}, out)


gc.callbacks.append(_timed)
atexit.register(_report)

if __name__ == "__main__":
    from interplay.cli import main

    sys.argv[0] = "interplay"
    sys.exit(main())
