"""The contract between the engine and the store: the event batch and the code tables.

The engine (``sim.engine``) produces :class:`EventBatch` objects; the store
(``sim.store``) writes them. Both sides, and the learned models, read the code tables
here, so neither layer imports the other to know what a code means. Codes are stored as
small integers in the columnar state and as their names in the database.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "BLOCKS",
    "CAUSES",
    "KIND_CODES",
    "EventBatch",
]

#: Agent kind codes (index into this tuple).
KIND_CODES = ("citizen", "influencer", "troll", "counter_speaker")
CITIZEN, INFLUENCER, TROLL, COUNTER = 0, 1, 2, 3

#: Why an act was aimed at its target (``interactions.cause``).
CAUSES = ("organic", "exposure", "reply", "recommended", "counter", "learned")
ORGANIC, EXPOSURE, REPLY, RECOMMENDED, COUNTERED = 0, 1, 2, 3, 4

#: Why an act was not delivered (``interactions.blocked_by``; index 0: delivered).
BLOCKS = (None, "moderation", "friction", "rate_limit", "unavailable")
B_NONE, B_MODERATION, B_FRICTION, B_RATE, B_UNAVAILABLE = 0, 1, 2, 3, 4


@dataclass
class EventBatch:
    """The acts of one engine step, in time order.

    ``blocked`` holds codes of ``BLOCKS`` (0: delivered) and ``cause`` codes of
    ``CAUSES``. ``suspended`` is an agent suspended by the last act, or -1.
    ``until`` (optional) is the time up to which the dynamics consumed the activity process
    when it stopped early at a time of its own choosing (a learned intensity that it
    refreshes every few hours): the engine then resumes from ``until`` instead of the
    last act. It must not exceed the time of the first discarded act.
    """

    t: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    sign: np.ndarray
    weight: np.ndarray
    blocked: np.ndarray
    cause: np.ndarray
    suspended: int = -1
    until: float = float("nan")

    def __len__(self) -> int:
        return int(self.t.shape[0])
