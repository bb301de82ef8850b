// The whole ArbSphere C++ SDK in one include: generated views and codecs of the device messages
// and the contracts, and the hand-written framing, datagram, clock-sync, start-handshake and
// plan-replica code. Header-only C++17; include the parts you need to keep builds lean.
#pragma once

#include "arbsphere/blake2b.hpp"
#include "arbsphere/clock_sync.hpp"
#include "arbsphere/cobs.hpp"
#include "arbsphere/contracts.hpp"
#include "arbsphere/crc32c.hpp"
#include "arbsphere/datagram.hpp"
#include "arbsphere/device_messages.hpp"
#include "arbsphere/plan.hpp"
#include "arbsphere/serial_frame.hpp"
#include "arbsphere/start_handshake.hpp"
#include "arbsphere/wire.hpp"
