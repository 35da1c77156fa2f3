"""Time from registry notifications: a receiver, a durable event store, and events as frames.

The receiver and the store use the standard library only (``from dreg_frames.events import
EventReceiver`` loads no pandas); the frame functions load pandas on first use.

Example::

    from dreg_frames.events import EventReceiver, load_events, digest_activity
    EventReceiver("events.db", port=5001).serve_forever()       # the registry's notifications endpoint
    digest_activity(load_events("events.db"))                   # pushed / last_pulled / pulls_30d
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_getattr
from .receiver import EventReceiver
from .store import EventStore, EventStoreError, InvalidEnvelope, parse_envelope

if TYPE_CHECKING:
    from .frames import (
        CRAWLER_AGENT_PREFIX,
        activity_for,
        digest_activity,
        load_events,
        recording_start,
    )

__all__ = [
    "CRAWLER_AGENT_PREFIX",
    "EventReceiver",
    "EventStore",
    "EventStoreError",
    "InvalidEnvelope",
    "activity_for",
    "digest_activity",
    "load_events",
    "parse_envelope",
    "recording_start",
]

_LAZY = {
    "CRAWLER_AGENT_PREFIX": ".frames",
    "activity_for": ".frames",
    "digest_activity": ".frames",
    "load_events": ".frames",
    "recording_start": ".frames",
}

__getattr__ = lazy_getattr(__name__, _LAZY, globals())
