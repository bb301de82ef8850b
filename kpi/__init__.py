"""The KPIs of a run and the result set that carries them.

Owns HDR latency recording (:mod:`.hdr`), interval logs (:mod:`.hlog`), percentile summaries
(:mod:`.summary`), the analysis from role traces to stage latencies and ``kpi.json``
(:mod:`.analysis`), the federated solves' centralized baseline (:mod:`.federated_baseline`), the
health verdict (:mod:`.health`), the security and governance record (:mod:`.governance`), the
HTML report (:mod:`.report`, :mod:`.extra_plots`), result-set files (:mod:`.resultset`) and
their verification (:mod:`.verify`).

Layer: above the roles and replay (it reads their traces and layouts); it must not import rig.
"""
