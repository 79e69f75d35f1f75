import SpecolaProtocol

/// `/etc/specola/coordinator.yaml`. `packaging/coordinator.yaml` documents every field.
public struct CoordinatorConfig: Decodable, Sendable {
    public var name: String
    public var listen: HostPort
    public var metricsListen: HostPort
    public var dataDir: String
    public var tls: TLSFiles
    public var heartbeatInterval: Double
    public var suspectAfter: Double
    public var downAfter: Double
    public var logLevel: String

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, listen, metricsListen, dataDir, tls, heartbeatInterval, suspectAfter, downAfter, logLevel
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        listen = try c.decodeEndpoint(.listen, defaultPort: 7450)
        metricsListen = try c.decodeIfPresent(String.self, forKey: .metricsListen) == nil
            ? HostPort(host: "127.0.0.1", port: 9450) : try c.decodeEndpoint(.metricsListen, defaultPort: 9450)
        dataDir = try c.decodeIfPresent(String.self, forKey: .dataDir) ?? "/var/lib/specola/coordinator"
        tls = try c.decode(TLSFiles.self, forKey: .tls)
        heartbeatInterval = try c.decodePositiveSeconds(.heartbeatInterval, default: 1)
        suspectAfter = try c.decodePositiveSeconds(.suspectAfter, default: 3)
        downAfter = try c.decodePositiveSeconds(.downAfter, default: 10)
        logLevel = try c.decodeIfPresent(String.self, forKey: .logLevel) ?? "info"
        if downAfter <= suspectAfter {
            throw DecodingError.dataCorruptedError(
                forKey: .downAfter, in: c, debugDescription: "must be greater than suspectAfter (\(suspectAfter))")
        }
    }
}

