import SpecolaClusterCore
import SpecolaJobs
import SpecolaProtocol
import SpecolaDaemon

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
    public var fencing: FencingConfig
    public var earlyWarning: EarlyWarning
    public var logLevel: String
    /// Receivers, routes, inhibition and threshold rules; without it alerts are kept but not sent.
    public var alerting: AlertingConfig
    /// What host access HA VMs and pods may have.
    public var workloads: WorkloadPolicy
    /// How new nodes join.
    public var nodes: NodeAdmission
    /// How long finished jobs stay.
    public var jobs: JobRetention
    /// How GlusterFS is repaired: spare bricks, replacement limits, volume priorities and split-brain policies.
    public var storage: StoragePolicy
    /// Who may do what: bootstrap admins, token group mappings, audit retention.
    public var access: AccessConfig
    /// Sign-in with the site's OIDC provider; nil accepts client certificates only.
    public var oidc: OIDCConfig?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, id, listen, metricsListen, dataDir, tls, peers, join, raft, heartbeatInterval, suspectAfter, downAfter, fencing, earlyWarning,
            logLevel
        case alerting, workloads, nodes, jobs, storage, access
        case oidc
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
        suspectAfter = try c.decodePositiveSeconds(.suspectAfter, default: 2)
        downAfter = try c.decodePositiveSeconds(.downAfter, default: 5)
        fencing = try c.decodeIfPresent(FencingConfig.self, forKey: .fencing) ?? FencingConfig()
        earlyWarning = try c.decodeIfPresent(EarlyWarning.self, forKey: .earlyWarning) ?? EarlyWarning()
        logLevel = try c.decodeIfPresent(String.self, forKey: .logLevel) ?? "info"
        alerting = try c.decodeIfPresent(AlertingConfig.self, forKey: .alerting) ?? AlertingConfig()
        workloads = try c.decodeIfPresent(WorkloadPolicy.self, forKey: .workloads) ?? WorkloadPolicy()
        nodes = try c.decodeIfPresent(NodeAdmission.self, forKey: .nodes) ?? NodeAdmission()
        jobs = try c.decodeIfPresent(JobRetention.self, forKey: .jobs) ?? JobRetention()
        storage = try c.decodeIfPresent(StorageConfig.self, forKey: .storage)?.policy ?? StoragePolicy()
        access = try c.decodeIfPresent(AccessConfig.self, forKey: .access) ?? AccessConfig()
        oidc = try c.decodeIfPresent(OIDCConfig.self, forKey: .oidc)
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

    /// The failure ladder's thresholds.
    public var healthPolicy: NodeHealth.Policy {
        NodeHealth.Policy(
            suspectAfterMs: Int64(suspectAfter * 1000), downAfterMs: Int64(downAfter * 1000),
            selfFenceAfterMs: Int64(fencing.selfFenceAfter * 1000), leaseMarginMs: Int64(fencing.leaseMargin * 1000),
            fencingEnabled: fencing.enabled, maxFencedFraction: fencing.maxFencedFraction,
            stuckAfterMs: Int64(fencing.stuckAfter * 1000))
    }

    /// This replica's own entry in the address book.
    public var selfMember: Specola_V1_Member {
        peers.first { $0.id == id } ?? .with { $0.id = id; $0.name = name; $0.address = listen.description }
    }
}

/// `nodes:` — whether a node with a valid certificate joins by itself.
public struct NodeAdmission: Decodable, Sendable {
    /// Off by default: a new node waits for `specola node accept NAME`, and its labels are the
    /// operator's. On (dev clusters, tests): it joins at once and its agent declares its labels.
    public var autoAccept = false

    public init(autoAccept: Bool = false) { self.autoAccept = autoAccept }

    enum CodingKeys: String, CodingKey, CaseIterable { case autoAccept }
    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        autoAccept = try c.decodeIfPresent(Bool.self, forKey: .autoAccept) ?? false
    }
}

/// `jobs:` — how long a finished job, its logs and its step outputs stay in the replicated state.
public struct JobRetention: Decodable, Sendable {
    /// Seconds after a job finishes; 0 keeps finished jobs forever. Default 7 days.
    public var retention: Double = 7 * 86_400

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable { case retention }
    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        retention = try c.decodeIfPresent(Double.self, forKey: .retention) ?? retention
        guard retention >= 0, retention.isFinite else {
            throw DecodingError.dataCorruptedError(forKey: .retention, in: c, debugDescription: "must be 0 (keep forever) or a number of seconds")
        }
    }

    var duration: Duration? { retention > 0 ? .milliseconds(Int64(retention * 1000)) : nil }
}

/// One replica in `peers`.
struct PeerEntry: Decodable {
    var member: Specola_V1_Member
    enum CodingKeys: String, CodingKey, CaseIterable { case id, name, address, raftAddress }
    init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let id = try c.decode(UInt64.self, forKey: .id)
        let name = try c.decode(String.self, forKey: .name)
        let address = try c.decodeEndpoint(.address, defaultPort: 7450)
        // Optional: where this replica takes Raft traffic on the direct channel (without it, gRPC on `address`).
        let raftAddress = try c.contains(.raftAddress) ? c.decodeEndpoint(.raftAddress, defaultPort: 7451).description : ""
        member = .with { $0.id = id; $0.name = name; $0.address = address.description; $0.raftAddress = raftAddress }
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

/// `fencing:` — the failure ladder's last steps. See packaging/coordinator.yaml.
public struct FencingConfig: Decodable, Sendable {
    /// Chassis control of the nodes' BMCs (IPMI over LAN).
    public struct BMCAccess: Decodable, Sendable {
        public var user: String
        public var password: String
        public var timeout: Double

        enum CodingKeys: String, CodingKey, CaseIterable { case user, passwordFile, timeout }

        public init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            user = try c.decode(String.self, forKey: .user)
            let file = try c.decode(String.self, forKey: .passwordFile)
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw DecodingError.dataCorruptedError(
                    forKey: .passwordFile, in: c, debugDescription: "cannot read \(file); it must hold the BMC password (mode 0600)")
            }
            password = text.trimmingCharacters(in: .newlines)
            timeout = try c.decodePositiveSeconds(.timeout, default: 5)
        }
    }

    public var enabled = true
    public var selfFenceAfter = 20.0
    public var leaseMargin = 5.0
    public var maxFencedFraction = 0.34
    public var stuckAfter = 60.0
    public var bmc: BMCAccess?
    public var bmcAddresses: [String: HostPort] = [:]

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case enabled, selfFenceAfter, leaseMargin, maxFencedFraction, stuckAfter, bmc, bmcAddresses
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? true
        selfFenceAfter = try c.decodeIfPresent(Double.self, forKey: .selfFenceAfter) ?? 20
        guard selfFenceAfter >= 0, selfFenceAfter.isFinite else {
            throw DecodingError.dataCorruptedError(forKey: .selfFenceAfter, in: c, debugDescription: "must be 0 (no lease) or a number of seconds")
        }
        leaseMargin = try c.decodePositiveSeconds(.leaseMargin, default: 5)
        maxFencedFraction = try c.decodeIfPresent(Double.self, forKey: .maxFencedFraction) ?? 0.34
        guard maxFencedFraction > 0, maxFencedFraction <= 1 else {
            throw DecodingError.dataCorruptedError(forKey: .maxFencedFraction, in: c, debugDescription: "must be above 0 and at most 1")
        }
        stuckAfter = try c.decodePositiveSeconds(.stuckAfter, default: 60)
        bmc = try c.decodeIfPresent(BMCAccess.self, forKey: .bmc)
        let addresses = try c.decodeIfPresent([String: String].self, forKey: .bmcAddresses) ?? [:]
        for (node, text) in addresses {
            guard let endpoint = HostPort(parsing: text, defaultPort: 623) else {
                throw DecodingError.dataCorruptedError(
                    forKey: .bmcAddresses, in: c, debugDescription: "'\(text)' for \(node) is not an address; write HOST:PORT")
            }
            bmcAddresses[node] = endpoint
        }
    }
}

extension EarlyWarning.Action: Decodable {}

extension EarlyWarning: Decodable {
    enum CodingKeys: String, CodingKey, CaseIterable { case onCriticalSensor, onPowerSupplyEvent }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(onCriticalSensor: try c.decodeIfPresent(Action.self, forKey: .onCriticalSensor) ?? .drain,
                  onPowerSupplyEvent: try c.decodeIfPresent(Action.self, forKey: .onPowerSupplyEvent) ?? .drain)
    }
}

/// Host access HA workloads may have (`workloads:`); none by default.
public struct WorkloadPolicy: Decodable, Sendable {
    /// Host block devices a VM's `<disk type='block'>` may use, e.g. /dev/vg0/vm-data.
    public var allowedBlockDevices: [String] = []
    /// Host directories (each and everything under it) a pod's hostPath or a VM's `<filesystem>` may share.
    public var hostPathPrefixes: [String] = []

    public init(allowedBlockDevices: [String] = [], hostPathPrefixes: [String] = []) {
        self.allowedBlockDevices = allowedBlockDevices
        self.hostPathPrefixes = hostPathPrefixes
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case allowedBlockDevices, hostPathPrefixes }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        allowedBlockDevices = try c.decodeIfPresent([String].self, forKey: .allowedBlockDevices) ?? []
        hostPathPrefixes = try c.decodeIfPresent([String].self, forKey: .hostPathPrefixes) ?? []
        for (key, paths) in [(CodingKeys.allowedBlockDevices, allowedBlockDevices), (.hostPathPrefixes, hostPathPrefixes)] {
            for path in paths {
                if let problem = Mount.prefixProblem(path) {
                    throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "'\(path)' \(problem)")
                }
            }
        }
    }

    /// Why a workload may not share host directory `path`, or nil when a prefix allows it.
    func hostPathProblem(_ path: String) -> String? {
        if let problem = Mount.pathProblem(path) { return "host path '\(path)' \(problem)" }
        if hostPathPrefixes.contains(where: { Mount.path(path, isUnder: $0) }) { return nil }
        let allowed = hostPathPrefixes.isEmpty ? "none" : hostPathPrefixes.joined(separator: ", ")
        return "host path '\(path)' is not under workloads.hostPathPrefixes of the coordinator's configuration (allowed now: \(allowed))"
    }
}

/// `storage:` — the heal planner's policy. See packaging/coordinator.yaml.
struct StorageConfig: Decodable {
    var policy = StoragePolicy()

    enum CodingKeys: String, CodingKey, CaseIterable {
        case enabled, spareBricks, maxConcurrentReplacements, replaceAfter, restartRetryAfter, maxRestartAttempts, restartWindow
        case healBacklogThreshold, healBacklogFor, volumes
    }

    init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        policy.enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? true
        policy.spareBricks = try c.decodeIfPresent([String: [String]].self, forKey: .spareBricks) ?? [:]
        for (node, paths) in policy.spareBricks {
            for path in paths where !path.hasPrefix("/") || path.hasSuffix("/") || path.contains("//") {
                throw DecodingError.dataCorruptedError(
                    forKey: .spareBricks, in: c, debugDescription: "'\(path)' for \(node) is not a brick path; write an absolute directory, e.g. /srv/spare1/brick")
            }
        }
        policy.maxConcurrentReplacements = try c.decodeIfPresent(Int.self, forKey: .maxConcurrentReplacements) ?? 1
        guard policy.maxConcurrentReplacements >= 0 else {
            throw DecodingError.dataCorruptedError(forKey: .maxConcurrentReplacements, in: c, debugDescription: "must be 0 (never replace) or more")
        }
        policy.replaceAfterMs = Int64(try c.decodePositiveSeconds(.replaceAfter, default: 300) * 1000)
        policy.restartRetryAfterMs = Int64(try c.decodePositiveSeconds(.restartRetryAfter, default: 15) * 1000)
        policy.maxRestartAttempts = try c.decodeIfPresent(Int.self, forKey: .maxRestartAttempts) ?? 3
        policy.restartWindowMs = Int64(try c.decodePositiveSeconds(.restartWindow, default: 600) * 1000)
        policy.healBacklogThreshold = try c.decodeIfPresent(UInt64.self, forKey: .healBacklogThreshold) ?? 1_000
        policy.healBacklogForMs = Int64(try c.decodePositiveSeconds(.healBacklogFor, default: 600) * 1000)
        policy.volumes = try (c.decodeIfPresent([String: VolumeEntry].self, forKey: .volumes) ?? [:]).mapValues(\.policy)
    }

    /// One entry of `storage.volumes`.
    struct VolumeEntry: Decodable {
        var policy = StoragePolicy.VolumePolicy()

        enum CodingKeys: String, CodingKey, CaseIterable { case priority, splitBrain, sourceBrick, shdMaxThreads, healPriority }

        init(from decoder: any Decoder) throws {
            try decoder.rejectUnknownKeys(CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            policy.priority = try c.decodeIfPresent(Int.self, forKey: .priority) ?? 0
            let text = try c.decodeIfPresent(String.self, forKey: .splitBrain) ?? "manual"
            guard let rule = StoragePolicy.SplitBrainPolicy(rawValue: text) else {
                throw DecodingError.dataCorruptedError(
                    forKey: .splitBrain, in: c,
                    debugDescription: "'\(text)' is not a split-brain policy; use one of \(StoragePolicy.SplitBrainPolicy.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            policy.splitBrain = rule
            policy.sourceBrick = try c.decodeIfPresent(String.self, forKey: .sourceBrick) ?? ""
            if rule == .sourceBrick && policy.sourceBrick.isEmpty {
                throw DecodingError.keyNotFound(CodingKeys.sourceBrick, .init(codingPath: c.codingPath, debugDescription: "splitBrain source-brick needs sourceBrick: HOST:PATH"))
            }
            policy.shdMaxThreads = try c.decodeIfPresent(Int.self, forKey: .shdMaxThreads) ?? 0
            guard (0...Int(StoragePolicy.shdMaxThreadsLimit)).contains(policy.shdMaxThreads) else {
                throw DecodingError.dataCorruptedError(forKey: .shdMaxThreads, in: c, debugDescription: "cluster.shd-max-threads is 1 to 64; 0 leaves gluster's value")
            }
            let priority = try c.decodeIfPresent(String.self, forKey: .healPriority) ?? StoragePolicy.HealPriority.normal.rawValue
            guard let healPriority = StoragePolicy.HealPriority(rawValue: priority) else {
                throw DecodingError.dataCorruptedError(forKey: .healPriority, in: c, debugDescription: StoragePolicy.HealPriority.unknown(priority))
            }
            policy.healPriority = healPriority
        }
    }
}
