"""Conformance suites: checks written once, taking a factory, run against every backend.

Run against the loopback emulators in CI and against hardware in the lab (a hardware harness
supplies its own factory). If the emulator passes and the hardware fails, the emulator is wrong.
"""
