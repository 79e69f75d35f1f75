import SpecolaWire

/// Lets a config section refuse fields it does not know, so a typo is an error
/// rather than a silently ignored setting.
public struct AnyConfigKey: CodingKey {
    public var stringValue: String
    public var intValue: Int? { nil }
    public init(stringValue: String) { self.stringValue = stringValue }
    public init?(intValue: Int) { nil }
}

extension Decoder {
    public func rejectUnknownKeys<Keys: CodingKey & CaseIterable>(_ keys: Keys.Type) throws {
        let known = Set(Keys.allCases.map(\.stringValue))
        let container = try self.container(keyedBy: AnyConfigKey.self)
        for key in container.allKeys where !known.contains(key.stringValue) {
            let allowed = known.sorted().joined(separator: ", ")
            throw DecodingError.dataCorrupted(.init(
                codingPath: codingPath + [key],
                debugDescription: "unknown field; allowed here: \(allowed)"))
        }
    }
}

extension KeyedDecodingContainer {
    public func decodeEndpoint(_ key: Key, defaultPort: Int) throws -> HostPort {
        let text = try decode(String.self, forKey: key)
        guard let endpoint = HostPort(parsing: text, defaultPort: defaultPort) else {
            throw DecodingError.dataCorruptedError(
                forKey: key, in: self, debugDescription: "'\(text)' is not an address; write HOST:PORT, e.g. 127.0.0.1:\(defaultPort)")
        }
        return endpoint
    }

    public func decodePositiveSeconds(_ key: Key, default value: Double) throws -> Double {
        guard let seconds = try decodeIfPresent(Double.self, forKey: key) else { return value }
        guard seconds > 0, seconds.isFinite else {
            throw DecodingError.dataCorruptedError(forKey: key, in: self, debugDescription: "must be a positive number of seconds")
        }
        return seconds
    }
}
