"""The federated rounds' protocol constants, shared by the coordinator and the venue adapters.

A DualVariables v2 message carries a ``phase`` and ``flags`` (see ``contracts.toml``); v3 (secure
aggregation, :mod:`arbsphere.privacy.secure_rounds`) adds the participants and the REVEAL
phase. Venue
adapters connect a DEALER with :func:`venue_identity` to the coordinator's ROUTER.
"""

from __future__ import annotations

PHASE_BEGIN = 1  # freeze the venue's problem for the solve, answer round 1
PHASE_ITERATE = 2  # settle z with the last round's x̄, answer the next round
PHASE_FINAL = 3  # settle z; no answer
PHASE_ABORT = 4  # the solve is dropped; the next one starts cold
PHASE_REVEAL = 5  # secure aggregation: settle z, close the solve, answer with x of reveal_round
FLAG_COLD = 1  # BEGIN: start from z = 0


def venue_identity(venue_id: int) -> bytes:
    """The DEALER identity of venue ``venue_id``'s adapter on the rounds socket."""
    return f"venue-{venue_id}".encode()
