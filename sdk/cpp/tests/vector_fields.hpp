// Test helpers: set or read a device message's fields by their declared names (the views'
// kFields), so a JSON vector's {"field": value} can be built and compared generically.
#pragma once

#include <string>

#include "arbsphere/device_messages.hpp"
#include "mini_json.hpp"

namespace vector_fields {

using arbsphere::FieldInfo;
using arbsphere::WireType;
using arbsphere::load_le;
using arbsphere::store_le;

// Call f(View{}, Writer{}) for the message type `type`; false if it is not declared.
template <class F> bool with_type(std::uint8_t type, F&& f) {
    using namespace arbsphere::device;
    switch (static_cast<MsgType>(type)) {
        case MsgType::TICK: f(Tick{}, TickWriter{}); return true;
        case MsgType::ORDER: f(Order{}, OrderWriter{}); return true;
        case MsgType::ACK: f(Ack{}, AckWriter{}); return true;
        case MsgType::HEARTBEAT: f(Heartbeat{}, HeartbeatWriter{}); return true;
        case MsgType::ARM: f(Arm{}, ArmWriter{}); return true;
        case MsgType::ARMED: f(Armed{}, ArmedWriter{}); return true;
        case MsgType::START: f(Start{}, StartWriter{}); return true;
        case MsgType::SYNC: f(Sync{}, SyncWriter{}); return true;
        case MsgType::FOLLOW_UP: f(FollowUp{}, FollowUpWriter{}); return true;
        case MsgType::DELAY_REQ: f(DelayReq{}, DelayReqWriter{}); return true;
        case MsgType::DELAY_RESP: f(DelayResp{}, DelayRespWriter{}); return true;
    }
    return false;
}

template <class View> const FieldInfo* find(const std::string& name) {
    for (const FieldInfo& f : View::kFields) {
        if (name == f.name) return &f;
    }
    return nullptr;
}

inline void store(std::uint8_t* p, const FieldInfo& f, const mini_json::Value& v) {
    std::uint8_t* at = p + f.offset;
    switch (f.type) {
        case WireType::u8: store_le<std::uint8_t>(at, static_cast<std::uint8_t>(v.u64())); break;
        case WireType::i8: store_le<std::int8_t>(at, static_cast<std::int8_t>(v.i64())); break;
        case WireType::u16: store_le<std::uint16_t>(at, static_cast<std::uint16_t>(v.u64())); break;
        case WireType::i16: store_le<std::int16_t>(at, static_cast<std::int16_t>(v.i64())); break;
        case WireType::u32: store_le<std::uint32_t>(at, static_cast<std::uint32_t>(v.u64())); break;
        case WireType::i32: store_le<std::int32_t>(at, static_cast<std::int32_t>(v.i64())); break;
        case WireType::u64: store_le<std::uint64_t>(at, v.u64()); break;
        case WireType::i64: store_le<std::int64_t>(at, v.i64()); break;
        case WireType::f32:
        case WireType::f64: break;  // no float fields in the device messages
    }
}

// The field's value as decimal text (compares exactly with the JSON number text).
inline std::string text(const std::uint8_t* p, const FieldInfo& f) {
    const std::uint8_t* at = p + f.offset;
    switch (f.type) {
        case WireType::u8: return std::to_string(load_le<std::uint8_t>(at));
        case WireType::i8: return std::to_string(load_le<std::int8_t>(at));
        case WireType::u16: return std::to_string(load_le<std::uint16_t>(at));
        case WireType::i16: return std::to_string(load_le<std::int16_t>(at));
        case WireType::u32: return std::to_string(load_le<std::uint32_t>(at));
        case WireType::i32: return std::to_string(load_le<std::int32_t>(at));
        case WireType::u64: return std::to_string(load_le<std::uint64_t>(at));
        case WireType::i64: return std::to_string(load_le<std::int64_t>(at));
        case WireType::f32: return std::to_string(load_le<float>(at));
        case WireType::f64: return std::to_string(load_le<double>(at));
    }
    return "?";
}

}  // namespace vector_fields
