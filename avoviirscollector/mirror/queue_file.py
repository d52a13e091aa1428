"""The queue file (etc/gina_queues.yaml): what to mirror, read and checked.

Read before anything else of a poll, since the listing's question names the
enabled queues' satellites; the rules of a queue are :func:`gina_catalog.parse_queues`.
"""

from __future__ import annotations

from pathlib import Path  # noqa: TC003 - the type of an argument

import yaml

from avoviirscollector.mirror import gina_catalog
from avoviirscollector.mirror.gina_catalog import Queue, QueueConfigError


def load_queues(path: Path) -> list[Queue]:
    """The queues of the YAML file; QueueConfigError with the file's name on any problem."""
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as error:
        raise QueueConfigError(f"cannot read {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise QueueConfigError(f"{path} is not valid YAML: {error}") from None
    try:
        return gina_catalog.parse_queues(document)
    except QueueConfigError as error:
        raise QueueConfigError(f"{path}: {error}") from None
