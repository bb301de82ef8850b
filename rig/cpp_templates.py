"""The fixed C++ decode/encode templates the generated SDK headers end with (:mod:`.cpp_headers`).

They are the same for every declaration, so they are text here rather than rendered: device
messages check type, version, length and buffer size exactly like
``firmware_interfaces.messages.decode`` (same problem tags and offsets); contract messages check
magic, schema id, version, ``payload_len`` and the count field like
``SchemaRegistry.decode``.
"""

from __future__ import annotations

DEVICE_CODECS = """\
// Validate the message header at `offset` like the rig's decoder: short, unknown_type,
// reserved_type, bad_version, bad_length; offsets are absolute within `buf`.
inline Status check_message(Bytes buf, std::size_t offset) noexcept {
    if (offset > buf.size || buf.size - offset < kHeaderSize) {
        return fail(Problem::short_buffer, buf.size);
    }
    const Header h(buf.data + offset);
    const std::size_t size = message_size(h.msg_type());
    if (size == 0) {
        return fail(is_reserved_type(h.msg_type()) ? Problem::reserved_type
                                                   : Problem::unknown_type,
                    offset + Header::Offset::msg_type);
    }
    if (h.version() != kMessageVersion) {
        return fail(Problem::bad_version, offset + Header::Offset::version);
    }
    if (h.length() != size) return fail(Problem::bad_length, offset + Header::Offset::length);
    if (buf.size - offset < size) return fail(Problem::short_buffer, buf.size);
    return Status{};
}

// The message at `offset` as a View (Tick, Order, ...); unexpected_type if it is valid but of
// another type. `*out` is only written on success.
template <class View> Status decode(Bytes buf, std::size_t offset, View* out) noexcept {
    const Status st = check_message(buf, offset);
    if (!st.ok()) return st;
    if (buf.data[offset + Header::Offset::msg_type] != static_cast<std::uint8_t>(View::kType)) {
        return fail(Problem::unexpected_type, offset + Header::Offset::msg_type);
    }
    *out = View(buf.data + offset);
    return st;
}

// Start a message of the Writer's type at `offset`: zero it, write the header (type, version,
// length, device_id) and point `*w` at it; no_space if it does not fit.
template <class Writer>
Status encode(MutBytes out, std::size_t offset, std::uint32_t device_id, Writer* w) noexcept {
    if (offset > out.size || out.size - offset < Writer::kSize) {
        return fail(Problem::no_space, out.size);
    }
    std::memset(out.data + offset, 0, Writer::kSize);
    HeaderWriter(out.data + offset)
        .set_msg_type(static_cast<std::uint8_t>(Writer::kType))
        .set_version(kMessageVersion)
        .set_length(static_cast<std::uint16_t>(Writer::kSize))
        .set_device_id(device_id);
    *w = Writer(out.data + offset);
    return Status{};
}
"""

CONTRACT_CODECS = """\
// Bytes of a message of schema S with `count` items.
template <class S> constexpr std::size_t message_size(std::size_t count) noexcept {
    return Envelope::kSize + S::kHeaderSize + count * S::kItemSize;
}

// A decoded message of schema S: views into the buffer it was decoded from.
template <class S> struct Message {
    Envelope envelope;
    typename S::Header header;
    const std::uint8_t* items = nullptr;
    std::size_t count = 0;
    typename S::Item item(std::size_t i) const noexcept {
        return typename S::Item(items + i * S::kItemSize);
    }
};

// Decode `buf` (exactly one message) as schema S, checking like the rig's registry: short,
// bad_magic, unknown_schema, unexpected_schema (another declared schema), bad_version,
// bad_length (payload_len, or the count field, disagrees with the bytes).
template <class S> Status decode(Bytes buf, Message<S>* out) noexcept {
    if (buf.size < Envelope::kSize) return fail(Problem::short_buffer, buf.size);
    const Envelope env(buf.data);
    if (env.magic() != kMagic) return fail(Problem::bad_magic, Envelope::Offset::magic);
    if (!is_known_schema(env.schema_id())) {
        return fail(Problem::unknown_schema, Envelope::Offset::schema_id);
    }
    if (env.schema_id() != S::kSchemaId) {
        return fail(Problem::unexpected_schema, Envelope::Offset::schema_id);
    }
    if (env.schema_version() != S::kVersion) {
        return fail(Problem::bad_version, Envelope::Offset::schema_version);
    }
    const std::size_t available = buf.size - Envelope::kSize;
    if (env.payload_len() != available || available < S::kHeaderSize) {
        return fail(Problem::bad_length, Envelope::Offset::payload_len);
    }
    const typename S::Header header(buf.data + Envelope::kSize);
    const std::size_t count = S::count(header);
    if (S::kHeaderSize + count * S::kItemSize != available) {
        const std::size_t at = S::kItemSize ? Envelope::kSize + S::kCountOffset
                                            : Envelope::Offset::payload_len;
        return fail(Problem::bad_length, at);
    }
    out->envelope = env;
    out->header = header;
    out->items = buf.data + Envelope::kSize + S::kHeaderSize;
    out->count = count;
    return Status{};
}

// A message of schema S being written: set the header and items, then send `size` bytes.
template <class S> struct MessageWriter {
    EnvelopeWriter envelope;
    typename S::HeaderWriter header;
    std::uint8_t* items = nullptr;
    std::size_t count = 0;
    std::size_t size = 0;
    typename S::ItemWriter item(std::size_t i) const noexcept {
        return typename S::ItemWriter(items + i * S::kItemSize);
    }
};

// Start a message of schema S with `count` items at the start of `out`: zero it, write the
// envelope and the header's count field. no_space if it does not fit, bad_length if `count`
// exceeds the count field (or S has no items and count > 0).
template <class S>
Status encode(MutBytes out, std::uint32_t sender_id, std::uint64_t nonce,
              std::int64_t origin_ts_ns, std::size_t count, MessageWriter<S>* w) noexcept {
    if (count > S::kMaxCount) return fail(Problem::bad_length, Envelope::kSize + S::kCountOffset);
    const std::size_t size = message_size<S>(count);
    if (out.size < size) return fail(Problem::no_space, out.size);
    std::memset(out.data, 0, size);
    EnvelopeWriter env(out.data);
    env.set_magic(kMagic)
        .set_schema_id(S::kSchemaId)
        .set_schema_version(S::kVersion)
        .set_sender_id(sender_id)
        .set_payload_len(static_cast<std::uint32_t>(size - Envelope::kSize))
        .set_nonce(nonce)
        .set_origin_ts_ns(origin_ts_ns);
    typename S::HeaderWriter header(out.data + Envelope::kSize);
    S::set_count(header, count);
    w->envelope = env;
    w->header = header;
    w->items = out.data + Envelope::kSize + S::kHeaderSize;
    w->count = count;
    w->size = size;
    return Status{};
}
"""
