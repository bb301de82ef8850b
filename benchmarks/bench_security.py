"""Benchmark: per-message cost of tags (seal, open) and PlanDelta attestations (sign, verify),
against floors measured in the same run.

Messages of 64, 256 and 1024 bytes (envelope + payload; the tag adds 16). Each figure is the
median over ``repeats`` rounds of the per-message time of one Python loop over ``n`` distinct
messages, after a warm-up round:

- ``seal``: :meth:`Sealer.seal` bound to its sender (envelope check, keyed HMAC copy, concat);
- ``open``: :meth:`Opener.open` on a fresh opener per round (length, sender, tag, replay
  window, skew against :class:`~arbsphere.clock.RealtimeClock`), every message accepted;
- ``seal_unbound``: the same without ``sender_id`` (no envelope/nonce check);
- floors in the same loop shape: ``hmac_digest`` (the bare one-shot ``hmac.digest`` call),
  ``hmac_copy`` (the stdlib keyed-object ``copy/update/digest`` the sealer and opener use;
  CPython's ``digest()`` copies the OpenSSL context once more), ``cryptography_hmac_copy``
  (the same HMAC-SHA256 through ``cryptography``'s ``HMAC.copy/update/finalize``, for
  reference) and ``concat`` (``message + 16 bytes``: the copy every seal makes); ratios are
  ``seal / hmac_digest`` and ``open / hmac_digest``.
- ``attest`` / ``verify``: Ed25519 sign and verify of one PlanDelta-sized message (256 B) via
  :func:`attest` / :func:`verify_attestation`, against the bare ``cryptography`` sign/verify.
"""

from __future__ import annotations

import hmac
import statistics
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from arbsphere.clock import RealtimeClock
from arbsphere.contracts import default_registry
from arbsphere.security.attest import PLANDELTA_DOMAIN, attest, verify_attestation
from arbsphere.security.tags import TAG_BYTES, Opener, Sealer

SIZES = (64, 256, 1024)
N_MESSAGES = 20_000
N_SIGNATURES = 1_000
REPEATS = 5
SENDER = 7
KEY = bytes(range(32))


def _messages(size: int, n: int) -> list[bytes]:
    """``n`` messages of ``size`` bytes from SENDER, nonces 1..n, stamped now."""
    reg = default_registry()
    envelope = struct.Struct("<" + reg.envelope.struct_format)
    schema = reg.schemas()[0]
    payload = bytes(size - envelope.size)
    now = RealtimeClock().now_ns()
    return [
        envelope.pack(reg.magic, schema.id, schema.version, SENDER, len(payload), i + 1, now)
        + payload
        for i in range(n)
    ]


def _per_message_ns(loop: Callable[[], int], repeats: int) -> float:
    loop()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        n = loop()
        times.append((time.perf_counter_ns() - t0) / n)
    return statistics.median(times)


def _tag_figures(size: int, n: int, repeats: int) -> dict[str, float]:
    msgs = _messages(size, n)
    sealed = Sealer(KEY).seal
    sealed_msgs = [sealed(m) for m in msgs]
    keyed = hmac.new(KEY, digestmod="sha256")
    crypto_keyed = crypto_hmac.HMAC(KEY, hashes.SHA256())
    filler = bytes(TAG_BYTES)

    def seal_loop() -> int:
        seal = Sealer(KEY, sender_id=SENDER).seal
        for m in msgs:
            seal(m)
        return n

    def seal_unbound_loop() -> int:
        seal = Sealer(KEY).seal
        for m in msgs:
            seal(m)
        return n

    def open_loop() -> int:
        opener = Opener({SENDER: KEY}, RealtimeClock(), max_past_ns=60 * 10**9, max_future_ns=0)
        open_ = opener.open
        for s in sealed_msgs:
            open_(s)
        assert opener.accepted == n
        return n

    def digest_loop() -> int:
        digest = hmac.digest
        for m in msgs:
            digest(KEY, m, "sha256")
        return n

    def copy_loop() -> int:
        for m in msgs:
            h = keyed.copy()
            h.update(m)
            h.digest()
        return n

    def crypto_copy_loop() -> int:
        for m in msgs:
            h = crypto_keyed.copy()
            h.update(m)
            h.finalize()
        return n

    def concat_loop() -> int:
        for m in msgs:
            _ = m + filler  # the copy is what is measured
        return n

    return {
        "seal": _per_message_ns(seal_loop, repeats),
        "seal_unbound": _per_message_ns(seal_unbound_loop, repeats),
        "open": _per_message_ns(open_loop, repeats),
        "hmac_digest": _per_message_ns(digest_loop, repeats),
        "hmac_copy": _per_message_ns(copy_loop, repeats),
        "cryptography_hmac_copy": _per_message_ns(crypto_copy_loop, repeats),
        "concat": _per_message_ns(concat_loop, repeats),
    }


def _signature_figures(n: int, repeats: int) -> dict[str, float]:
    key = Ed25519PrivateKey.generate()
    pub = key.public_key()
    msgs = [i.to_bytes(8, "little") + bytes(248) for i in range(n)]
    attested = [attest(key, m) for m in msgs]
    signed = [(PLANDELTA_DOMAIN + m, a[-64:]) for m, a in zip(msgs, attested, strict=True)]

    def attest_loop() -> int:
        for m in msgs:
            attest(key, m)
        return n

    def verify_loop() -> int:
        for a in attested:
            verify_attestation(pub, a)
        return n

    def sign_loop() -> int:
        for d, _ in signed:
            key.sign(d)
        return n

    def bare_verify_loop() -> int:
        for d, s in signed:
            pub.verify(s, d)
        return n

    return {
        "attest": _per_message_ns(attest_loop, repeats),
        "verify": _per_message_ns(verify_loop, repeats),
        "ed25519_sign": _per_message_ns(sign_loop, repeats),
        "ed25519_verify": _per_message_ns(bare_verify_loop, repeats),
    }


def table(result: dict[str, Any]) -> list[str]:
    """The figures as text lines (ns per message)."""
    cols = [
        ("seal", "seal"),
        ("seal_unbound", "seal*"),
        ("open", "open"),
        ("hmac_digest", "hmac.digest"),
        ("hmac_copy", "hmac copy"),
        ("cryptography_hmac_copy", "crypt copy"),
        ("concat", "concat"),
        ("seal_over_hmac_digest", "seal/dig"),
        ("open_over_hmac_digest", "open/dig"),
    ]
    lines = [f"{'bytes':>6}" + "".join(f" {title:>11}" for _, title in cols)]
    for size, t in result["tags"].items():
        cells = "".join(
            f" {t[key]:>11.2f}" if "_over_" in key else f" {t[key]:>11.0f}" for key, _ in cols
        )
        lines.append(f"{size:>6}{cells}")
    lines.append("ns per message; seal* = Sealer without sender_id (no envelope/nonce check)")
    s = result["attestation"]
    lines.append(
        f"attestation (256 B): attest {s['attest']:.0f} ns (bare sign {s['ed25519_sign']:.0f}), "
        f"verify {s['verify']:.0f} ns (bare verify {s['ed25519_verify']:.0f})"
    )
    return lines


def _ledger_figures(n: int) -> dict[str, float]:
    """Ledger append rate (events with ~100-byte details, the default page-cache durability),
    a signed checkpoint with two cosigners, and verify_ledger over the result."""
    import tempfile

    from arbsphere.security.ledger import EventKind, LedgerWriter, verify_ledger

    keys = {name: Ed25519PrivateKey.generate() for name in ("coordinator", "venue_a", "venue_b")}
    details = {"delta_id": 0, "kind": "trade", "n_legs": 2, "sha256": "ab" * 32}
    with tempfile.TemporaryDirectory(prefix="arbsphere-bench-ledger-") as tmp:
        writer = LedgerWriter(Path(tmp), RealtimeClock())
        t0 = time.perf_counter()
        for i in range(n):
            details["delta_id"] = i
            writer.append(EventKind.PLAN_DELTA, 1, 2, details)
        t1 = time.perf_counter()
        cos = {k: v for k, v in keys.items() if k != "coordinator"}
        writer.checkpoint("coordinator", keys["coordinator"], cos)
        t2 = time.perf_counter()
        writer.close()
        trusted = {k: v.public_key() for k, v in keys.items()}
        t3 = time.perf_counter()
        verify_ledger(Path(tmp), trusted, require_cosigners=list(cos))
        t4 = time.perf_counter()
    return {
        "events": n,
        "append_per_s": round(n / (t1 - t0)),
        "append_us": round((t1 - t0) / n * 1e6, 2),
        "checkpoint_ms": round((t2 - t1) * 1e3, 2),
        "verify_ms": round((t4 - t3) * 1e3, 1),
    }


def run(
    n_messages: int = N_MESSAGES,
    n_signatures: int = N_SIGNATURES,
    repeats: int = REPEATS,
    *,
    print_table: bool = True,
) -> dict[str, Any]:
    """Measure everything; returns ``{"tags": {size: figures}, "attestation": figures, ...}``,
    all times in ns per message (medians over ``repeats``)."""
    tags: dict[int, dict[str, float]] = {}
    for size in SIZES:
        t = _tag_figures(size, n_messages, repeats)
        t["seal_over_hmac_digest"] = t["seal"] / t["hmac_digest"]
        t["open_over_hmac_digest"] = t["open"] / t["hmac_digest"]
        tags[size] = {k: round(v, 3 if "_over_" in k else 1) for k, v in t.items()}
    sig = {k: round(v, 1) for k, v in _signature_figures(n_signatures, repeats).items()}
    result: dict[str, Any] = {
        "unit": "ns per message (median of repeats)",
        "messages_per_repeat": n_messages,
        "signatures_per_repeat": n_signatures,
        "repeats": repeats,
        "tags": tags,
        "attestation": sig,
        "ledger": _ledger_figures(10_000),
    }
    if print_table:
        print("\n".join(table(result)))
    return result


if __name__ == "__main__":
    run()
