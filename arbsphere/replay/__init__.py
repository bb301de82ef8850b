"""Replay: a result set's journal played back, and the coordinator re-executed from it.

Owns reading a journal into the coordinator's records and re-running the real coordinator core
on them, bit for bit (:mod:`.engine`), the journal player role that re-sends a recorded run's
ticks to a live pipeline at a chosen speed (:mod:`.player`), and ``arbsphere replay --verify``'s
check of a result set (:mod:`.check`).

Layer: above the roles (it drives the coordinator and reads the adapters' trace layout), below
kpi and rig. It must not import kpi or rig.
"""
