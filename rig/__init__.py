"""The rig: what a lab engineer drives. Campaign configuration (:mod:`.config`, every key
validated once at load), process orchestration of one run (:mod:`.orchestrator`,
:mod:`.campaign_run`), rate sweeps (:mod:`.sweep`), self-calibration (:mod:`.calibration`), the
in-process simulator (:mod:`.sim`), the host-load record (:mod:`.host_load`), the live replay of
a journal (:mod:`.replay_run`) and the ``arbsphere`` command line (:mod:`.cli`,
:mod:`.console`).

Layer: the top. It may import everything below it (kpi, replay, the roles, the subsystems, the
device emulators it launches); nothing in the package imports it.
"""
