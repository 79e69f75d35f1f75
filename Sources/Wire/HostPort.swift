/// A `host:port` address, as written in configs, flags and `SPECOLA_ADDR`.
public struct HostPort: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port`, `[v6]:port`, or a bare host with `defaultPort`.
    public init?(parsing text: String, defaultPort: Int? = nil) {
        var rest = Substring(text)
        for scheme in ["https://", "http://", "grpcs://"] where rest.hasPrefix(scheme) {
            rest = rest.dropFirst(scheme.count)
        }
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { return nil }
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            let after = rest[rest.index(after: close)...]
            if after.isEmpty, let defaultPort { port = defaultPort; return }
            guard after.hasPrefix(":"), let value = Int(after.dropFirst()) else { return nil }
            port = value
        } else if let colon = rest.lastIndex(of: ":") {
            host = String(rest[..<colon])
            guard let value = Int(rest[rest.index(after: colon)...]) else { return nil }
            port = value
        } else {
            guard let defaultPort, !rest.isEmpty else { return nil }
            host = String(rest)
            port = defaultPort
        }
        guard !host.isEmpty, (1...65535).contains(port) else { return nil }
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
