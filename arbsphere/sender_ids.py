"""The envelope ``sender_id`` of every pipeline role (one place: the roster, the tags' link keys
and the replay windows all key on them)."""

from __future__ import annotations

COORDINATOR_SENDER_ID = 1
BROKER_SENDER_ID = 2
#: the campaign registry (governance channel)
REGISTRY_SENDER_ID = 3
#: venue adapter of venue ``i``: ``VENUE_SENDER_BASE + i``
VENUE_SENDER_BASE = 100
