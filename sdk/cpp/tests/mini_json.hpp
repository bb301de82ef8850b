// A tiny JSON reader for the test vectors (objects, arrays, strings without escapes beyond
// \" \\ \/ \n, integers, true/false/null). Numbers keep their text so 64-bit values (signed or
// unsigned) convert exactly. Test code only: a parse error aborts with the offset.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace mini_json {

struct Value {
    enum class Kind { null, boolean, number, string, array, object } kind = Kind::null;
    std::string text;  // number text or string contents
    bool flag = false;
    std::vector<Value> items;
    std::map<std::string, Value> members;

    const Value& operator[](const std::string& key) const {
        const auto it = members.find(key);
        if (it == members.end()) {
            std::fprintf(stderr, "json: no key %s\n", key.c_str());
            std::abort();
        }
        return it->second;
    }
    bool has(const std::string& key) const { return members.count(key) != 0; }
    long long i64() const { return std::strtoll(text.c_str(), nullptr, 10); }
    unsigned long long u64() const { return std::strtoull(text.c_str(), nullptr, 10); }
    unsigned long long hex() const { return std::strtoull(text.c_str(), nullptr, 16); }
};

class Parser {
public:
    explicit Parser(std::string s) : s_(std::move(s)) {}
    Value parse() {
        Value v = value();
        ws();
        if (i_ != s_.size()) die("trailing text");
        return v;
    }

private:
    [[noreturn]] void die(const char* what) const {
        std::fprintf(stderr, "json: %s at offset %zu\n", what, i_);
        std::abort();
    }
    void ws() {
        while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t')) ++i_;
    }
    char peek() {
        ws();
        if (i_ >= s_.size()) die("unexpected end");
        return s_[i_];
    }
    void expect(char c) {
        if (peek() != c) die("unexpected character");
        ++i_;
    }
    std::string str() {
        expect('"');
        std::string out;
        while (i_ < s_.size() && s_[i_] != '"') {
            if (s_[i_] == '\\') {
                ++i_;
                if (i_ >= s_.size()) die("bad escape");
                out += s_[i_] == 'n' ? '\n' : s_[i_];
            } else {
                out += s_[i_];
            }
            ++i_;
        }
        expect('"');
        return out;
    }
    Value value() {
        Value v;
        const char c = peek();
        if (c == '{') {
            v.kind = Value::Kind::object;
            ++i_;
            if (peek() == '}') { ++i_; return v; }
            for (;;) {
                std::string key = str();
                expect(':');
                v.members[key] = value();
                if (peek() == ',') { ++i_; continue; }
                expect('}');
                return v;
            }
        }
        if (c == '[') {
            v.kind = Value::Kind::array;
            ++i_;
            if (peek() == ']') { ++i_; return v; }
            for (;;) {
                v.items.push_back(value());
                if (peek() == ',') { ++i_; continue; }
                expect(']');
                return v;
            }
        }
        if (c == '"') {
            v.kind = Value::Kind::string;
            v.text = str();
            return v;
        }
        if (s_.compare(i_, 4, "true") == 0) { i_ += 4; v.kind = Value::Kind::boolean; v.flag = true; return v; }
        if (s_.compare(i_, 5, "false") == 0) { i_ += 5; v.kind = Value::Kind::boolean; return v; }
        if (s_.compare(i_, 4, "null") == 0) { i_ += 4; return v; }
        v.kind = Value::Kind::number;
        const std::size_t start = i_;
        while (i_ < s_.size() && (s_[i_] == '-' || (s_[i_] >= '0' && s_[i_] <= '9'))) ++i_;
        if (i_ == start) die("unexpected character");
        v.text = s_.substr(start, i_ - start);
        return v;
    }

    std::string s_;
    std::size_t i_ = 0;
};

inline Value load(const std::string& path) {
    std::ifstream f(path);
    if (!f) {
        std::fprintf(stderr, "json: cannot open %s\n", path.c_str());
        std::abort();
    }
    std::stringstream ss;
    ss << f.rdbuf();
    return Parser(ss.str()).parse();
}

}  // namespace mini_json
