"""Per-message trace tables recorded by role processes.

Each role appends one row per message it handles to a :class:`TraceBuffer` (a growable,
preallocated NumPy structured array: no per-message Python objects survive) and saves it as
``.npy`` at exit. The orchestrator joins the tables of all roles on message keys (venue and
device sequence for ticks, delta and order ids for orders) to build the run's trace table and
stage latencies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


class TraceBuffer:
    """A growable structured array with O(1) amortised appends."""

    def __init__(self, dtype: np.dtype[Any], capacity: int = 65_536) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.dtype = np.dtype(dtype)
        self._data = np.zeros(capacity, self.dtype)
        self.n = 0

    def append(self, row: tuple[Any, ...]) -> None:
        if self.n == self._data.shape[0]:
            grown = np.zeros(self._data.shape[0] * 2, self.dtype)
            grown[: self.n] = self._data
            self._data = grown
        self._data[self.n] = row
        self.n += 1

    def view(self) -> np.ndarray:
        return self._data[: self.n]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npy")
        np.save(tmp, self.view(), allow_pickle=False)
        tmp.replace(path)
