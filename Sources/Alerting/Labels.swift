/// Label names and values of an alert, as in Prometheus: `["node": "n3"]`.
public typealias Labels = [String: String]

/// Selects alerts by one label, Alertmanager-style: `node="n3"`, `alertname=~"Job.*"`.
/// A label the alert does not have counts as the empty string.
public struct LabelMatcher: Sendable, Hashable, Codable, CustomStringConvertible {
    /// How the label's value is compared.
    public enum Operation: String, Sendable, Hashable, Codable, CaseIterable {
        case equal = "="
        case notEqual = "!="
        /// The whole value matches the regular expression.
        case matchesRegex = "=~"
        case notMatchesRegex = "!~"
    }

    public var name: String
    public var operation: Operation
    public var value: String

    public init(_ name: String, _ operation: Operation = .equal, _ value: String) {
        self.name = name
        self.operation = operation
        self.value = value
    }

    /// Parses `name=value`, `name!="value"`, `name=~regex` (the CLI's and config's form).
    public init(parsing text: String) throws(AlertingError) {
        // The operator starts at the first `=` or `!`; label names contain neither.
        if let start = text.firstIndex(where: { $0 == "=" || $0 == "!" }) {
            let rest = text[start...]
            let operation = Operation.allCases.sorted { $0.rawValue.count > $1.rawValue.count }
                .first { rest.hasPrefix($0.rawValue) }
            let name = text[..<start].trimmingWhitespace()
            if let operation, !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) {
                var value = rest.dropFirst(operation.rawValue.count).trimmingWhitespace()
                if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
                self.init(name, operation, value)
                try validate()
                return
            }
        }
        throw AlertingError(.invalidMatcher, "'\(text)' is not a label matcher; write e.g. node=\"n3\" or alertname=~\"Job.*\"")
    }

    /// Rejects a regular expression that does not compile, so a bad silence never reaches the replicated log.
    public func validate() throws(AlertingError) {
        guard operation == .matchesRegex || operation == .notMatchesRegex else { return }
        do { _ = try Regex(value) } catch {
            throw AlertingError(.invalidMatcher, "matcher \(self): '\(value)' is not a valid regular expression")
        }
    }

    public func matches(_ labels: Labels) -> Bool {
        let actual = labels[name] ?? ""
        switch operation {
        case .equal: return actual == value
        case .notEqual: return actual != value
        case .matchesRegex: return Self.wholeMatch(actual, value)
        case .notMatchesRegex: return !Self.wholeMatch(actual, value)
        }
    }

    /// An invalid pattern matches nothing (validation keeps such matchers out of the book).
    private static func wholeMatch(_ text: String, _ pattern: String) -> Bool {
        guard let regex = try? Regex(pattern) else { return false }
        return text.wholeMatch(of: regex) != nil
    }

    public var description: String { "\(name)\(operation.rawValue)\"\(value)\"" }
}

extension [LabelMatcher] {
    /// True when every matcher matches (an empty list matches everything).
    public func matchAll(_ labels: Labels) -> Bool { allSatisfy { $0.matches(labels) } }
}

/// Renders labels in a stable order: `{alertname="NodeDown",node="n3"}`.
func renderLabels(_ labels: Labels) -> String {
    "{" + labels.sorted { $0.key < $1.key }.map { "\($0.key)=\"\($0.value)\"" }.joined(separator: ",") + "}"
}

extension Substring {
    func trimmingWhitespace() -> String {
        String(drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }
}

/// FNV-1a over UTF-8 bytes: the same value on every platform, process and run, which a
/// fingerprint that a new leader must recompute needs (Swift's `Hasher` is seeded per process).
struct StableHash {
    private static let prime: UInt64 = 0x100_0000_01b3
    private(set) var value: UInt64

    init(seed: UInt64 = 0xcbf2_9ce4_8422_2325) { value = seed }

    /// Adds `text` and a separator byte that UTF-8 text never contains, so ("ab","c") ≠ ("a","bc").
    mutating func add(_ text: String) {
        for byte in text.utf8 { mix(byte) }
        mix(0xff)
    }

    private mutating func mix(_ byte: UInt8) {
        value ^= UInt64(byte)
        value &*= Self.prime
    }

    var hex: String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    /// 32 hex digits from two differently seeded hashes, for keys that must not collide over years.
    static func wideHex(_ parts: [String]) -> String {
        var first = StableHash()
        var second = StableHash(seed: 0x6c62_272e_07bb_0142)
        for part in parts {
            first.add(part)
            second.add(part)
        }
        return first.hex + second.hex
    }
}
