"""The hedge plan both sides keep: the delta-merge kernel and the plan digest.

Owns the merge of PlanDelta batches into the plan table (:mod:`.merge`, Numba, used by the
coordinator and by the adapters' replicas alike) and the canonical plan digest both compare
(:mod:`.digest`).

Layer: protocol math, just above the contracts. It must not import any subsystem, role, kpi
or rig.
"""
