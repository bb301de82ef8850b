// What the example devices need from the host, kept apart from the protocol: the device's own
// clock, a stop flag for SIGTERM/SIGINT, command-line options, and the two transports a feed
// or broker speaks (UDP datagrams with the SDK's header, or COBS/CRC-32C frames on a serial
// port) behind one small Link interface. POSIX only; errors end the process with a message.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "arbsphere/datagram.hpp"
#include "arbsphere/serial_frame.hpp"

namespace example {

using arbsphere::Bytes;
using Message = std::vector<std::uint8_t>;
using OnMessage = std::function<void(Bytes message, std::int64_t rx_device_ns)>;

[[noreturn]] inline void die(const std::string& what) {
    std::fprintf(stderr, "error: %s: %s\n", what.c_str(), std::strerror(errno));
    std::exit(1);
}

// The device clock: CLOCK_REALTIME plus a fixed offset (a firmware reads its own oscillator;
// the rig learns the offset from the clock-sync exchange, the device never steps).
struct DeviceClock {
    std::int64_t offset_ns = 0;
    std::int64_t now() const {
        timespec ts{};
        clock_gettime(CLOCK_REALTIME, &ts);
        return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec + offset_ns;
    }
};

inline volatile sig_atomic_t g_stop = 0;
inline void install_stop_handlers() {
    struct sigaction sa{};
    sa.sa_handler = [](int) { g_stop = 1; };
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
}

// --key value options; get() with a default, or required when the default is null.
struct Options {
    std::map<std::string, std::string> values;
    Options(int argc, char** argv) {
        for (int i = 1; i + 1 < argc; i += 2) values[argv[i]] = argv[i + 1];
    }
    std::string get(const std::string& key, const char* fallback = nullptr) const {
        const auto it = values.find(key);
        if (it != values.end()) return it->second;
        if (fallback == nullptr) {
            std::fprintf(stderr, "error: missing option %s\n", key.c_str());
            std::exit(2);
        }
        return fallback;
    }
    std::int64_t num(const std::string& key, const char* fallback = nullptr) const {
        return std::stoll(get(key, fallback));
    }
};

// One transport. receive() hands every whole message that arrived to on_message; send()
// writes messages as one unit (a datagram, or one frame each).
class Link {
public:
    virtual ~Link() = default;
    virtual int fd() const = 0;
    virtual int port() const { return 0; }  // a UDP link's bound port
    virtual void receive(const DeviceClock& clock, const OnMessage& on_message) = 0;
    virtual void send(const std::vector<Message>& messages) = 0;
};

inline sockaddr_in address(const std::string& host, int port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    if (inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) die("bad IPv4 address " + host);
    return a;
}

// UDP: every message sent takes the next device sequence (the datagram header carries the
// first one's). Sends go to `peer`: fixed for a feed, the last sender for a broker.
class UdpLink : public Link {
public:
    UdpLink(const std::string& bind_host, int bind_port, std::string session)
        : session_(std::move(session)) {
        fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        if (fd_ < 0) die("socket");
        const sockaddr_in a = address(bind_host, bind_port);
        if (bind(fd_, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) die("bind");
    }
    ~UdpLink() override { close(fd_); }
    int fd() const override { return fd_; }
    int port() const override {
        sockaddr_in a{};
        socklen_t n = sizeof a;
        getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &n);
        return ntohs(a.sin_port);
    }
    void set_peer(const sockaddr_in& peer) { peer_ = peer; have_peer_ = true; }

    void receive(const DeviceClock& clock, const OnMessage& on_message) override {
        std::uint8_t buf[65536];
        for (;;) {
            sockaddr_in from{};
            socklen_t n = sizeof from;
            const ssize_t got = recvfrom(fd_, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &n);
            if (got < 0) return;  // EAGAIN: all read
            const std::int64_t rx = clock.now();
            if (!reply_to_fixed_) set_peer(from);
            arbsphere::device::DatagramHeader h;
            arbsphere::unpack_datagram(Bytes{buf, static_cast<std::size_t>(got)}, &h,
                                       [&](Bytes m) { on_message(m, rx); });
        }
    }

    void send(const std::vector<Message>& messages) override {
        if (!have_peer_) return;
        Message dgram(arbsphere::device::kDatagramHeaderSize);
        arbsphere::write_datagram_header(arbsphere::MutBytes{dgram.data(), dgram.size()}, session_,
                                         static_cast<std::uint16_t>(messages.size()), sequence_);
        for (const Message& m : messages) dgram.insert(dgram.end(), m.begin(), m.end());
        sequence_ += messages.size();
        sendto(fd_, dgram.data(), dgram.size(), 0, reinterpret_cast<const sockaddr*>(&peer_), sizeof peer_);
    }

    bool reply_to_fixed_ = false;  // a feed sends to its configured target only

private:
    int fd_ = -1;
    std::string session_;
    std::uint64_t sequence_ = 1;
    sockaddr_in peer_{};
    bool have_peer_ = false;
};

// Serial: one COBS/CRC-32C frame per message. `fd` is an open port (raw mode is set here).
class SerialLink : public Link {
public:
    explicit SerialLink(int fd) : fd_(fd) {
        termios t{};
        if (tcgetattr(fd_, &t) == 0) {
            cfmakeraw(&t);
            tcsetattr(fd_, TCSANOW, &t);
        }
        fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
    }
    int fd() const override { return fd_; }

    void receive(const DeviceClock& clock, const OnMessage& on_message) override {
        std::uint8_t buf[4096];
        for (;;) {
            const ssize_t got = read(fd_, buf, sizeof buf);
            if (got <= 0) return;
            const std::int64_t rx = clock.now();
            decoder_.feed(Bytes{buf, static_cast<std::size_t>(got)}, [&](Bytes m) { on_message(m, rx); });
        }
    }

    void send(const std::vector<Message>& messages) override {
        std::uint8_t frame[arbsphere::kMaxEncodedFrame + 1];
        for (const Message& m : messages) {
            std::size_t n = 0;
            if (!arbsphere::encode_frame(Bytes{m.data(), m.size()}, arbsphere::MutBytes{frame, sizeof frame}, &n).ok()) continue;
            for (std::size_t off = 0; off < n;) {  // a full pty/UART buffer: wait for room
                const ssize_t w = write(fd_, frame + off, n - off);
                if (w > 0) off += static_cast<std::size_t>(w);
                else if (errno != EAGAIN || g_stop) return;
                else { pollfd p{fd_, POLLOUT, 0}; poll(&p, 1, 10); }
            }
        }
    }

private:
    int fd_;
    arbsphere::FrameDecoder decoder_;
};

// Wait until `fd` is readable or `until_device_ns` on the device clock (whichever first).
inline void wait_readable(int fd, const DeviceClock& clock, std::int64_t until_device_ns) {
    const std::int64_t wait = until_device_ns - clock.now();
    timespec ts{};
    if (wait > 0) {
        ts.tv_sec = static_cast<time_t>(wait / 1'000'000'000);
        ts.tv_nsec = static_cast<long>(wait % 1'000'000'000);
    }
    pollfd p{fd, POLLIN, 0};
    ppoll(&p, 1, &ts, nullptr);
}

// The link the options name: --serial-fd FD (inherited) or --serial-port PATH; else UDP bound
// to --bind-host/--bind-port, sending to --udp-target HOST:PORT when given (a feed), else
// answering whoever sent last (a broker).
inline std::unique_ptr<Link> open_link(const Options& o, const char* session) {
    if (o.values.count("--serial-fd")) {
        return std::make_unique<SerialLink>(static_cast<int>(o.num("--serial-fd")));
    }
    if (o.values.count("--serial-port")) {
        const int fd = open(o.get("--serial-port").c_str(), O_RDWR | O_NOCTTY);
        if (fd < 0) die("open " + o.get("--serial-port"));
        return std::make_unique<SerialLink>(fd);
    }
    auto udp = std::make_unique<UdpLink>(o.get("--bind-host", "0.0.0.0"),
                                         static_cast<int>(o.num("--bind-port", "0")),
                                         o.get("--session", session));
    if (o.values.count("--udp-target")) {
        const std::string target = o.get("--udp-target");
        const auto colon = target.rfind(':');
        udp->set_peer(address(target.substr(0, colon), std::stoi(target.substr(colon + 1))));
        udp->reply_to_fixed_ = true;
    }
    return udp;
}

// --ready-path FILE: {"port": N} (0 on a serial link) once the link is open.
inline void write_ready(const Options& o, const Link& link) {
    if (!o.values.count("--ready-path")) return;
    FILE* f = std::fopen(o.get("--ready-path").c_str(), "w");
    if (f == nullptr) die("open " + o.get("--ready-path"));
    std::fprintf(f, "{\"port\": %d}\n", link.port());
    std::fclose(f);
}

}  // namespace example
