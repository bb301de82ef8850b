"""A venue adapter's side of the SharedSignals' secure aggregation: one SignalShare per epoch.

In federated mode with secure aggregation the venue's released (noisy) liquidity and
correlation leave the venue only inside masked SignalShares
(:mod:`arbsphere.privacy.secure_signals`):
the per-tick SharedSignals carry ``liquidity_lots = -1`` and ``correlation = NaN``. The
:class:`~arbsphere.adapters.venue_adapter.TickTranslator` asks :meth:`SignalSharer.due` on every
tick; at the first tick of a new release epoch (the tick whose privacy release it is) it packs
the share, which the adapter sends on its pipeline PUSH as a single-frame message after the
tick's (quote, signals) message.

The participants a share is masked among are the latest DualVariables v3 the venue received
(the coordinator's current view of who is in the market; before any, every venue of the
roster). A venue the coordinator holds out receives no rounds, so its shares carry a stale set
and are refused; the others mask among the survivors.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from arbsphere.contracts import SchemaRegistry, default_registry
from arbsphere.errors import AggregationError
from arbsphere.privacy.secure_agg import MaskingParty
from arbsphere.privacy.secure_signals import (
    SHARE_WORDS,
    all_venues,
    members_of,
    release_epoch,
    share_words,
)

# The packer takes values in declared order: :meth:`SignalSharer._pack` passes them so
default_registry().fields("SignalShare", 1).expect(
    ("epoch", "participants", "venue_id", "n_words"), ("word",)
)


class SignalSharer:
    """Packs one masked SignalShare per release epoch.

    ``participants`` returns the bitmap of the latest DualVariables v3 received (0: none yet,
    then every one of ``n_venues`` venues)."""

    def __init__(
        self,
        masking: MaskingParty,
        registry: SchemaRegistry,
        venue_id: int,
        sender_id: int,
        n_venues: int,
        interval_ns: int,
        participants: Callable[[], int] | None = None,
    ) -> None:
        if interval_ns <= 0:
            raise AggregationError(f"release interval {interval_ns} ns: must be > 0",
                                   reason="config")  # fmt: skip
        self.masking = masking
        self.reg = registry
        self.schema = registry.schema("SignalShare")
        self._packer = registry.packer(self.schema, SHARE_WORDS)
        self.venue_id = venue_id
        self.sender_id = sender_id
        self.n_venues = n_venues
        self.interval_ns = int(interval_ns)
        self.participants = participants or (lambda: 0)
        self.last_epoch = -1
        self.counts = {"shares": 0, "lone": 0, "not_participant": 0, "mask_errors": 0}
        self.last_error = ""

    def due(self, now_ns: int) -> int | None:
        """The release epoch of a tick at ``now_ns`` if its share is still to be sent."""
        epoch = release_epoch(now_ns, self.interval_ns)
        return epoch if epoch > self.last_epoch else None

    def share(
        self, epoch: int, liquidity: float, correlation: float, nonce: int, now_ns: int
    ) -> bytes | None:
        """The SignalShare of ``epoch`` (released values; NaN / negative: not released), or
        None when this venue is not among the participants or masking failed (counted)."""
        self.last_epoch = epoch
        bits = self.participants() or all_venues(self.n_venues)
        ids = list(members_of(bits, 64))
        if self.venue_id not in ids:
            self.counts["not_participant"] += 1
            return None
        words = share_words(liquidity, correlation)
        try:
            if len(ids) > 1:
                words = self.masking.mask_encoded(
                    words, round_id=epoch, iteration=0, participants=ids, epoch=bits
                )
            else:  # a lone participant: its value is the sum, no mask can hide it
                self.counts["lone"] += 1
        except AggregationError as exc:
            self.counts["mask_errors"] += 1
            self.last_error = f"epoch {epoch}: cannot mask: {exc}"
            return None
        self.counts["shares"] += 1
        return self._pack(epoch, bits, words, nonce, now_ns)

    def _pack(self, epoch: int, bits: int, words: np.ndarray, nonce: int, now_ns: int) -> bytes:
        n = len(words)
        return self._packer.pack(
            *self.reg.envelope_values(self.schema, n, self.sender_id, nonce, now_ns),
            epoch, bits, self.venue_id, n, *words.tolist(),
        )  # fmt: skip
