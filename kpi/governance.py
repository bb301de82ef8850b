"""A run's security and governance record: the manifest's ``security`` section and the
``governance`` KPIs (ledger verified at the end of the run, refusals counted by every role)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from arbsphere.errors import ResultSetError, SecurityError
from arbsphere.kpi.verify import verify_governance
from arbsphere.privacy.secure_agg import reveals_individual_inputs
from arbsphere.security.campaign_registry import IDENTITIES_FILE
from arbsphere.security.settings import SecurityConfig

_SIGNALS_NOTE = (
    " The SharedSignals derived from a venue's private state are aggregated too "
    "(arbsphere.privacy.secure_signals): the per-tick signals carry no liquidity or "
    "correlation; once "
    "per release epoch each venue sends its released (privacy-noised) liquidity and "
    "correlation with a presence word each, masked among the same participants (own HKDF "
    "salt, bound to the epoch), and the coordinator learns per epoch only the sums and the "
    "contributor counts; an epoch a venue misses is aborted (ledgered as AGGREGATION_ABORTED) "
    "and later epochs mask among the survivors."
)


def _price_note(masked: bool) -> str:
    """What the price protocol (arbsphere.price_protocol) reveals."""
    answers = (
        "in fixed point under pairwise masks (X25519 + HKDF seeds bound to the run's session, "
        "solve, round and the participant set), so the coordinator learns only their sums"
        if masked
        else "in clear (secure_aggregation = false): the coordinator learns each venue's"
    )
    return (
        "Federated price protocol (arbsphere.price_protocol): per round the coordinator "
        "proposes one price per asset; each venue answers, per asset, with its best response "
        "x_i(price), its left and right slopes (0 or -1/gamma_i) and a histogram of the "
        "distances from the price to its breakpoints (where its response changes slope: "
        "-c -/+ phi and -c -/+ (phi + gamma L)), " + answers + " — before the reveal the "
        "coordinator learns the aggregate response curve at the proposed prices (its value, "
        "slopes and breakpoint distances), never c, gamma, phi or the limit. At the end of "
        "each solve every venue reveals its best response at the clearing price in clear, "
        "because those are its trades."
    )


def security_section(
    summary: dict[str, Any], settings: SecurityConfig, n_venues: int, coordination: str,
    protocol: str = "admm",
) -> dict[str, Any]:  # fmt: skip
    """The manifest's ``security`` section from the registry's summary (``protocol``: the
    federated protocol, "price" or "admm")."""
    two_party = reveals_individual_inputs(n_venues)
    masked = coordination == "federated" and settings.secure_aggregation
    if coordination == "federated" and protocol == "price":
        note = _price_note(masked) + (_SIGNALS_NOTE if masked else "")
    elif masked:
        note = (
            "Federated rounds with secure aggregation (arbsphere.privacy.secure_rounds): every "
            "round, "
            "each venue sends its x_i, |x_i|^2 and |x_i - z_i|^2 in fixed point under pairwise "
            "masks (X25519 + HKDF seeds bound to the run's session, solve, round and the "
            "participant set); the coordinator learns only their sums over the venues taking "
            "part. At the end of each solve every venue reveals its x_i of one round (the best "
            "primal residual), because those are its trades; the other rounds' x_i and every "
            "z_i stay with the venues. A venue that drops out aborts the solve; the next one "
            "masks among the survivors." + _SIGNALS_NOTE
        )
    elif coordination == "federated":
        note = (
            "Federated rounds without secure aggregation (secure_aggregation = false): the "
            "coordinator learns every venue's x_i of every round, never c, gamma, phi or the "
            "limit."
        )
    else:
        note = "Central coordination: venues send their whole local problem to the coordinator."
    if two_party and coordination == "federated":
        note += (
            f" With {n_venues} venues the sum itself reveals the other party's input (sum "
            "minus one's own): a venue learns the other's x_i every round from x-bar, and "
            "the coordinator learns each x_i whenever one venue is held out (its lots are "
            "public)."
        )
        if masked:
            note += (
                " Likewise a signal sum minus one venue's value is the other's noisy "
                "liquidity and correlation: the coordinator keeps the sums (venues are not sent "
                "them), but it colluding with one venue — or learning a venue's value otherwise, "
                "e.g. alone in the set while the other is held out, when it receives the "
                "survivor's values unmasked — learns the other's; the privacy budget's noise is "
                "what protects them then."
            )
    ledger = {k: summary[k] for k in ("dir", "size", "root", "checkpoints", "signer", "cosigners")}
    return {
        "transport": settings.transport,
        "plaintext": settings.transport == "plaintext",
        "tags": settings.tags,
        "attest_plan_deltas": settings.attest_plan_deltas,
        "credential_validity_s": settings.credential_validity_s,
        "replay_window": settings.replay_window,
        "skew_window_ms": [settings.max_past_ms, settings.max_future_ms],
        "authority_did": summary["authority_did"],
        "session": summary["session"],
        "identities": IDENTITIES_FILE,
        "ledger": ledger,
        "ledger_final_cosigners": summary["final_cosigners"],
        "registry": summary["registry"],
        "aggregation": {
            "protocol": protocol if coordination == "federated" else None,
            "secure_aggregation": masked,
            "reveals_individual_inputs": two_party,
            "note": note,
        },
    }


def _add(into: dict[str, int], counts: dict[str, Any] | None) -> None:
    for reason, n in (counts or {}).items():
        if n:
            into[reason] = into.get(reason, 0) + int(n)


def refusals(proc_dir: Path) -> dict[str, dict[str, int]]:
    """Every role's refusals (its stats file's ``security``), by category and reason; the
    ``budget`` category counts the venues' refused privacy releases (their stats'
    ``privacy``), by signal kind ("liquidity_exhausted", "correlation_exhausted")."""
    out: dict[str, dict[str, int]] = {"credential": {}, "message": {}, "budget": {}}
    for path in sorted(proc_dir.glob("*.stats.json")):
        try:
            stats = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(stats, dict):
            continue
        privacy = stats.get("privacy")
        for kind, state in privacy.items() if isinstance(privacy, dict) else []:
            if isinstance(state, dict):
                _add(out["budget"], {f"{kind}_exhausted": state.get("refusals")})
        sec = stats.get("security")
        if not isinstance(sec, dict):
            continue
        _add(out["credential"], sec.get("zap", {}).get("refusals"))
        _add(out["credential"], sec.get("credential_refusals"))
        for channel in (sec.get("messages") or {}).values():
            _add(out["message"], channel.get("refused"))
    return out


def governance_kpi(run_dir: Path, security: dict[str, Any]) -> dict[str, Any]:
    """``kpi.json``'s ``governance``: the ledger verified now (roster, chain, proofs,
    signatures), how long that took, and the refusals every role counted."""
    kpi: dict[str, Any] = {
        "transport": security["transport"],
        "tags": security["tags"],
        "refusals": refusals(run_dir / "proc"),
    }
    try:
        check = verify_governance(run_dir, security)
    except (ResultSetError, SecurityError) as exc:
        return {**kpi, "events": security["ledger"]["size"], "verified": False,
                "verify_error": str(exc), "verify_ms": None,
                "checkpoints": security["ledger"]["checkpoints"],
                "root": security["ledger"]["root"]}  # fmt: skip
    return {
        **kpi,
        "events": check.ledger.events,
        "verified": True,
        "verify_ms": round(check.verify_ms, 3),
        "checkpoints": check.ledger.checkpoints,
        "root": check.ledger.root_hex,
        "kinds": {k: v for k, v in check.ledger.kinds.items() if v},
    }
