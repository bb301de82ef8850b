// Minimal test harness for the SDK's C++ tests: CHECK / CHECK_EQ count failures and print
// where; hex helpers; the vector directories come from the command line (see CMakeLists.txt).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace check {

inline int failures = 0;
inline int checks = 0;

inline void report(bool ok, const char* expr, const char* file, int line, const std::string& what) {
    ++checks;
    if (ok) return;
    ++failures;
    std::fprintf(stderr, "%s:%d: CHECK failed: %s %s\n", file, line, expr, what.c_str());
}

inline int finish(const char* name) {
    std::printf("%s: %d checks, %d failed\n", name, checks, failures);
    return failures == 0 && checks > 0 ? 0 : 1;
}

inline std::vector<std::uint8_t> from_hex(const std::string& hex) {
    std::vector<std::uint8_t> out(hex.size() / 2);
    for (std::size_t i = 0; i < out.size(); ++i) {
        out[i] = static_cast<std::uint8_t>(std::stoul(hex.substr(2 * i, 2), nullptr, 16));
    }
    return out;
}

inline std::string to_hex(const std::uint8_t* p, std::size_t n) {
    static const char* digits = "0123456789abcdef";
    std::string s;
    for (std::size_t i = 0; i < n; ++i) {
        s += digits[p[i] >> 4];
        s += digits[p[i] & 15];
    }
    return s;
}

}  // namespace check

#define CHECK(cond, what) ::check::report(static_cast<bool>(cond), #cond, __FILE__, __LINE__, (what))
#define CHECK_EQ(a, b, what)                                                                  \
    do {                                                                                      \
        const auto check_a_ = (a);                                                            \
        const auto check_b_ = (b);                                                            \
        ::check::report(check_a_ == check_b_, #a " == " #b, __FILE__, __LINE__,              \
                        std::string(what) + " (" + std::to_string(check_a_) + " vs " +        \
                            std::to_string(check_b_) + ")");                                  \
    } while (0)
