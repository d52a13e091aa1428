"""The data of a file message, exactly as trollstalker publishes it for an SDR file.

trollstalker builds it from a file event; the stalker's catch-up at start, the
gatherers' replay and ``viirscollector reprocess`` build it from a path on disk.
One function for all of them keeps the fields the workers read identical.
"""

from __future__ import annotations

import os
from pathlib import Path

from avoviirscollector.filenames import parse

SENSOR = ["viirs"]
#: Subject of file messages (trollstalker's topic in etc/trollstalker.ini).
FILE_TOPIC = "/AVO/viirs/sdr"


def file_message_data(path: str | os.PathLike) -> dict:
    """Message data for one SDR file: what trollstalker sends, key for key.

    Raises filenames.FilenameError for a name that is not an SDR file name.
    """
    path = Path(path)
    name = parse(path.name)
    return {
        "segment": name.segment,
        "platform_name": name.platform_name,
        "orig_platform_name": name.platform,
        "start_time": name.start,
        "end_time": name.end,
        "orbit_number": name.orbit,
        "proctime": name.created,
        "source": name.source,
        "uri": str(path),
        "uid": path.name,
        "sensor": list(SENSOR),
    }
