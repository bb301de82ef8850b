/* ArbSphere device wire formats: feed and broker device messages.
 *
 * A device message is ONE fixed-size record: the common 8-byte header
 * (arbsphere_dev_header_t) followed by the body of its type; `length` is the whole message
 * size in bytes. Prices are fixed point: integer = price * ARBSPHERE_PRICE_SCALE.
 *
 * Serial transport (one message per frame):
 *     frame = COBS(message || CRC32C(message) as uint32 little-endian) || 0x00
 *   CRC-32C is Castagnoli (reflected poly 0x82F63B78, init/xorout 0xFFFFFFFF; check value
 *   of "123456789" is 0xE3069283). COBS removes every zero byte, so 0x00 only ends a frame;
 *   a receiver resynchronises at the next 0x00. At most ARBSPHERE_SERIAL_MAX_PAYLOAD
 *   message bytes per frame.
 *
 * UDP transport (MoldUDP64-like, little-endian):
 *     datagram = arbsphere_datagram_header_t || `count` messages back to back
 *   `sequence` is the device sequence of the first message; count 0 is a heartbeat that
 *   announces the next sequence. The messages must exactly fill the datagram.
 *
 * Clock sync (IEEE 1588 style, two-step, the rig is the master): rig SYNC (t1 stamped on the
 * rig just before the write) + FOLLOW_UP (precise t1); the device stamps t2 on SYNC arrival
 * and answers DELAY_REQ (t2, t3 = its own send time); the rig answers DELAY_RESP (t4). All
 * device times are on the device's own clock; the rig estimates offset and drift.
 *
 * Reserved type codes (ARBSPHERE_MSG_*_RESERVED_*) are rejected by receivers.
 *
 * GENERATED from the ArbSphere layout declarations; do not edit by hand.
 * All integers little-endian; every field naturally aligned, so no packing pragma
 * is needed. Regenerate with `arbsphere headers`.
 */
#ifndef ARBSPHERE_DEVICE_H
#define ARBSPHERE_DEVICE_H

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

#define ARBSPHERE_DEVICE_MESSAGE_VERSION 1u /* header `version` of every message */
#define ARBSPHERE_PRICE_SCALE 0x5F5E100u /* fixed-point units per price unit */
#define ARBSPHERE_DEV_HEADER_SIZE 8u /* bytes of the common message header */
#define ARBSPHERE_MSG_TICK 1u /* Top-of-book quote from a feed device. (72 bytes) */
#define ARBSPHERE_MSG_ORDER 2u /* Order from the rig to a broker device. (56 bytes) */
#define ARBSPHERE_MSG_ACK 3u /* Acknowledgement or fill of an order from a broker device. (56 bytes) */
#define ARBSPHERE_MSG_HEARTBEAT 4u /* Liveness and device time from any device. (24 bytes) */
#define ARBSPHERE_MSG_ARM 5u /* Rig -> feed device: the open-loop schedule to run. (48 bytes) */
#define ARBSPHERE_MSG_ARMED 6u /* Feed device -> rig: answer to ARM arm_seq. (40 bytes) */
#define ARBSPHERE_MSG_START 7u /* Rig -> feed device: the schedule of ARM arm_seq is due now. (24 bytes) */
#define ARBSPHERE_MSG_SYNC 16u /* Rig -> device: start of a time-transfer exchange. (24 bytes) */
#define ARBSPHERE_MSG_FOLLOW_UP 17u /* Rig -> device: the precise transmit time t1 of the SYNC with the same sync_seq. (24 bytes) */
#define ARBSPHERE_MSG_DELAY_REQ 18u /* Device -> rig: answers SYNC sync_seq with its receive time t2 and its own send time t3. (32 bytes) */
#define ARBSPHERE_MSG_DELAY_RESP 19u /* Rig -> device: the rig's receive time t4 of the DELAY_REQ with the same sync_seq. (24 bytes) */
#define ARBSPHERE_MSG_SYNC_RESERVED_20 20u /* reserved */
#define ARBSPHERE_ACK_STATUS_ACK 1u /* arbsphere_ack_t.status */
#define ARBSPHERE_ACK_STATUS_FILL 2u /* arbsphere_ack_t.status */
#define ARBSPHERE_ACK_STATUS_PARTIAL 3u /* arbsphere_ack_t.status */
#define ARBSPHERE_ACK_STATUS_REJECT 4u /* arbsphere_ack_t.status */
#define ARBSPHERE_ARM_STATUS_OK 1u /* arbsphere_armed_t.status */
#define ARBSPHERE_ARM_STATUS_REFUSED 2u /* arbsphere_armed_t.status */
#define ARBSPHERE_SERIAL_MAX_PAYLOAD 0x400u /* message bytes per frame */
#define ARBSPHERE_DATAGRAM_HEADER_SIZE 24u /* UDP datagram header */
#define ARBSPHERE_DATAGRAM_SESSION_SIZE 10u /* space-padded ASCII */

typedef struct arbsphere_dev_header_t {
    uint8_t msg_type; /* offset 0 */
    uint8_t version; /* offset 1 */
    uint16_t length; /* offset 2 */
    uint32_t device_id; /* offset 4 */
} arbsphere_dev_header_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_dev_header_t) == 8, "arbsphere_dev_header_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dev_header_t, msg_type) == 0, "arbsphere_dev_header_t.msg_type offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dev_header_t, version) == 1, "arbsphere_dev_header_t.version offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dev_header_t, length) == 2, "arbsphere_dev_header_t.length offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_dev_header_t, device_id) == 4, "arbsphere_dev_header_t.device_id offset");

typedef struct arbsphere_tick_t {
    uint8_t msg_type; /* offset 0 */
    uint8_t version; /* offset 1 */
    uint16_t length; /* offset 2 */
    uint32_t device_id; /* offset 4 */
    uint16_t venue_id; /* offset 8 */
    uint16_t asset_id; /* offset 10 */
    uint32_t _pad0; /* offset 12 */
    uint64_t device_seq; /* offset 16 */
    int64_t intended_send_ns; /* offset 24 */
    int64_t send_ns; /* offset 32 */
    int64_t bid_px; /* offset 40 */
    int64_t ask_px; /* offset 48 */
    int64_t bid_size; /* offset 56 */
    int64_t ask_size; /* offset 64 */
} arbsphere_tick_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_tick_t) == 72, "arbsphere_tick_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_tick_t, msg_type) == 0, "arbsphere_tick_t.msg_type offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_tick_t, version) == 1, "arbsphere_tick_t.version offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_tick_t, length) == 2, "arbsphere_tick_t.length offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_tick_t, device_id) == 4, "arbsphere_tick_t.device_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_tick_t, venue_id) == 8, "arbsphere_tick_t.venue_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_tick_t, asset_id) == 10, "arbsphere_tick_t.asset_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_tick_t, _pad0) == 12, "arbsphere_tick_t._pad0 offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_tick_t, device_seq) == 16, "arbsphere_tick_t.device_seq offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_tick_t, intended_send_ns) == 24, "arbsphere_tick_t.intended_send_ns offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_tick_t, send_ns) == 32, "arbsphere_tick_t.send_ns offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_tick_t, bid_px) == 40, "arbsphere_tick_t.bid_px offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_tick_t, ask_px) == 48, "arbsphere_tick_t.ask_px offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_tick_t, bid_size) == 56, "arbsphere_tick_t.bid_size offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_tick_t, ask_size) == 64, "arbsphere_tick_t.ask_size offset");

typedef struct arbsphere_order_t {
    uint8_t msg_type; /* offset 0 */
    uint8_t version; /* offset 1 */
    uint16_t length; /* offset 2 */
    uint32_t device_id; /* offset 4 */
    uint16_t venue_id; /* offset 8 */
    uint16_t asset_id; /* offset 10 */
    int8_t side; /* offset 12 */
    uint8_t _pad[3]; /* offset 13 */
    uint64_t order_id; /* offset 16 */
    uint64_t delta_id; /* offset 24 */
    int64_t size_lots; /* offset 32 */
    int64_t limit_px; /* offset 40 */
    int64_t rig_send_ns; /* offset 48 */
} arbsphere_order_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_order_t) == 56, "arbsphere_order_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_order_t, msg_type) == 0, "arbsphere_order_t.msg_type offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_order_t, version) == 1, "arbsphere_order_t.version offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_order_t, length) == 2, "arbsphere_order_t.length offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_order_t, device_id) == 4, "arbsphere_order_t.device_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_order_t, venue_id) == 8, "arbsphere_order_t.venue_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_order_t, asset_id) == 10, "arbsphere_order_t.asset_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_order_t, side) == 12, "arbsphere_order_t.side offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_order_t, _pad) == 13, "arbsphere_order_t._pad offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_order_t, order_id) == 16, "arbsphere_order_t.order_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_order_t, delta_id) == 24, "arbsphere_order_t.delta_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_order_t, size_lots) == 32, "arbsphere_order_t.size_lots offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_order_t, limit_px) == 40, "arbsphere_order_t.limit_px offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_order_t, rig_send_ns) == 48, "arbsphere_order_t.rig_send_ns offset");

typedef struct arbsphere_ack_t {
    uint8_t msg_type; /* offset 0 */
    uint8_t version; /* offset 1 */
    uint16_t length; /* offset 2 */
    uint32_t device_id; /* offset 4 */
    uint8_t status; /* offset 8 */
    uint8_t _pad[7]; /* offset 9 */
    uint64_t order_id; /* offset 16 */
    int64_t filled_lots; /* offset 24 */
    int64_t fill_px; /* offset 32 */
    int64_t device_rx_ns; /* offset 40 */
    int64_t device_tx_ns; /* offset 48 */
} arbsphere_ack_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_ack_t) == 56, "arbsphere_ack_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_ack_t, msg_type) == 0, "arbsphere_ack_t.msg_type offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_ack_t, version) == 1, "arbsphere_ack_t.version offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_ack_t, length) == 2, "arbsphere_ack_t.length offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_ack_t, device_id) == 4, "arbsphere_ack_t.device_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_ack_t, status) == 8, "arbsphere_ack_t.status offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_ack_t, _pad) == 9, "arbsphere_ack_t._pad offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_ack_t, order_id) == 16, "arbsphere_ack_t.order_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_ack_t, filled_lots) == 24, "arbsphere_ack_t.filled_lots offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_ack_t, fill_px) == 32, "arbsphere_ack_t.fill_px offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_ack_t, device_rx_ns) == 40, "arbsphere_ack_t.device_rx_ns offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_ack_t, device_tx_ns) == 48, "arbsphere_ack_t.device_tx_ns offset");

typedef struct arbsphere_heartbeat_t {
    uint8_t msg_type; /* offset 0 */
    uint8_t version; /* offset 1 */
    uint16_t length; /* offset 2 */
    uint32_t device_id; /* offset 4 */
    uint64_t device_seq; /* offset 8 */
    int64_t device_time_ns; /* offset 16 */
} arbsphere_heartbeat_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_heartbeat_t) == 24, "arbsphere_heartbeat_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_heartbeat_t, msg_type) == 0, "arbsphere_heartbeat_t.msg_type offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_heartbeat_t, version) == 1, "arbsphere_heartbeat_t.version offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_heartbeat_t, length) == 2, "arbsphere_heartbeat_t.length offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_heartbeat_t, device_id) == 4, "arbsphere_heartbeat_t.device_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_heartbeat_t, device_seq) == 8, "arbsphere_heartbeat_t.device_seq offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_heartbeat_t, device_time_ns) == 16, "arbsphere_heartbeat_t.device_time_ns offset");

typedef struct arbsphere_arm_t {
    uint8_t msg_type; /* offset 0 */
    uint8_t version; /* offset 1 */
    uint16_t length; /* offset 2 */
    uint32_t device_id; /* offset 4 */
    uint64_t arm_seq; /* offset 8 */
    int64_t start_ns; /* offset 16 */
    int64_t tick_interval_ns; /* offset 24 */
    uint64_t n_ticks; /* offset 32 */
    uint16_t venue_id; /* offset 40 */
    uint16_t n_assets; /* offset 42 */
    uint32_t _pad; /* offset 44 */
} arbsphere_arm_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_arm_t) == 48, "arbsphere_arm_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_arm_t, msg_type) == 0, "arbsphere_arm_t.msg_type offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_arm_t, version) == 1, "arbsphere_arm_t.version offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_arm_t, length) == 2, "arbsphere_arm_t.length offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_arm_t, device_id) == 4, "arbsphere_arm_t.device_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_arm_t, arm_seq) == 8, "arbsphere_arm_t.arm_seq offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_arm_t, start_ns) == 16, "arbsphere_arm_t.start_ns offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_arm_t, tick_interval_ns) == 24, "arbsphere_arm_t.tick_interval_ns offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_arm_t, n_ticks) == 32, "arbsphere_arm_t.n_ticks offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_arm_t, venue_id) == 40, "arbsphere_arm_t.venue_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_arm_t, n_assets) == 42, "arbsphere_arm_t.n_assets offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_arm_t, _pad) == 44, "arbsphere_arm_t._pad offset");

typedef struct arbsphere_armed_t {
    uint8_t msg_type; /* offset 0 */
    uint8_t version; /* offset 1 */
    uint16_t length; /* offset 2 */
    uint32_t device_id; /* offset 4 */
    uint64_t arm_seq; /* offset 8 */
    uint8_t status; /* offset 16 */
    uint8_t _pad[7]; /* offset 17 */
    int64_t start_device_ns; /* offset 24 */
    int64_t device_time_ns; /* offset 32 */
} arbsphere_armed_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_armed_t) == 40, "arbsphere_armed_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_armed_t, msg_type) == 0, "arbsphere_armed_t.msg_type offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_armed_t, version) == 1, "arbsphere_armed_t.version offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_armed_t, length) == 2, "arbsphere_armed_t.length offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_armed_t, device_id) == 4, "arbsphere_armed_t.device_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_armed_t, arm_seq) == 8, "arbsphere_armed_t.arm_seq offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_armed_t, status) == 16, "arbsphere_armed_t.status offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_armed_t, _pad) == 17, "arbsphere_armed_t._pad offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_armed_t, start_device_ns) == 24, "arbsphere_armed_t.start_device_ns offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_armed_t, device_time_ns) == 32, "arbsphere_armed_t.device_time_ns offset");

typedef struct arbsphere_start_t {
    uint8_t msg_type; /* offset 0 */
    uint8_t version; /* offset 1 */
    uint16_t length; /* offset 2 */
    uint32_t device_id; /* offset 4 */
    uint64_t arm_seq; /* offset 8 */
    int64_t start_ns; /* offset 16 */
} arbsphere_start_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_start_t) == 24, "arbsphere_start_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_start_t, msg_type) == 0, "arbsphere_start_t.msg_type offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_start_t, version) == 1, "arbsphere_start_t.version offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_start_t, length) == 2, "arbsphere_start_t.length offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_start_t, device_id) == 4, "arbsphere_start_t.device_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_start_t, arm_seq) == 8, "arbsphere_start_t.arm_seq offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_start_t, start_ns) == 16, "arbsphere_start_t.start_ns offset");

typedef struct arbsphere_sync_t {
    uint8_t msg_type; /* offset 0 */
    uint8_t version; /* offset 1 */
    uint16_t length; /* offset 2 */
    uint32_t device_id; /* offset 4 */
    uint64_t sync_seq; /* offset 8 */
    int64_t origin_ns; /* offset 16 */
} arbsphere_sync_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_sync_t) == 24, "arbsphere_sync_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_sync_t, msg_type) == 0, "arbsphere_sync_t.msg_type offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_sync_t, version) == 1, "arbsphere_sync_t.version offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_sync_t, length) == 2, "arbsphere_sync_t.length offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_sync_t, device_id) == 4, "arbsphere_sync_t.device_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_sync_t, sync_seq) == 8, "arbsphere_sync_t.sync_seq offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_sync_t, origin_ns) == 16, "arbsphere_sync_t.origin_ns offset");

typedef struct arbsphere_follow_up_t {
    uint8_t msg_type; /* offset 0 */
    uint8_t version; /* offset 1 */
    uint16_t length; /* offset 2 */
    uint32_t device_id; /* offset 4 */
    uint64_t sync_seq; /* offset 8 */
    int64_t t1_ns; /* offset 16 */
} arbsphere_follow_up_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_follow_up_t) == 24, "arbsphere_follow_up_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_follow_up_t, msg_type) == 0, "arbsphere_follow_up_t.msg_type offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_follow_up_t, version) == 1, "arbsphere_follow_up_t.version offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_follow_up_t, length) == 2, "arbsphere_follow_up_t.length offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_follow_up_t, device_id) == 4, "arbsphere_follow_up_t.device_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_follow_up_t, sync_seq) == 8, "arbsphere_follow_up_t.sync_seq offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_follow_up_t, t1_ns) == 16, "arbsphere_follow_up_t.t1_ns offset");

typedef struct arbsphere_delay_req_t {
    uint8_t msg_type; /* offset 0 */
    uint8_t version; /* offset 1 */
    uint16_t length; /* offset 2 */
    uint32_t device_id; /* offset 4 */
    uint64_t sync_seq; /* offset 8 */
    int64_t t2_ns; /* offset 16 */
    int64_t t3_ns; /* offset 24 */
} arbsphere_delay_req_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_delay_req_t) == 32, "arbsphere_delay_req_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_delay_req_t, msg_type) == 0, "arbsphere_delay_req_t.msg_type offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_delay_req_t, version) == 1, "arbsphere_delay_req_t.version offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_delay_req_t, length) == 2, "arbsphere_delay_req_t.length offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_delay_req_t, device_id) == 4, "arbsphere_delay_req_t.device_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_delay_req_t, sync_seq) == 8, "arbsphere_delay_req_t.sync_seq offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_delay_req_t, t2_ns) == 16, "arbsphere_delay_req_t.t2_ns offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_delay_req_t, t3_ns) == 24, "arbsphere_delay_req_t.t3_ns offset");

typedef struct arbsphere_delay_resp_t {
    uint8_t msg_type; /* offset 0 */
    uint8_t version; /* offset 1 */
    uint16_t length; /* offset 2 */
    uint32_t device_id; /* offset 4 */
    uint64_t sync_seq; /* offset 8 */
    int64_t t4_ns; /* offset 16 */
} arbsphere_delay_resp_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_delay_resp_t) == 24, "arbsphere_delay_resp_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_delay_resp_t, msg_type) == 0, "arbsphere_delay_resp_t.msg_type offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_delay_resp_t, version) == 1, "arbsphere_delay_resp_t.version offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_delay_resp_t, length) == 2, "arbsphere_delay_resp_t.length offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_delay_resp_t, device_id) == 4, "arbsphere_delay_resp_t.device_id offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_delay_resp_t, sync_seq) == 8, "arbsphere_delay_resp_t.sync_seq offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_delay_resp_t, t4_ns) == 16, "arbsphere_delay_resp_t.t4_ns offset");

typedef struct arbsphere_datagram_header_t {
    uint8_t session[10]; /* offset 0 */
    uint16_t count; /* offset 10 */
    uint32_t _pad; /* offset 12 */
    uint64_t sequence; /* offset 16 */
} arbsphere_datagram_header_t;
ARBSPHERE_STATIC_ASSERT(sizeof(arbsphere_datagram_header_t) == 24, "arbsphere_datagram_header_t size");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_datagram_header_t, session) == 0, "arbsphere_datagram_header_t.session offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_datagram_header_t, count) == 10, "arbsphere_datagram_header_t.count offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_datagram_header_t, _pad) == 12, "arbsphere_datagram_header_t._pad offset");
ARBSPHERE_STATIC_ASSERT(offsetof(arbsphere_datagram_header_t, sequence) == 16, "arbsphere_datagram_header_t.sequence offset");

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* ARBSPHERE_DEVICE_H */
