// A plan replica for C++ consumers: PlanDelta legs merged into the plan (venues x assets int64
// lots) exactly as the rig's delta-merge kernel (arbsphere/plan/merge.py) does, and the plan
// hash every PlanDelta v2 carries (arbsphere/plan/digest.py: BLAKE2b with an 8-byte digest over
// the plan as little-endian int64 in C order, read as a little-endian u64).
//
// Merge rules: a batch is sorted stably by (ts_ns, sender, delta_id); a delta (legs sharing
// those) applies whole or not at all: one leg with an out-of-range sender, venue or asset, a
// side other than +-1 or a size <= 0 rejects all its legs. A delta id at or below the sender's
// high-water mark at the start of the batch is a duplicate (skipped), as is a leg repeating a
// cell within one delta. PlanReplica applies one PlanDelta v2 message per batch and compares
// its hash with the one the delta carries; restore() takes a PlanSnapshot after a divergence.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <tuple>
#include <vector>

#include "arbsphere/blake2b.hpp"
#include "arbsphere/contracts.hpp"
#include "arbsphere/wire.hpp"

namespace arbsphere {

struct PlanLeg {
    std::int64_t ts_ns = 0;
    std::uint64_t delta_id = 0;
    std::uint32_t sender = 0;
    std::uint16_t venue = 0;
    std::uint16_t asset = 0;
    std::int8_t side = 0;
    std::int64_t size_lots = 0;
    std::int64_t limit_px = 0;
};

// The plan hash of `cells` (venues x assets, C order).
inline std::uint64_t plan_hash(const std::vector<std::int64_t>& cells) {
    Blake2b h(8);
    std::uint8_t le[8];
    for (const std::int64_t c : cells) {
        store_le<std::int64_t>(le, c);
        h.update(le, sizeof le);
    }
    std::uint8_t digest[8];
    h.final(digest);
    return load_le<std::uint64_t>(digest);
}

class PlanMerger {
public:
    PlanMerger(std::size_t n_venues, std::size_t n_assets, std::size_t n_senders)
        : n_venues_(n_venues), n_assets_(n_assets), plan_(n_venues * n_assets, 0),
          high_water_(n_senders, 0), seen_(n_venues * n_assets, 0) {}

    std::uint64_t applied = 0, duplicates = 0, rejected = 0;

    const std::vector<std::int64_t>& plan() const noexcept { return plan_; }
    std::vector<std::int64_t>& plan() noexcept { return plan_; }
    std::vector<std::uint64_t>& high_water() noexcept { return high_water_; }
    std::uint64_t hash() const { return plan_hash(plan_); }

    // Merge one batch; returns the number of legs applied.
    std::size_t merge(std::vector<PlanLeg> legs) {
        std::stable_sort(legs.begin(), legs.end(), [](const PlanLeg& a, const PlanLeg& b) {
            return std::tie(a.ts_ns, a.sender, a.delta_id) < std::tie(b.ts_ns, b.sender, b.delta_id);
        });
        const std::vector<bool> bad = invalid_deltas(legs);
        const std::vector<std::uint64_t> hw_before = high_water_;
        std::size_t n = 0;
        std::int64_t group_sender = -1;
        std::uint64_t group_delta = 0;
        std::int64_t generation = 0;
        for (std::size_t k = 0; k < legs.size(); ++k) {
            const PlanLeg& leg = legs[k];
            if (bad[k]) {
                ++rejected;
                continue;
            }
            if (leg.delta_id <= hw_before[leg.sender]) {
                ++duplicates;
                continue;
            }
            if (static_cast<std::int64_t>(leg.sender) != group_sender || leg.delta_id != group_delta) {
                group_sender = static_cast<std::int64_t>(leg.sender);
                group_delta = leg.delta_id;
                ++generation;
            }
            const std::size_t cell = std::size_t{leg.venue} * n_assets_ + leg.asset;
            if (seen_[cell] == generation) {
                ++duplicates;
                continue;
            }
            seen_[cell] = generation;
            plan_[cell] += std::int64_t{leg.side} * leg.size_lots;
            high_water_[leg.sender] = std::max(high_water_[leg.sender], leg.delta_id);
            ++n;
        }
        std::fill(seen_.begin(), seen_.end(), 0);
        applied += n;
        return n;
    }

private:
    std::vector<bool> invalid_deltas(const std::vector<PlanLeg>& legs) const {
        std::vector<bool> bad(legs.size(), false);
        std::size_t start = 0;
        for (std::size_t k = 0; k <= legs.size(); ++k) {
            const bool boundary = k == legs.size() ||
                                  std::tie(legs[k].ts_ns, legs[k].sender, legs[k].delta_id) !=
                                      std::tie(legs[start].ts_ns, legs[start].sender,
                                               legs[start].delta_id);
            if (!boundary) continue;
            bool invalid = false;
            for (std::size_t j = start; j < k; ++j) invalid = invalid || !valid(legs[j]);
            for (std::size_t j = start; j < k; ++j) bad[j] = invalid;
            start = k;
        }
        return bad;
    }

    bool valid(const PlanLeg& leg) const noexcept {
        return leg.sender < high_water_.size() && leg.venue < n_venues_ &&
               leg.asset < n_assets_ && (leg.side == 1 || leg.side == -1) && leg.size_lots > 0;
    }

    std::size_t n_venues_, n_assets_;
    std::vector<std::int64_t> plan_;
    std::vector<std::uint64_t> high_water_;
    std::vector<std::int64_t> seen_;
};

// A replica kept by PlanDelta v2 messages: each is merged, then its plan hash is checked.
class PlanReplica {
public:
    PlanReplica(std::size_t n_venues, std::size_t n_assets, std::size_t n_senders = 4)
        : merger_(n_venues, n_assets, n_senders) {}

    std::uint64_t deltas = 0, checked = 0, divergences = 0;
    std::uint64_t last_delta_id = 0;

    // Decode and apply one PlanDelta v2 message. *diverged: the replica's hash now differs
    // from the delta's (ask the coordinator for a PlanSnapshot).
    Status apply(Bytes message, bool* diverged) {
        using PD = contracts::PlanDeltaV2;
        contracts::Message<PD> m;
        const Status st = contracts::decode<PD>(message, &m);
        if (!st.ok()) return st;
        std::vector<PlanLeg> legs(m.count);
        for (std::size_t i = 0; i < m.count; ++i) {
            const PD::Item it = m.item(i);
            legs[i] = PlanLeg{it.ts_ns(), it.delta_id(), it.sender(), it.venue(), it.asset(),
                              it.side(), it.size_lots(), it.limit_px()};
        }
        merger_.merge(std::move(legs));
        ++deltas;
        ++checked;
        last_delta_id = m.header.delta_id();
        *diverged = merger_.hash() != m.header.plan_hash();
        divergences += *diverged ? 1 : 0;
        return st;
    }

    // Replace the plan with a PlanSnapshot v1 (the coordinator's plan after its delta_id, sent
    // to a diverged replica); the sender's high-water mark becomes that delta_id. bad_length
    // at n_cells if the snapshot's shape is not this replica's. *matches: the replica's hash
    // now equals the snapshot's.
    Status restore(Bytes snapshot, bool* matches) {
        using PS = contracts::PlanSnapshotV1;
        contracts::Message<PS> m;
        const Status st = contracts::decode<PS>(snapshot, &m);
        if (!st.ok()) return st;
        auto& plan = merger_.plan();
        if (m.count != plan.size() || std::size_t{m.header.n_venues()} * m.header.n_assets() != plan.size()) {
            return fail(Problem::bad_length, contracts::Envelope::kSize + PS::Header::Offset::n_cells);
        }
        for (std::size_t i = 0; i < m.count; ++i) plan[i] = m.item(i).lots();
        const std::uint32_t sender = m.envelope.sender_id();
        if (sender < merger_.high_water().size()) merger_.high_water()[sender] = m.header.delta_id();
        last_delta_id = m.header.delta_id();
        ++snapshots;
        *matches = merger_.hash() == m.header.plan_hash();
        return st;
    }

    std::uint64_t snapshots = 0;
    const PlanMerger& merger() const noexcept { return merger_; }
    std::uint64_t hash() const { return merger_.hash(); }

private:
    PlanMerger merger_;
};

}  // namespace arbsphere
