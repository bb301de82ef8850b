"""The full self-calibration (``campaigns/calibration.toml``: baseline + injected run) with every
injected-vs-recovered line, as ``arbsphere calibrate`` prints it; the tests check the same limits
on shorter runs."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from arbsphere.clock import RealtimeClock
from arbsphere.rig.calibration import run_calibration
from arbsphere.rig.config import load_campaign


def run() -> dict[str, Any]:
    campaign = load_campaign(Path("campaigns/calibration.toml"))
    with tempfile.TemporaryDirectory(prefix="arbsphere-calibration-") as tmp:
        result = run_calibration(campaign, RealtimeClock(), results_dir=Path(tmp))
    return {
        "passed": result.passed,
        "complete": result.complete,
        "reason": result.reason or None,
        "lines": [line.as_dict() for line in result.lines],
    }
