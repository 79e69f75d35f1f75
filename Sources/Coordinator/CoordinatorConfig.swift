import SpecolaProtocol

/// `/etc/specola/coordinator.yaml`. `packaging/coordinator.yaml` documents every field.
public struct CoordinatorConfig: Decodable, Sendable {
    public var name: String
    public var id: UInt64
    public var listen: HostPort
    public var metricsListen: HostPort
    public var dataDir: String
    public var tls: TLSFiles
    /// The initial voters, this replica included. Empty means a group of one.
    public var peers: [Specola_V1_Member]
    /// Start empty and wait to be added with `specola members add` instead of bootstrapping.
    public var join: Bool
    public var raft: RaftTuning
    public var heartbeatInterval: Double
    public var suspectAfter: Double
    public var downAfter: Double
    public var logLevel: String
    /// Receivers, routes, inhibition and threshold rules; without it alerts are kept but not sent.
    public var alerting: AlertingConfig

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, id, listen, metricsListen, dataDir, tls, peers, join, raft, heartbeatInterval, suspectAfter, downAfter, logLevel
        case alerting
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        id = try c.decodeIfPresent(UInt64.self, forKey: .id) ?? 1
        if id == 0 { throw DecodingError.dataCorruptedError(forKey: .id, in: c, debugDescription: "must be a positive number, unique in the group") }
        listen = try c.decodeEndpoint(.listen, defaultPort: 7450)
        metricsListen = try c.decodeIfPresent(String.self, forKey: .metricsListen) == nil
            ? HostPort(host: "127.0.0.1", port: 9450) : try c.decodeEndpoint(.metricsListen, defaultPort: 9450)
        dataDir = try c.decodeIfPresent(String.self, forKey: .dataDir) ?? "/var/lib/specola/coordinator"
        tls = try c.decode(TLSFiles.self, forKey: .tls)
        peers = try (c.decodeIfPresent([PeerEntry].self, forKey: .peers) ?? []).map(\.member)
        join = try c.decodeIfPresent(Bool.self, forKey: .join) ?? false
        raft = try c.decodeIfPresent(RaftTuning.self, forKey: .raft) ?? RaftTuning()
        heartbeatInterval = try c.decodePositiveSeconds(.heartbeatInterval, default: 1)
        suspectAfter = try c.decodePositiveSeconds(.suspectAfter, default: 3)
        downAfter = try c.decodePositiveSeconds(.downAfter, default: 10)
        logLevel = try c.decodeIfPresent(String.self, forKey: .logLevel) ?? "info"
        alerting = try c.decodeIfPresent(AlertingConfig.self, forKey: .alerting) ?? AlertingConfig()
        if downAfter <= suspectAfter {
            throw DecodingError.dataCorruptedError(
                forKey: .downAfter, in: c, debugDescription: "must be greater than suspectAfter (\(suspectAfter))")
        }
        if !peers.isEmpty && !peers.contains(where: { $0.id == id }) {
            throw DecodingError.dataCorruptedError(
                forKey: .peers, in: c, debugDescription: "must list this replica itself (id \(id)) among the initial voters")
        }
        if Set(peers.map(\.id)).count != peers.count {
            throw DecodingError.dataCorruptedError(forKey: .peers, in: c, debugDescription: "replica ids must be unique")
        }
    }

    /// This replica's own entry in the address book.
    public var selfMember: Specola_V1_Member {
        peers.first { $0.id == id } ?? .with { $0.id = id; $0.name = name; $0.address = listen.description }
    }
}

/// One replica in `peers`.
struct PeerEntry: Decodable {
    var member: Specola_V1_Member
    enum CodingKeys: String, CodingKey, CaseIterable { case id, name, address }
    init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let id = try c.decode(UInt64.self, forKey: .id)
        let name = try c.decode(String.self, forKey: .name)
        let address = try c.decodeEndpoint(.address, defaultPort: 7450)
        member = .with { $0.id = id; $0.name = name; $0.address = address.description }
    }
}

/// Raft timing. Election timeout is `electionTicks` to twice that, in ticks of `tickMs`.
public struct RaftTuning: Decodable, Sendable {
    public var tickMs = 30
    public var electionTicks = 10
    public var snapshotEvery: UInt64 = 20_000

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable { case tickMs, electionTicks, snapshotEvery }
    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        tickMs = try c.decodeIfPresent(Int.self, forKey: .tickMs) ?? 30
        electionTicks = try c.decodeIfPresent(Int.self, forKey: .electionTicks) ?? 10
        snapshotEvery = try c.decodeIfPresent(UInt64.self, forKey: .snapshotEvery) ?? 20_000
        guard (5...1000).contains(tickMs) else {
            throw DecodingError.dataCorruptedError(forKey: .tickMs, in: c, debugDescription: "must be 5 to 1000 milliseconds")
        }
        guard electionTicks >= 3 else {
            throw DecodingError.dataCorruptedError(forKey: .electionTicks, in: c, debugDescription: "must be at least 3")
        }
    }
}
