"""The rig's pytest plugin: campaigns as session fixtures, SLO gates and capabilities as markers.

Registered through the ``pytest11`` entry point of the installed package, so any project that
installs ``arbsphere-rig`` gets it (no ``conftest.py``). See README "CI gates with pytest".

Options (group ``arbsphere``): ``--arb-campaign FILE`` (repeatable), ``--arb-run-dir DIR``
(repeatable: gate an existing result set instead of running), ``--arb-backend
emulator|hardware``, ``--arb-results DIR``, ``--arb-duration S``, ``--arb-inconclusive
skip|fail``.

Markers:

``@pytest.mark.arb_campaign(FILE, **overrides)``
    the campaign this test is about (path relative to the rootdir; keyword overrides replace
    campaign fields, e.g. ``duration_s=3.0``); ``--arb-run-dir`` takes precedence.
``@pytest.mark.arb_gate(stage, stat, op, limit, marginal=None)``
    one SLO gate (see :mod:`arbsphere.rig.gates`); each gate of a test is its own test case
    (``test_x[loopback-tick_to_trade.p99<=2ms]``), so JUnit shows one row per gate.
    Outcomes: pass; *marginal* passes with a warning and ``arb_outcome=marginal`` in the
    row's properties; *inconclusive* (within the clock bound) is a skip whose reason starts
    ``inconclusive:`` (``--arb-inconclusive fail`` makes it a failure); fail fails.
``@pytest.mark.arb_requires(capability, ...)``
    skip unless the run's probed devices have every capability
    (:data:`arbsphere.kpi.resultset_view.CAPABILITIES`).

A test that uses any of these, or the ``arb_run`` fixture, runs once per result-set source.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from arbsphere.clock import RealtimeClock
from arbsphere.kpi.resultset_view import ResultSetView
from arbsphere.rig.campaign_run import execute_campaign
from arbsphere.rig.config import Campaign, load_campaign
from arbsphere.rig.gates import Gate, evaluate

GATE_ARG = "_arb_gate"
_RUNS = pytest.StashKey[dict["RunSource", Any]]()
_RECORDED = pytest.StashKey[set["RunSource"]]()
_VIEW = pytest.StashKey[ResultSetView]()


@dataclass(frozen=True)
class RunSource:
    """Where a test's result set comes from: a campaign to run, an existing run, or none."""

    kind: str  # "campaign" | "run_dir" | "none"
    path: Path
    overrides: tuple[tuple[str, Any], ...] = ()

    @property
    def id(self) -> str:
        return "no-campaign" if self.kind == "none" else self.path.stem or self.path.name


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("arbsphere", "ArbSphere Rig latency gates")
    group.addoption(
        "--arb-campaign",
        action="append",
        default=[],
        metavar="FILE",
        help="campaign file to run once per session (repeatable)",
    )
    group.addoption(
        "--arb-run-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="gate an existing result set instead of running a campaign",
    )
    group.addoption(
        "--arb-backend",
        choices=("emulator", "hardware"),
        default="emulator",
        help="'hardware' also runs campaigns with hardware devices (default: "
        "emulator: those tests are skipped)",
    )
    group.addoption(
        "--arb-results",
        metavar="DIR",
        default=None,
        help="where runs write result sets (default: under pytest's basetemp)",
    )
    group.addoption(
        "--arb-duration",
        type=float,
        default=None,
        metavar="S",
        help="override every campaign's duration_s",
    )
    group.addoption(
        "--arb-inconclusive",
        choices=("skip", "fail"),
        default="skip",
        help="report a gate within the clock bound of its limit as a skip (default) or a failure",
    )


def pytest_configure(config: pytest.Config) -> None:
    for line in (
        "arb_campaign(file, **overrides): the campaign an ArbSphere test runs",
        "arb_gate(stage, stat, op, limit, marginal=None): one SLO gate, one test case each",
        "arb_requires(*capabilities): skip unless the probed devices have them",
    ):
        config.addinivalue_line("markers", line)


def pytest_report_header(config: pytest.Config) -> str | None:
    opt = config.option
    if not (opt.arb_campaign or opt.arb_run_dir):
        return None
    what = ", ".join(opt.arb_run_dir or opt.arb_campaign)
    return f"arbsphere: backend {opt.arb_backend}; result sets from {what}"


def _sources(config: pytest.Config, node: Any) -> list[RunSource]:
    here = config.invocation_params.dir
    if config.option.arb_run_dir:
        return [RunSource("run_dir", here / p) for p in config.option.arb_run_dir]
    marker = node.get_closest_marker("arb_campaign")
    if marker is not None:
        overrides = tuple(sorted(marker.kwargs.items()))
        return [RunSource("campaign", config.rootpath / p, overrides) for p in marker.args]
    if config.option.arb_campaign:
        return [RunSource("campaign", here / p) for p in config.option.arb_campaign]
    return [RunSource("none", Path())]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    node = metafunc.definition
    # iter_markers gives stacked decorators bottom-up: reversed, the gates keep source order
    gates = [Gate(*m.args, **m.kwargs) for m in reversed(list(node.iter_markers("arb_gate")))]
    uses = gates or node.get_closest_marker("arb_requires") or "arb_run" in metafunc.fixturenames
    if not uses:
        return
    if "arb_run" not in metafunc.fixturenames:
        metafunc.fixturenames.append("arb_run")
    sources = _sources(metafunc.config, node)
    metafunc.parametrize(
        "arb_run", sources, indirect=True, scope="session", ids=[s.id for s in sources]
    )
    if gates:
        metafunc.fixturenames.append(GATE_ARG)
        metafunc.parametrize(GATE_ARG, gates, ids=[g.label for g in gates])


@pytest.fixture(scope="session")
def arb_run(request: pytest.FixtureRequest) -> ResultSetView:
    """The result set of this test's campaign (run once per campaign per session) or of
    ``--arb-run-dir``; records its provenance as JUnit test-suite properties."""
    source: RunSource = getattr(request, "param", RunSource("none", Path()))
    if source.kind == "none":
        pytest.skip(
            "no ArbSphere result set: pass --arb-campaign FILE or --arb-run-dir DIR, "
            "or mark the test @pytest.mark.arb_campaign(FILE)"
        )
    runs = request.config.stash.setdefault(_RUNS, {})
    if source not in runs:
        try:
            runs[source] = _obtain(source, request)
        except (Exception, pytest.skip.Exception) as exc:  # the same for every test using it
            runs[source] = exc
    got = runs[source]
    if isinstance(got, BaseException):  # Skipped is a BaseException
        raise got
    view: ResultSetView = got
    recorded = request.config.stash.setdefault(_RECORDED, set())
    if source not in recorded:
        recorded.add(source)
        _record_provenance(request, source, view)
    return view


def _hardware_devices(campaign: Campaign) -> list[str]:
    names = [v.name for v in campaign.venues if v.device == "hardware"]
    return names + ([campaign.broker.name] if campaign.broker.device == "hardware" else [])


def _obtain(source: RunSource, request: pytest.FixtureRequest) -> ResultSetView:
    if source.kind == "run_dir":
        return ResultSetView.load(source.path)
    config = request.config
    campaign = load_campaign(source.path)
    hardware = _hardware_devices(campaign)
    if hardware and config.option.arb_backend != "hardware":
        pytest.skip(
            f"campaign {source.path} drives hardware devices ({', '.join(hardware)}): "
            "run with --arb-backend hardware to enable"
        )
    changes = dict(source.overrides)
    if config.option.arb_duration is not None:
        changes["duration_s"] = config.option.arb_duration
    campaign = dataclasses.replace(campaign, **changes)
    if config.option.arb_results:
        results = config.invocation_params.dir / config.option.arb_results
    else:
        results = request.getfixturevalue("tmp_path_factory").getbasetemp() / "arb-results"
    result = execute_campaign(campaign, RealtimeClock(), results_dir=results)
    return ResultSetView.load(result.run_dir)


def _record_provenance(
    request: pytest.FixtureRequest, source: RunSource, view: ResultSetView
) -> None:
    record = request.getfixturevalue("record_testsuite_property")
    prefix = f"arb.{source.id}"
    record(f"{prefix}.run_dir", str(view.run_dir))
    record(f"{prefix}.manifest_sha256", view.manifest_sha256)
    record(f"{prefix}.git_revision", view.git_revision or "not a git checkout")
    for link, stamps in view.timestamp_sources.items():
        record(f"{prefix}.timestamps.{link}", stamps)


@pytest.fixture(autouse=True)
def _arb_item(request: pytest.FixtureRequest) -> None:
    """Set up the result set of a test parametrized by :func:`pytest_generate_tests` (a gate's
    test case need not name ``arb_run``) and keep it for :func:`pytest_runtest_call`."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and "arb_run" in callspec.params:
        request.node.stash[_VIEW] = request.getfixturevalue("arb_run")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    """Before the test body: capability skips, then the item's gate (if any)."""
    view = item.stash.get(_VIEW, None)
    if not isinstance(item, pytest.Function) or view is None:
        return
    for marker in item.iter_markers("arb_requires"):
        for capability in marker.args:
            ok, why = view.capability(capability)
            if not ok:
                pytest.skip(f"capability missing: {why}")
    callspec = getattr(item, "callspec", None)
    gate = callspec.params.get(GATE_ARG) if callspec is not None else None
    if isinstance(gate, Gate):
        _judge_item(item, gate, view)


def _judge_item(item: pytest.Function, gate: Gate, view: ResultSetView) -> None:
    verdict = evaluate(gate, view)
    item.user_properties.extend(
        [
            ("arb_gate", gate.label),
            ("arb_outcome", verdict.outcome),
            ("arb_value", "" if verdict.value is None else str(verdict.value)),
            ("arb_clock_bound_us", str(verdict.bound_us)),
        ]
    )
    if verdict.outcome == "fail":
        pytest.fail(f"gate {gate.label} failed: {verdict.text}", pytrace=False)
    if verdict.outcome == "inconclusive":
        message = f"inconclusive: gate {gate.label}: {verdict.text}"
        if item.config.option.arb_inconclusive == "fail":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    if verdict.outcome == "marginal":
        warnings.warn(f"arb_gate marginal: {gate.label}: {verdict.text}", UserWarning, stacklevel=1)
