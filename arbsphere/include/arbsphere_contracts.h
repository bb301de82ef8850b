/* ArbSphere canonical IR: message envelope and schema records.
 * A message is envelope + header record + count_field x item record.
 *
 * GENERATED from the ArbSphere layout declarations; do not edit by hand.
 * All integers little-endian; every field naturally aligned, so no packing pragma
 * is needed. Regenerate with `arbsphere headers`.
 */
#ifndef ARBSPHERE_CONTRACTS_H
#define ARBSPHERE_CONTRACTS_H

#include <stddef.h>
#include <stdint.h>

#ifndef ARBSPHERE_STATIC_ASSERT
#ifdef __cplusplus
#define ARBSPHERE_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define ARBSPHERE_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define ARBSPHERE_MAGIC 0x53425241u /* "ARBS" as a little-endian u32 */
#define ARBSPHERE_LOCAL_ARB_PROBLEM_ID 1u /* schema id of LocalArbProblem */
#define ARBSPHERE_LOCAL_ARB_PROBLEM_V1 1u /* LocalArbProblem version 1 */
#define ARBSPHERE_SHARED_SIGNALS_ID 2u /* schema id of SharedSignals */
#define ARBSPHERE_SHARED_SIGNALS_V1 1u /* SharedSignals version 1 */
#define ARBSPHERE_PLAN_DELTA_ID 3u /* schema id of PlanDelta */
#define ARBSPHERE_PLAN_DELTA_V1 1u /* PlanDelta version 1 */
#define ARBSPHERE_PLAN_DELTA_ID 3u /* schema id of PlanDelta */
#define ARBSPHERE_PLAN_DELTA_V2 2u /* PlanDelta version 2 */
#define ARBSPHERE_DUAL_VARIABLES_ID 4u /* schema id of DualVariables */
#define ARBSPHERE_DUAL_VARIABLES_V1 1u /* DualVariables version 1 */
#define ARBSPHERE_DUAL_VARIABLES_ID 4u /* schema id of DualVariables */
#define ARBSPHERE_DUAL_VARIABLES_V2 2u /* DualVariables version 2 */
#define ARBSPHERE_DUAL_VARIABLES_ID 4u /* schema id of DualVariables */
#define ARBSPHERE_DUAL_VARIABLES_V3 3u /* DualVariables version 3 */
#define ARBSPHERE_PRIVACY_BUDGET_ID 5u /* schema id of PrivacyBudget */
#define ARBSPHERE_PRIVACY_BUDGET_V1 1u /* PrivacyBudget version 1 */
#define ARBSPHERE_AUDIT_LOG_EVENT_ID 6u /* schema id of AuditLogEvent */
#define ARBSPHERE_AUDIT_LOG_EVENT_V1 1u /* AuditLogEvent version 1 */
#define ARBSPHERE_EXECUTION_REPORT_ID 7u /* schema id of ExecutionReport */
#define ARBSPHERE_EXECUTION_REPORT_V1 1u /* ExecutionReport version 1 */
#define ARBSPHERE_LOCAL_SOLUTION_ID 8u /* schema id of LocalSolution */
#define ARBSPHERE_LOCAL_SOLUTION_V1 1u /* LocalSolution version 1 */
#define ARBSPHERE_LOCAL_SOLUTION_ID 8u /* schema id of LocalSolution */
#define ARBSPHERE_LOCAL_SOLUTION_V2 2u /* LocalSolution version 2 */
#define ARBSPHERE_VENUE_QUOTE_ID 9u /* schema id of VenueQuote */
#define ARBSPHERE_VENUE_QUOTE_V1 1u /* VenueQuote version 1 */
#define ARBSPHERE_PLAN_SNAPSHOT_ID 10u /* schema id of PlanSnapshot */
#define ARBSPHERE_PLAN_SNAPSHOT_V1 1u /* PlanSnapshot version 1 */
#define ARBSPHERE_REPLICA_STATUS_ID 11u /* schema id of ReplicaStatus */
#define ARBSPHERE_REPLICA_STATUS_V1 1u /* ReplicaStatus version 1 */
#define ARBSPHERE_GOVERNANCE_FRAME_ID 12u /* schema id of GovernanceFrame */
#define ARBSPHERE_GOVERNANCE_FRAME_V1 1u /* GovernanceFrame version 1 */
#define ARBSPHERE_SIGNAL_SHARE_ID 13u /* schema id of SignalShare */
#define ARBSPHERE_SIGNAL_SHARE_V1 1u /* SignalShare version 1 */
#define ARBSPHERE_PRICE_PROPOSAL_ID 14u /* schema id of PriceProposal */
#define ARBSPHERE_PRICE_PROPOSAL_V1 1u /* PriceProposal version 1 */
#define ARBSPHERE_PRICE_RESPONSE_ID 15u /* schema id of PriceResponse */
#define ARBSPHERE_PRICE_RESPONSE_V1 1u /* PriceResponse version 1 */

/* PlanDeltaKind (codes): PlanDelta.kind: TRADE legs are orders to execute; WRITE_OFF legs take
 * what a partial fill or reject left unfilled off the plan (no order).
 */
#define ARBSPHERE_PLAN_DELTA_KIND_TRADE 1u
#define ARBSPHERE_PLAN_DELTA_KIND_WRITE_OFF 2u

/* ReplicaStatusCode (codes): ReplicaStatus.status: DIVERGED, the replica's hash disagreed with
 * a delta's (send a PlanSnapshot).
 */
#define ARBSPHERE_REPLICA_STATUS_CODE_DIVERGED 1u

/* ReportStatus (codes): ExecutionReport.status, as the broker device acknowledged the order
 * (the device's ACK status codes): ACK (accepted, nothing filled yet), FILL, PARTIAL
 * (immediate-or-cancel: the rest is cancelled), REJECT. FILL, PARTIAL and REJECT are final.
 */
#define ARBSPHERE_REPORT_STATUS_ACK 1u
#define ARBSPHERE_REPORT_STATUS_FILL 2u
#define ARBSPHERE_REPORT_STATUS_PARTIAL 3u
#define ARBSPHERE_REPORT_STATUS_REJECT 4u

/* RoundPhase (codes): DualVariables.phase: BEGIN (freeze the problem, answer round 1), ITERATE
 * (settle z with the last round's x-bar, answer the next round), FINAL (settle z; no answer),
 * ABORT (the solve is dropped; the next starts cold), REVEAL (v3: settle z, close the solve,
 * answer with the x of reveal_round).
 */
#define ARBSPHERE_ROUND_PHASE_BEGIN 1u
#define ARBSPHERE_ROUND_PHASE_ITERATE 2u
#define ARBSPHERE_ROUND_PHASE_FINAL 3u
#define ARBSPHERE_ROUND_PHASE_ABORT 4u
#define ARBSPHERE_ROUND_PHASE_REVEAL 5u

/* RoundFlags (bit flags): DualVariables.flags: COLD, BEGIN starts from z = 0. */
#define ARBSPHERE_ROUND_FLAGS_COLD 1u

/* SolutionKind (codes): LocalSolution v2 kind: SHARE (masked words of one round) or REVEAL
 * (the x of the round the coordinator named).
 */
#define ARBSPHERE_SOLUTION_KIND_SHARE 1u
#define ARBSPHERE_SOLUTION_KIND_REVEAL 2u

/* PricePhase (codes): PriceProposal.phase: QUERY (answer with the share at the proposed
 * prices), REVEAL (answer with x in clear: the trades; closes the solve), ABORT (the solve is
 * dropped).
 */
#define ARBSPHERE_PRICE_PHASE_QUERY 1u
#define ARBSPHERE_PRICE_PHASE_REVEAL 2u
#define ARBSPHERE_PRICE_PHASE_ABORT 3u

/* PriceFlags (bit flags): PriceProposal.flags: BEGIN, the solve's first query (the venue
 * freezes its problem).
 */
#define ARBSPHERE_PRICE_FLAGS_BEGIN 1u

/* PriceResponseKind (codes): PriceResponse.kind: SHARE (the words at the proposed prices) or
 * REVEAL (x and the echoed prices, as float64 bits).
 */
#define ARBSPHERE_PRICE_RESPONSE_KIND_SHARE 1u
#define ARBSPHERE_PRICE_RESPONSE_KIND_REVEAL 2u

/* SignalKind (codes): PrivacyBudget.signal_kind: LIQUIDITY (SharedSignals.liquidity_lots) or
 * CORRELATION (SharedSignals.correlation).
 */
#define ARBSPHERE_SIGNAL_KIND_LIQUIDITY 1u
#define ARBSPHERE_SIGNAL_KIND_CORRELATION 2u

/* NoiseMechanism (codes): PrivacyBudget.mechanism: the differential-privacy noise. */
#define ARBSPHERE_NOISE_MECHANISM_LAPLACE 1u
#define ARBSPHERE_NOISE_MECHANISM_GAUSSIAN 2u

/* GovernanceFrameKind (codes): GovernanceFrame.kind: EVENT (a ledger event), RENEW (a
 * credential renewal request), CREDENTIAL (a credential pushed or renewed), REVOCATIONS (the
 * revocation list), SIGN_CHECKPOINT (a ledger checkpoint to sign), CHECKPOINT_SIGNATURE (its
 * signature), HELLO (a role is up).
 */
#define ARBSPHERE_GOVERNANCE_FRAME_KIND_EVENT 1u
#define ARBSPHERE_GOVERNANCE_FRAME_KIND_RENEW 2u
#define ARBSPHERE_GOVERNANCE_FRAME_KIND_CREDENTIAL 3u
#define ARBSPHERE_GOVERNANCE_FRAME_KIND_REVOCATIONS 4u
#define ARBSPHERE_GOVERNANCE_FRAME_KIND_SIGN_CHECKPOINT 5u
#define ARBSPHERE_GOVERNANCE_FRAME_KIND_CHECKPOINT_SIGNATURE 6u
#define ARBSPHERE_GOVERNANCE_FRAME_KIND_HELLO 7u

typedef struct arbsphere_envelope_t {
    uint32_t magic; /* offset 0 */
    uint16_t schema_id; /* offset 4 */
    uint16_t schema_version; /* offset 6 */
    uint32_t sender_id; /* offset 8 */
    uint32_t payload_len; /* offset 12 */
    uint64_t nonce; /* offset 16 */
    int64_t origin_ts_ns; /* offset 24 */
} arbsphere_envelope_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_envelope_t) == 32, "arbsphere_envelope_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_envelope_t, magic) == 0, "arbsphere_envelope_t.magic offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_envelope_t, schema_id) == 4, "arbsphere_envelope_t.schema_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_envelope_t, schema_version) == 6, "arbsphere_envelope_t.schema_version offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_envelope_t, sender_id) == 8, "arbsphere_envelope_t.sender_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_envelope_t, payload_len) == 12, "arbsphere_envelope_t.payload_len offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_envelope_t, nonce) == 16, "arbsphere_envelope_t.nonce offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_envelope_t, origin_ts_ns) == 24, "arbsphere_envelope_t.origin_ts_ns offset");

typedef struct arbsphere_local_arb_problem_v1_t {
    uint16_t venue_id; /* offset 0 */
    uint16_t n_assets; /* offset 2 */
    uint32_t _pad0; /* offset 4 */
    uint64_t tick_seq; /* offset 8 */
    int64_t tick_intended_ns; /* offset 16 */
    int64_t budget_ns; /* offset 24 */
} arbsphere_local_arb_problem_v1_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_local_arb_problem_v1_t) == 32, "arbsphere_local_arb_problem_v1_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_local_arb_problem_v1_t, venue_id) == 0, "arbsphere_local_arb_problem_v1_t.venue_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_local_arb_problem_v1_t, n_assets) == 2, "arbsphere_local_arb_problem_v1_t.n_assets offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_local_arb_problem_v1_t, _pad0) == 4, "arbsphere_local_arb_problem_v1_t._pad0 offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_local_arb_problem_v1_t, tick_seq) == 8, "arbsphere_local_arb_problem_v1_t.tick_seq offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_local_arb_problem_v1_t, tick_intended_ns) == 16, "arbsphere_local_arb_problem_v1_t.tick_intended_ns offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_local_arb_problem_v1_t, budget_ns) == 24, "arbsphere_local_arb_problem_v1_t.budget_ns offset");

typedef struct arbsphere_local_arb_problem_v1_item_t {
    uint16_t asset_id; /* offset 0 */
    uint16_t _pad0; /* offset 2 */
    uint32_t _pad1; /* offset 4 */
    double c; /* offset 8 */
    double gamma; /* offset 16 */
    double phi; /* offset 24 */
    int64_t limit_lots; /* offset 32 */
    int64_t bid_px; /* offset 40 */
    int64_t ask_px; /* offset 48 */
} arbsphere_local_arb_problem_v1_item_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_local_arb_problem_v1_item_t) == 56, "arbsphere_local_arb_problem_v1_item_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_local_arb_problem_v1_item_t, asset_id) == 0, "arbsphere_local_arb_problem_v1_item_t.asset_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_local_arb_problem_v1_item_t, _pad0) == 2, "arbsphere_local_arb_problem_v1_item_t._pad0 offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_local_arb_problem_v1_item_t, _pad1) == 4, "arbsphere_local_arb_problem_v1_item_t._pad1 offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_local_arb_problem_v1_item_t, c) == 8, "arbsphere_local_arb_problem_v1_item_t.c offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_local_arb_problem_v1_item_t, gamma) == 16, "arbsphere_local_arb_problem_v1_item_t.gamma offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_local_arb_problem_v1_item_t, phi) == 24, "arbsphere_local_arb_problem_v1_item_t.phi offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_local_arb_problem_v1_item_t, limit_lots) == 32, "arbsphere_local_arb_problem_v1_item_t.limit_lots offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_local_arb_problem_v1_item_t, bid_px) == 40, "arbsphere_local_arb_problem_v1_item_t.bid_px offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_local_arb_problem_v1_item_t, ask_px) == 48, "arbsphere_local_arb_problem_v1_item_t.ask_px offset");

typedef struct arbsphere_shared_signals_v1_t {
    uint16_t venue_id; /* offset 0 */
    uint16_t n_assets; /* offset 2 */
    uint32_t _pad0; /* offset 4 */
    uint64_t tick_seq; /* offset 8 */
} arbsphere_shared_signals_v1_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_shared_signals_v1_t) == 16, "arbsphere_shared_signals_v1_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_shared_signals_v1_t, venue_id) == 0, "arbsphere_shared_signals_v1_t.venue_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_shared_signals_v1_t, n_assets) == 2, "arbsphere_shared_signals_v1_t.n_assets offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_shared_signals_v1_t, _pad0) == 4, "arbsphere_shared_signals_v1_t._pad0 offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_shared_signals_v1_t, tick_seq) == 8, "arbsphere_shared_signals_v1_t.tick_seq offset");

typedef struct arbsphere_shared_signals_v1_item_t {
    uint16_t asset_id; /* offset 0 */
    uint16_t _pad0; /* offset 2 */
    uint32_t _pad1; /* offset 4 */
    double mid; /* offset 8 */
    double price_delta; /* offset 16 */
    double spread; /* offset 24 */
    double correlation; /* offset 32 */
    int64_t liquidity_lots; /* offset 40 */
    int64_t latency_proxy_ns; /* offset 48 */
} arbsphere_shared_signals_v1_item_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_shared_signals_v1_item_t) == 56, "arbsphere_shared_signals_v1_item_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_shared_signals_v1_item_t, asset_id) == 0, "arbsphere_shared_signals_v1_item_t.asset_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_shared_signals_v1_item_t, _pad0) == 2, "arbsphere_shared_signals_v1_item_t._pad0 offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_shared_signals_v1_item_t, _pad1) == 4, "arbsphere_shared_signals_v1_item_t._pad1 offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_shared_signals_v1_item_t, mid) == 8, "arbsphere_shared_signals_v1_item_t.mid offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_shared_signals_v1_item_t, price_delta) == 16, "arbsphere_shared_signals_v1_item_t.price_delta offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_shared_signals_v1_item_t, spread) == 24, "arbsphere_shared_signals_v1_item_t.spread offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_shared_signals_v1_item_t, correlation) == 32, "arbsphere_shared_signals_v1_item_t.correlation offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_shared_signals_v1_item_t, liquidity_lots) == 40, "arbsphere_shared_signals_v1_item_t.liquidity_lots offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_shared_signals_v1_item_t, latency_proxy_ns) == 48, "arbsphere_shared_signals_v1_item_t.latency_proxy_ns offset");

typedef struct arbsphere_plan_delta_v1_t {
    uint64_t delta_id; /* offset 0 */
    int64_t ts_ns; /* offset 8 */
    uint32_t sender; /* offset 16 */
    uint16_t n_legs; /* offset 20 */
    uint16_t cause_venue; /* offset 22 */
    uint64_t cause_seq; /* offset 24 */
} arbsphere_plan_delta_v1_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_plan_delta_v1_t) == 32, "arbsphere_plan_delta_v1_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_plan_delta_v1_t, delta_id) == 0, "arbsphere_plan_delta_v1_t.delta_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_plan_delta_v1_t, ts_ns) == 8, "arbsphere_plan_delta_v1_t.ts_ns offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_plan_delta_v1_t, sender) == 16, "arbsphere_plan_delta_v1_t.sender offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_plan_delta_v1_t, n_legs) == 20, "arbsphere_plan_delta_v1_t.n_legs offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_plan_delta_v1_t, cause_venue) == 22, "arbsphere_plan_delta_v1_t.cause_venue offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_plan_delta_v1_t, cause_seq) == 24, "arbsphere_plan_delta_v1_t.cause_seq offset");

typedef struct arbsphere_plan_delta_v1_item_t {
    int64_t ts_ns; /* offset 0 */
    uint64_t delta_id; /* offset 8 */
    uint32_t sender; /* offset 16 */
    uint16_t venue; /* offset 20 */
    uint16_t asset; /* offset 22 */
    int8_t side; /* offset 24 */
    uint8_t _pad0[7]; /* offset 25 */
    int64_t size_lots; /* offset 32 */
    int64_t limit_px; /* offset 40 */
} arbsphere_plan_delta_v1_item_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_plan_delta_v1_item_t) == 48, "arbsphere_plan_delta_v1_item_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_plan_delta_v1_item_t, ts_ns) == 0, "arbsphere_plan_delta_v1_item_t.ts_ns offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_plan_delta_v1_item_t, delta_id) == 8, "arbsphere_plan_delta_v1_item_t.delta_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_plan_delta_v1_item_t, sender) == 16, "arbsphere_plan_delta_v1_item_t.sender offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_plan_delta_v1_item_t, venue) == 20, "arbsphere_plan_delta_v1_item_t.venue offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_plan_delta_v1_item_t, asset) == 22, "arbsphere_plan_delta_v1_item_t.asset offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_plan_delta_v1_item_t, side) == 24, "arbsphere_plan_delta_v1_item_t.side offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_plan_delta_v1_item_t, _pad0) == 25, "arbsphere_plan_delta_v1_item_t._pad0 offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_plan_delta_v1_item_t, size_lots) == 32, "arbsphere_plan_delta_v1_item_t.size_lots offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_plan_delta_v1_item_t, limit_px) == 40, "arbsphere_plan_delta_v1_item_t.limit_px offset");

typedef struct arbsphere_plan_delta_v2_t {
    uint64_t delta_id; /* offset 0 */
    int64_t ts_ns; /* offset 8 */
    uint32_t sender; /* offset 16 */
    uint16_t n_legs; /* offset 20 */
    uint16_t cause_venue; /* offset 22 */
    uint64_t cause_seq; /* offset 24 */
    uint8_t kind; /* offset 32; codes: PlanDeltaKind */
    uint8_t _pad0[7]; /* offset 33 */
    uint64_t plan_hash; /* offset 40 */
} arbsphere_plan_delta_v2_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_plan_delta_v2_t) == 48, "arbsphere_plan_delta_v2_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_plan_delta_v2_t, delta_id) == 0, "arbsphere_plan_delta_v2_t.delta_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_plan_delta_v2_t, ts_ns) == 8, "arbsphere_plan_delta_v2_t.ts_ns offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_plan_delta_v2_t, sender) == 16, "arbsphere_plan_delta_v2_t.sender offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_plan_delta_v2_t, n_legs) == 20, "arbsphere_plan_delta_v2_t.n_legs offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_plan_delta_v2_t, cause_venue) == 22, "arbsphere_plan_delta_v2_t.cause_venue offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_plan_delta_v2_t, cause_seq) == 24, "arbsphere_plan_delta_v2_t.cause_seq offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_plan_delta_v2_t, kind) == 32, "arbsphere_plan_delta_v2_t.kind offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_plan_delta_v2_t, _pad0) == 33, "arbsphere_plan_delta_v2_t._pad0 offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_plan_delta_v2_t, plan_hash) == 40, "arbsphere_plan_delta_v2_t.plan_hash offset");

typedef struct arbsphere_plan_delta_v2_item_t {
    int64_t ts_ns; /* offset 0 */
    uint64_t delta_id; /* offset 8 */
    uint32_t sender; /* offset 16 */
    uint16_t venue; /* offset 20 */
    uint16_t asset; /* offset 22 */
    int8_t side; /* offset 24 */
    uint8_t _pad0[7]; /* offset 25 */
    int64_t size_lots; /* offset 32 */
    int64_t limit_px; /* offset 40 */
} arbsphere_plan_delta_v2_item_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_plan_delta_v2_item_t) == 48, "arbsphere_plan_delta_v2_item_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_plan_delta_v2_item_t, ts_ns) == 0, "arbsphere_plan_delta_v2_item_t.ts_ns offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_plan_delta_v2_item_t, delta_id) == 8, "arbsphere_plan_delta_v2_item_t.delta_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_plan_delta_v2_item_t, sender) == 16, "arbsphere_plan_delta_v2_item_t.sender offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_plan_delta_v2_item_t, venue) == 20, "arbsphere_plan_delta_v2_item_t.venue offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_plan_delta_v2_item_t, asset) == 22, "arbsphere_plan_delta_v2_item_t.asset offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_plan_delta_v2_item_t, side) == 24, "arbsphere_plan_delta_v2_item_t.side offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_plan_delta_v2_item_t, _pad0) == 25, "arbsphere_plan_delta_v2_item_t._pad0 offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_plan_delta_v2_item_t, size_lots) == 32, "arbsphere_plan_delta_v2_item_t.size_lots offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_plan_delta_v2_item_t, limit_px) == 40, "arbsphere_plan_delta_v2_item_t.limit_px offset");

typedef struct arbsphere_dual_variables_v1_t {
    uint32_t round; /* offset 0 */
    uint16_t n_assets; /* offset 4 */
    uint16_t _pad0; /* offset 6 */
    uint32_t iterations; /* offset 8 */
    uint8_t converged; /* offset 12 */
    uint8_t _pad1[3]; /* offset 13 */
    double rho; /* offset 16 */
    double primal_res; /* offset 24 */
    double dual_res; /* offset 32 */
} arbsphere_dual_variables_v1_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_dual_variables_v1_t) == 40, "arbsphere_dual_variables_v1_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v1_t, round) == 0, "arbsphere_dual_variables_v1_t.round offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v1_t, n_assets) == 4, "arbsphere_dual_variables_v1_t.n_assets offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v1_t, _pad0) == 6, "arbsphere_dual_variables_v1_t._pad0 offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v1_t, iterations) == 8, "arbsphere_dual_variables_v1_t.iterations offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v1_t, converged) == 12, "arbsphere_dual_variables_v1_t.converged offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v1_t, _pad1) == 13, "arbsphere_dual_variables_v1_t._pad1 offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v1_t, rho) == 16, "arbsphere_dual_variables_v1_t.rho offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v1_t, primal_res) == 24, "arbsphere_dual_variables_v1_t.primal_res offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v1_t, dual_res) == 32, "arbsphere_dual_variables_v1_t.dual_res offset");

typedef struct arbsphere_dual_variables_v1_item_t {
    uint16_t asset_id; /* offset 0 */
    uint16_t _pad0; /* offset 2 */
    uint32_t _pad1; /* offset 4 */
    double price; /* offset 8 */
    double u; /* offset 16 */
    double xbar; /* offset 24 */
} arbsphere_dual_variables_v1_item_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_dual_variables_v1_item_t) == 32, "arbsphere_dual_variables_v1_item_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v1_item_t, asset_id) == 0, "arbsphere_dual_variables_v1_item_t.asset_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v1_item_t, _pad0) == 2, "arbsphere_dual_variables_v1_item_t._pad0 offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v1_item_t, _pad1) == 4, "arbsphere_dual_variables_v1_item_t._pad1 offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v1_item_t, price) == 8, "arbsphere_dual_variables_v1_item_t.price offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v1_item_t, u) == 16, "arbsphere_dual_variables_v1_item_t.u offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v1_item_t, xbar) == 24, "arbsphere_dual_variables_v1_item_t.xbar offset");

typedef struct arbsphere_dual_variables_v2_t {
    uint64_t solve_id; /* offset 0 */
    uint32_t round; /* offset 8 */
    uint16_t n_assets; /* offset 12 */
    uint8_t phase; /* offset 14; codes: RoundPhase */
    uint8_t flags; /* offset 15; codes: RoundFlags */
    uint32_t iterations; /* offset 16 */
    uint8_t converged; /* offset 20 */
    uint8_t _pad0[3]; /* offset 21 */
    double rho; /* offset 24 */
    double alpha; /* offset 32 */
    double primal_res; /* offset 40 */
    double dual_res; /* offset 48 */
} arbsphere_dual_variables_v2_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_dual_variables_v2_t) == 56, "arbsphere_dual_variables_v2_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v2_t, solve_id) == 0, "arbsphere_dual_variables_v2_t.solve_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v2_t, round) == 8, "arbsphere_dual_variables_v2_t.round offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v2_t, n_assets) == 12, "arbsphere_dual_variables_v2_t.n_assets offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v2_t, phase) == 14, "arbsphere_dual_variables_v2_t.phase offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v2_t, flags) == 15, "arbsphere_dual_variables_v2_t.flags offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v2_t, iterations) == 16, "arbsphere_dual_variables_v2_t.iterations offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v2_t, converged) == 20, "arbsphere_dual_variables_v2_t.converged offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v2_t, _pad0) == 21, "arbsphere_dual_variables_v2_t._pad0 offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v2_t, rho) == 24, "arbsphere_dual_variables_v2_t.rho offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v2_t, alpha) == 32, "arbsphere_dual_variables_v2_t.alpha offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v2_t, primal_res) == 40, "arbsphere_dual_variables_v2_t.primal_res offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v2_t, dual_res) == 48, "arbsphere_dual_variables_v2_t.dual_res offset");

typedef struct arbsphere_dual_variables_v2_item_t {
    uint16_t asset_id; /* offset 0 */
    uint16_t _pad0; /* offset 2 */
    uint32_t _pad1; /* offset 4 */
    double price; /* offset 8 */
    double u; /* offset 16 */
    double xbar; /* offset 24 */
} arbsphere_dual_variables_v2_item_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_dual_variables_v2_item_t) == 32, "arbsphere_dual_variables_v2_item_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v2_item_t, asset_id) == 0, "arbsphere_dual_variables_v2_item_t.asset_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v2_item_t, _pad0) == 2, "arbsphere_dual_variables_v2_item_t._pad0 offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v2_item_t, _pad1) == 4, "arbsphere_dual_variables_v2_item_t._pad1 offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v2_item_t, price) == 8, "arbsphere_dual_variables_v2_item_t.price offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v2_item_t, u) == 16, "arbsphere_dual_variables_v2_item_t.u offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v2_item_t, xbar) == 24, "arbsphere_dual_variables_v2_item_t.xbar offset");

typedef struct arbsphere_dual_variables_v3_t {
    uint64_t solve_id; /* offset 0 */
    uint32_t round; /* offset 8 */
    uint16_t n_assets; /* offset 12 */
    uint8_t phase; /* offset 14; codes: RoundPhase */
    uint8_t flags; /* offset 15; codes: RoundFlags */
    uint32_t iterations; /* offset 16 */
    uint8_t converged; /* offset 20 */
    uint8_t _pad0[3]; /* offset 21 */
    double rho; /* offset 24 */
    double alpha; /* offset 32 */
    double primal_res; /* offset 40 */
    double dual_res; /* offset 48 */
    uint64_t participants; /* offset 56 */
    uint32_t reveal_round; /* offset 64 */
    uint32_t _pad1; /* offset 68 */
} arbsphere_dual_variables_v3_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_dual_variables_v3_t) == 72, "arbsphere_dual_variables_v3_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v3_t, solve_id) == 0, "arbsphere_dual_variables_v3_t.solve_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v3_t, round) == 8, "arbsphere_dual_variables_v3_t.round offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v3_t, n_assets) == 12, "arbsphere_dual_variables_v3_t.n_assets offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v3_t, phase) == 14, "arbsphere_dual_variables_v3_t.phase offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v3_t, flags) == 15, "arbsphere_dual_variables_v3_t.flags offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v3_t, iterations) == 16, "arbsphere_dual_variables_v3_t.iterations offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v3_t, converged) == 20, "arbsphere_dual_variables_v3_t.converged offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v3_t, _pad0) == 21, "arbsphere_dual_variables_v3_t._pad0 offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v3_t, rho) == 24, "arbsphere_dual_variables_v3_t.rho offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v3_t, alpha) == 32, "arbsphere_dual_variables_v3_t.alpha offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v3_t, primal_res) == 40, "arbsphere_dual_variables_v3_t.primal_res offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v3_t, dual_res) == 48, "arbsphere_dual_variables_v3_t.dual_res offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v3_t, participants) == 56, "arbsphere_dual_variables_v3_t.participants offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v3_t, reveal_round) == 64, "arbsphere_dual_variables_v3_t.reveal_round offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v3_t, _pad1) == 68, "arbsphere_dual_variables_v3_t._pad1 offset");

typedef struct arbsphere_dual_variables_v3_item_t {
    uint16_t asset_id; /* offset 0 */
    uint16_t _pad0; /* offset 2 */
    uint32_t _pad1; /* offset 4 */
    double price; /* offset 8 */
    double u; /* offset 16 */
    double xbar; /* offset 24 */
} arbsphere_dual_variables_v3_item_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_dual_variables_v3_item_t) == 32, "arbsphere_dual_variables_v3_item_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v3_item_t, asset_id) == 0, "arbsphere_dual_variables_v3_item_t.asset_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v3_item_t, _pad0) == 2, "arbsphere_dual_variables_v3_item_t._pad0 offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v3_item_t, _pad1) == 4, "arbsphere_dual_variables_v3_item_t._pad1 offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v3_item_t, price) == 8, "arbsphere_dual_variables_v3_item_t.price offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v3_item_t, u) == 16, "arbsphere_dual_variables_v3_item_t.u offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dual_variables_v3_item_t, xbar) == 24, "arbsphere_dual_variables_v3_item_t.xbar offset");

typedef struct arbsphere_privacy_budget_v1_t {
    uint16_t venue_id; /* offset 0 */
    uint16_t signal_kind; /* offset 2; codes: SignalKind */
    uint8_t mechanism; /* offset 4; codes: NoiseMechanism */
    uint8_t _pad0[3]; /* offset 5 */
    double epsilon_total; /* offset 8 */
    double epsilon_spent; /* offset 16 */
    double delta; /* offset 24 */
    uint64_t releases; /* offset 32 */
} arbsphere_privacy_budget_v1_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_privacy_budget_v1_t) == 40, "arbsphere_privacy_budget_v1_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_privacy_budget_v1_t, venue_id) == 0, "arbsphere_privacy_budget_v1_t.venue_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_privacy_budget_v1_t, signal_kind) == 2, "arbsphere_privacy_budget_v1_t.signal_kind offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_privacy_budget_v1_t, mechanism) == 4, "arbsphere_privacy_budget_v1_t.mechanism offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_privacy_budget_v1_t, _pad0) == 5, "arbsphere_privacy_budget_v1_t._pad0 offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_privacy_budget_v1_t, epsilon_total) == 8, "arbsphere_privacy_budget_v1_t.epsilon_total offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_privacy_budget_v1_t, epsilon_spent) == 16, "arbsphere_privacy_budget_v1_t.epsilon_spent offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_privacy_budget_v1_t, delta) == 24, "arbsphere_privacy_budget_v1_t.delta offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_privacy_budget_v1_t, releases) == 32, "arbsphere_privacy_budget_v1_t.releases offset");

typedef struct arbsphere_audit_log_event_v1_t {
    uint16_t event_kind; /* offset 0 */
    uint16_t _pad0; /* offset 2 */
    uint32_t actor; /* offset 4 */
    uint32_t subject; /* offset 8 */
    uint32_t _pad1; /* offset 12 */
    uint64_t seq; /* offset 16 */
    int64_t ts_ns; /* offset 24 */
    uint8_t prev_hash[32]; /* offset 32 */
    uint8_t payload_hash[32]; /* offset 64 */
} arbsphere_audit_log_event_v1_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_audit_log_event_v1_t) == 96, "arbsphere_audit_log_event_v1_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_audit_log_event_v1_t, event_kind) == 0, "arbsphere_audit_log_event_v1_t.event_kind offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_audit_log_event_v1_t, _pad0) == 2, "arbsphere_audit_log_event_v1_t._pad0 offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_audit_log_event_v1_t, actor) == 4, "arbsphere_audit_log_event_v1_t.actor offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_audit_log_event_v1_t, subject) == 8, "arbsphere_audit_log_event_v1_t.subject offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_audit_log_event_v1_t, _pad1) == 12, "arbsphere_audit_log_event_v1_t._pad1 offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_audit_log_event_v1_t, seq) == 16, "arbsphere_audit_log_event_v1_t.seq offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_audit_log_event_v1_t, ts_ns) == 24, "arbsphere_audit_log_event_v1_t.ts_ns offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_audit_log_event_v1_t, prev_hash) == 32, "arbsphere_audit_log_event_v1_t.prev_hash offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_audit_log_event_v1_t, payload_hash) == 64, "arbsphere_audit_log_event_v1_t.payload_hash offset");

typedef struct arbsphere_execution_report_v1_t {
    uint64_t order_id; /* offset 0 */
    uint64_t delta_id; /* offset 8 */
    uint16_t venue; /* offset 16 */
    uint16_t asset; /* offset 18 */
    uint8_t status; /* offset 20; codes: ReportStatus */
    uint8_t _pad0[3]; /* offset 21 */
    int64_t filled_lots; /* offset 24 */
    int64_t fill_px; /* offset 32 */
    int64_t device_rx_ns; /* offset 40 */
    int64_t device_tx_ns; /* offset 48 */
    int64_t rig_tx_ns; /* offset 56 */
    int64_t rig_rx_ns; /* offset 64 */
} arbsphere_execution_report_v1_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_execution_report_v1_t) == 72, "arbsphere_execution_report_v1_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_execution_report_v1_t, order_id) == 0, "arbsphere_execution_report_v1_t.order_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_execution_report_v1_t, delta_id) == 8, "arbsphere_execution_report_v1_t.delta_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_execution_report_v1_t, venue) == 16, "arbsphere_execution_report_v1_t.venue offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_execution_report_v1_t, asset) == 18, "arbsphere_execution_report_v1_t.asset offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_execution_report_v1_t, status) == 20, "arbsphere_execution_report_v1_t.status offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_execution_report_v1_t, _pad0) == 21, "arbsphere_execution_report_v1_t._pad0 offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_execution_report_v1_t, filled_lots) == 24, "arbsphere_execution_report_v1_t.filled_lots offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_execution_report_v1_t, fill_px) == 32, "arbsphere_execution_report_v1_t.fill_px offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_execution_report_v1_t, device_rx_ns) == 40, "arbsphere_execution_report_v1_t.device_rx_ns offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_execution_report_v1_t, device_tx_ns) == 48, "arbsphere_execution_report_v1_t.device_tx_ns offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_execution_report_v1_t, rig_tx_ns) == 56, "arbsphere_execution_report_v1_t.rig_tx_ns offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_execution_report_v1_t, rig_rx_ns) == 64, "arbsphere_execution_report_v1_t.rig_rx_ns offset");

typedef struct arbsphere_local_solution_v1_t {
    uint64_t solve_id; /* offset 0 */
    uint32_t round; /* offset 8 */
    uint16_t venue_id; /* offset 12 */
    uint16_t n_assets; /* offset 14 */
    uint64_t problem_seq; /* offset 16 */
} arbsphere_local_solution_v1_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_local_solution_v1_t) == 24, "arbsphere_local_solution_v1_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_local_solution_v1_t, solve_id) == 0, "arbsphere_local_solution_v1_t.solve_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_local_solution_v1_t, round) == 8, "arbsphere_local_solution_v1_t.round offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_local_solution_v1_t, venue_id) == 12, "arbsphere_local_solution_v1_t.venue_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_local_solution_v1_t, n_assets) == 14, "arbsphere_local_solution_v1_t.n_assets offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_local_solution_v1_t, problem_seq) == 16, "arbsphere_local_solution_v1_t.problem_seq offset");

typedef struct arbsphere_local_solution_v1_item_t {
    uint16_t asset_id; /* offset 0 */
    uint16_t _pad0; /* offset 2 */
    uint32_t _pad1; /* offset 4 */
    double x; /* offset 8 */
} arbsphere_local_solution_v1_item_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_local_solution_v1_item_t) == 16, "arbsphere_local_solution_v1_item_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_local_solution_v1_item_t, asset_id) == 0, "arbsphere_local_solution_v1_item_t.asset_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_local_solution_v1_item_t, _pad0) == 2, "arbsphere_local_solution_v1_item_t._pad0 offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_local_solution_v1_item_t, _pad1) == 4, "arbsphere_local_solution_v1_item_t._pad1 offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_local_solution_v1_item_t, x) == 8, "arbsphere_local_solution_v1_item_t.x offset");

typedef struct arbsphere_local_solution_v2_t {
    uint64_t solve_id; /* offset 0 */
    uint32_t round; /* offset 8 */
    uint16_t venue_id; /* offset 12 */
    uint8_t kind; /* offset 14; codes: SolutionKind */
    uint8_t _pad0; /* offset 15 */
    uint64_t problem_seq; /* offset 16 */
    uint64_t participants; /* offset 24 */
    uint32_t n_words; /* offset 32 */
    uint32_t _pad1; /* offset 36 */
} arbsphere_local_solution_v2_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_local_solution_v2_t) == 40, "arbsphere_local_solution_v2_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_local_solution_v2_t, solve_id) == 0, "arbsphere_local_solution_v2_t.solve_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_local_solution_v2_t, round) == 8, "arbsphere_local_solution_v2_t.round offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_local_solution_v2_t, venue_id) == 12, "arbsphere_local_solution_v2_t.venue_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_local_solution_v2_t, kind) == 14, "arbsphere_local_solution_v2_t.kind offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_local_solution_v2_t, _pad0) == 15, "arbsphere_local_solution_v2_t._pad0 offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_local_solution_v2_t, problem_seq) == 16, "arbsphere_local_solution_v2_t.problem_seq offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_local_solution_v2_t, participants) == 24, "arbsphere_local_solution_v2_t.participants offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_local_solution_v2_t, n_words) == 32, "arbsphere_local_solution_v2_t.n_words offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_local_solution_v2_t, _pad1) == 36, "arbsphere_local_solution_v2_t._pad1 offset");

typedef struct arbsphere_local_solution_v2_item_t {
    uint64_t word; /* offset 0 */
} arbsphere_local_solution_v2_item_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_local_solution_v2_item_t) == 8, "arbsphere_local_solution_v2_item_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_local_solution_v2_item_t, word) == 0, "arbsphere_local_solution_v2_item_t.word offset");

typedef struct arbsphere_venue_quote_v1_t {
    uint16_t venue_id; /* offset 0 */
    uint16_t n_assets; /* offset 2 */
    uint32_t _pad0; /* offset 4 */
    uint64_t tick_seq; /* offset 8 */
    int64_t tick_intended_ns; /* offset 16 */
    int64_t budget_ns; /* offset 24 */
} arbsphere_venue_quote_v1_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_venue_quote_v1_t) == 32, "arbsphere_venue_quote_v1_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_venue_quote_v1_t, venue_id) == 0, "arbsphere_venue_quote_v1_t.venue_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_venue_quote_v1_t, n_assets) == 2, "arbsphere_venue_quote_v1_t.n_assets offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_venue_quote_v1_t, _pad0) == 4, "arbsphere_venue_quote_v1_t._pad0 offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_venue_quote_v1_t, tick_seq) == 8, "arbsphere_venue_quote_v1_t.tick_seq offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_venue_quote_v1_t, tick_intended_ns) == 16, "arbsphere_venue_quote_v1_t.tick_intended_ns offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_venue_quote_v1_t, budget_ns) == 24, "arbsphere_venue_quote_v1_t.budget_ns offset");

typedef struct arbsphere_venue_quote_v1_item_t {
    uint16_t asset_id; /* offset 0 */
    uint16_t _pad0; /* offset 2 */
    uint32_t _pad1; /* offset 4 */
    int64_t bid_px; /* offset 8 */
    int64_t ask_px; /* offset 16 */
} arbsphere_venue_quote_v1_item_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_venue_quote_v1_item_t) == 24, "arbsphere_venue_quote_v1_item_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_venue_quote_v1_item_t, asset_id) == 0, "arbsphere_venue_quote_v1_item_t.asset_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_venue_quote_v1_item_t, _pad0) == 2, "arbsphere_venue_quote_v1_item_t._pad0 offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_venue_quote_v1_item_t, _pad1) == 4, "arbsphere_venue_quote_v1_item_t._pad1 offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_venue_quote_v1_item_t, bid_px) == 8, "arbsphere_venue_quote_v1_item_t.bid_px offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_venue_quote_v1_item_t, ask_px) == 16, "arbsphere_venue_quote_v1_item_t.ask_px offset");

typedef struct arbsphere_plan_snapshot_v1_t {
    uint64_t delta_id; /* offset 0 */
    uint64_t plan_hash; /* offset 8 */
    uint16_t n_venues; /* offset 16 */
    uint16_t n_assets; /* offset 18 */
    uint32_t n_cells; /* offset 20 */
} arbsphere_plan_snapshot_v1_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_plan_snapshot_v1_t) == 24, "arbsphere_plan_snapshot_v1_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_plan_snapshot_v1_t, delta_id) == 0, "arbsphere_plan_snapshot_v1_t.delta_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_plan_snapshot_v1_t, plan_hash) == 8, "arbsphere_plan_snapshot_v1_t.plan_hash offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_plan_snapshot_v1_t, n_venues) == 16, "arbsphere_plan_snapshot_v1_t.n_venues offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_plan_snapshot_v1_t, n_assets) == 18, "arbsphere_plan_snapshot_v1_t.n_assets offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_plan_snapshot_v1_t, n_cells) == 20, "arbsphere_plan_snapshot_v1_t.n_cells offset");

typedef struct arbsphere_plan_snapshot_v1_item_t {
    int64_t lots; /* offset 0 */
} arbsphere_plan_snapshot_v1_item_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_plan_snapshot_v1_item_t) == 8, "arbsphere_plan_snapshot_v1_item_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_plan_snapshot_v1_item_t, lots) == 0, "arbsphere_plan_snapshot_v1_item_t.lots offset");

typedef struct arbsphere_replica_status_v1_t {
    uint32_t replica_id; /* offset 0 */
    uint8_t status; /* offset 4; codes: ReplicaStatusCode */
    uint8_t _pad0[3]; /* offset 5 */
    uint64_t delta_id; /* offset 8 */
    uint64_t replica_hash; /* offset 16 */
    uint64_t expected_hash; /* offset 24 */
} arbsphere_replica_status_v1_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_replica_status_v1_t) == 32, "arbsphere_replica_status_v1_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_replica_status_v1_t, replica_id) == 0, "arbsphere_replica_status_v1_t.replica_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_replica_status_v1_t, status) == 4, "arbsphere_replica_status_v1_t.status offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_replica_status_v1_t, _pad0) == 5, "arbsphere_replica_status_v1_t._pad0 offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_replica_status_v1_t, delta_id) == 8, "arbsphere_replica_status_v1_t.delta_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_replica_status_v1_t, replica_hash) == 16, "arbsphere_replica_status_v1_t.replica_hash offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_replica_status_v1_t, expected_hash) == 24, "arbsphere_replica_status_v1_t.expected_hash offset");

typedef struct arbsphere_governance_frame_v1_t {
    uint16_t kind; /* offset 0; codes: GovernanceFrameKind */
    uint16_t event_kind; /* offset 2 */
    uint32_t subject; /* offset 4 */
    uint64_t request_id; /* offset 8 */
    uint32_t body_len; /* offset 16 */
    uint32_t _pad0; /* offset 20 */
} arbsphere_governance_frame_v1_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_governance_frame_v1_t) == 24, "arbsphere_governance_frame_v1_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_governance_frame_v1_t, kind) == 0, "arbsphere_governance_frame_v1_t.kind offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_governance_frame_v1_t, event_kind) == 2, "arbsphere_governance_frame_v1_t.event_kind offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_governance_frame_v1_t, subject) == 4, "arbsphere_governance_frame_v1_t.subject offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_governance_frame_v1_t, request_id) == 8, "arbsphere_governance_frame_v1_t.request_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_governance_frame_v1_t, body_len) == 16, "arbsphere_governance_frame_v1_t.body_len offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_governance_frame_v1_t, _pad0) == 20, "arbsphere_governance_frame_v1_t._pad0 offset");

typedef struct arbsphere_governance_frame_v1_item_t {
    uint8_t byte; /* offset 0 */
} arbsphere_governance_frame_v1_item_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_governance_frame_v1_item_t) == 1, "arbsphere_governance_frame_v1_item_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_governance_frame_v1_item_t, byte) == 0, "arbsphere_governance_frame_v1_item_t.byte offset");

typedef struct arbsphere_signal_share_v1_t {
    uint64_t epoch; /* offset 0 */
    uint64_t participants; /* offset 8 */
    uint16_t venue_id; /* offset 16 */
    uint16_t _pad0; /* offset 18 */
    uint32_t n_words; /* offset 20 */
} arbsphere_signal_share_v1_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_signal_share_v1_t) == 24, "arbsphere_signal_share_v1_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_signal_share_v1_t, epoch) == 0, "arbsphere_signal_share_v1_t.epoch offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_signal_share_v1_t, participants) == 8, "arbsphere_signal_share_v1_t.participants offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_signal_share_v1_t, venue_id) == 16, "arbsphere_signal_share_v1_t.venue_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_signal_share_v1_t, _pad0) == 18, "arbsphere_signal_share_v1_t._pad0 offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_signal_share_v1_t, n_words) == 20, "arbsphere_signal_share_v1_t.n_words offset");

typedef struct arbsphere_signal_share_v1_item_t {
    uint64_t word; /* offset 0 */
} arbsphere_signal_share_v1_item_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_signal_share_v1_item_t) == 8, "arbsphere_signal_share_v1_item_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_signal_share_v1_item_t, word) == 0, "arbsphere_signal_share_v1_item_t.word offset");

typedef struct arbsphere_price_proposal_v1_t {
    uint64_t solve_id; /* offset 0 */
    uint32_t round; /* offset 8 */
    uint16_t n_assets; /* offset 12 */
    uint8_t phase; /* offset 14; codes: PricePhase */
    uint8_t flags; /* offset 15; codes: PriceFlags */
    uint64_t participants; /* offset 16 */
} arbsphere_price_proposal_v1_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_price_proposal_v1_t) == 24, "arbsphere_price_proposal_v1_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_price_proposal_v1_t, solve_id) == 0, "arbsphere_price_proposal_v1_t.solve_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_price_proposal_v1_t, round) == 8, "arbsphere_price_proposal_v1_t.round offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_price_proposal_v1_t, n_assets) == 12, "arbsphere_price_proposal_v1_t.n_assets offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_price_proposal_v1_t, phase) == 14, "arbsphere_price_proposal_v1_t.phase offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_price_proposal_v1_t, flags) == 15, "arbsphere_price_proposal_v1_t.flags offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_price_proposal_v1_t, participants) == 16, "arbsphere_price_proposal_v1_t.participants offset");

typedef struct arbsphere_price_proposal_v1_item_t {
    uint16_t asset_id; /* offset 0 */
    uint16_t _pad0; /* offset 2 */
    uint32_t _pad1; /* offset 4 */
    double price; /* offset 8 */
} arbsphere_price_proposal_v1_item_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_price_proposal_v1_item_t) == 16, "arbsphere_price_proposal_v1_item_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_price_proposal_v1_item_t, asset_id) == 0, "arbsphere_price_proposal_v1_item_t.asset_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_price_proposal_v1_item_t, _pad0) == 2, "arbsphere_price_proposal_v1_item_t._pad0 offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_price_proposal_v1_item_t, _pad1) == 4, "arbsphere_price_proposal_v1_item_t._pad1 offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_price_proposal_v1_item_t, price) == 8, "arbsphere_price_proposal_v1_item_t.price offset");

typedef struct arbsphere_price_response_v1_t {
    uint64_t solve_id; /* offset 0 */
    uint32_t round; /* offset 8 */
    uint16_t venue_id; /* offset 12 */
    uint8_t kind; /* offset 14; codes: PriceResponseKind */
    uint8_t _pad0; /* offset 15 */
    uint64_t problem_seq; /* offset 16 */
    uint64_t participants; /* offset 24 */
    uint32_t n_words; /* offset 32 */
    uint32_t _pad1; /* offset 36 */
} arbsphere_price_response_v1_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_price_response_v1_t) == 40, "arbsphere_price_response_v1_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_price_response_v1_t, solve_id) == 0, "arbsphere_price_response_v1_t.solve_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_price_response_v1_t, round) == 8, "arbsphere_price_response_v1_t.round offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_price_response_v1_t, venue_id) == 12, "arbsphere_price_response_v1_t.venue_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_price_response_v1_t, kind) == 14, "arbsphere_price_response_v1_t.kind offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_price_response_v1_t, _pad0) == 15, "arbsphere_price_response_v1_t._pad0 offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_price_response_v1_t, problem_seq) == 16, "arbsphere_price_response_v1_t.problem_seq offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_price_response_v1_t, participants) == 24, "arbsphere_price_response_v1_t.participants offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_price_response_v1_t, n_words) == 32, "arbsphere_price_response_v1_t.n_words offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_price_response_v1_t, _pad1) == 36, "arbsphere_price_response_v1_t._pad1 offset");

typedef struct arbsphere_price_response_v1_item_t {
    uint64_t word; /* offset 0 */
} arbsphere_price_response_v1_item_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_price_response_v1_item_t) == 8, "arbsphere_price_response_v1_item_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_price_response_v1_item_t, word) == 0, "arbsphere_price_response_v1_item_t.word offset");

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* ARBSPHERE_CONTRACTS_H */
