"""The federated rounds' protocol constants, shared by the coordinator and the venue adapters.

A DualVariables v2 message carries a ``phase`` and ``flags`` (see ``contracts.toml``); v3 (secure
aggregation, :mod:`arbsphere.privacy.secure_rounds`) adds the participants and the REVEAL
phase. Venue
adapters connect a DEALER with :func:`venue_identity` to the coordinator's ROUTER.
"""

from __future__ import annotations

from arbsphere.contracts import default_registry

#: DualVariables ``phase`` codes (``RoundPhase`` in ``contracts.toml``, which says what each
#: asks of the venue), plain ints for the rounds' per-message comparisons
PHASE_BEGIN, PHASE_ITERATE, PHASE_FINAL, PHASE_ABORT, PHASE_REVEAL = default_registry().codes(
    "RoundPhase", "BEGIN", "ITERATE", "FINAL", "ABORT", "REVEAL"
)
#: DualVariables ``flags``: BEGIN starts from z = 0
(FLAG_COLD,) = default_registry().codes("RoundFlags", "COLD")


def venue_identity(venue_id: int) -> bytes:
    """The DEALER identity of venue ``venue_id``'s adapter on the rounds socket."""
    return f"venue-{venue_id}".encode()
