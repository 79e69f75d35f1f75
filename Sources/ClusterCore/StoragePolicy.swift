import SpecolaWire

/// How the leader repairs GlusterFS (the `storage:` section of the coordinator config).
public struct StoragePolicy: Sendable, Hashable {
    /// How split-brain files of a volume are resolved.
    public enum SplitBrainPolicy: String, Sendable, Hashable, CaseIterable {
        /// The copy modified last wins.
        case latestMtime = "latest-mtime"
        /// The larger copy wins.
        case biggerFile = "bigger-file"
        /// The copy on the volume's `sourceBrick` wins.
        case sourceBrick = "source-brick"
        /// Nothing is changed; an alert names each file for an operator to decide.
        case manual
    }

    /// At which priority a volume's bricks serve its self-heal daemon, kept set through
    /// `performance.enable-least-priority`. With gluster's default (least) the bricks' io-threads
    /// hold heal requests back behind clients: measured here, 2,000 entries took 80 s to heal
    /// at least priority and 29 s at normal priority (scripts/heal-write-experiments.sh).
    public enum HealPriority: String, Sendable, Hashable, CaseIterable {
        /// Heals are served like client requests: redundancy comes back first.
        case normal
        /// Gluster's default: heals yield to client I/O.
        case least

        /// The value of `performance.enable-least-priority` that gives this priority.
        public var leastPriorityOption: String { self == .least ? "on" : "off" }

        /// The committed form; "" (a policy set before this field existed) reads as normal.
        public init?(committed text: String) {
            if text.isEmpty { self = .normal } else { self.init(rawValue: text) }
        }

        /// The refusal for a word that names no heal priority.
        public static func unknown(_ text: String) -> String {
            "'\(text)' is not a heal priority; use one of \(allCases.map(\.rawValue).joined(separator: ", "))"
        }
    }

    /// One volume's place in the queue and its split-brain rule.
    public struct VolumePolicy: Sendable, Hashable {
        /// Higher first: repairs of a higher-priority volume take the replacement slots first.
        public var priority: Int
        public var splitBrain: SplitBrainPolicy
        /// For `source-brick`: "HOST:PATH" of the brick whose copies win.
        public var sourceBrick: String
        /// The heal throttle the planner keeps set (`cluster.shd-max-threads`); 0 leaves gluster's value.
        public var shdMaxThreads: Int
        public var healPriority: HealPriority
        /// "config", or the operator who set it with `specola volume policy`.
        public var setBy: String

        public init(priority: Int = 0, splitBrain: SplitBrainPolicy = .manual, sourceBrick: String = "", shdMaxThreads: Int = 0, healPriority: HealPriority = .normal,
                    setBy: String = "config") {
            self.priority = priority
            self.splitBrain = splitBrain
            self.sourceBrick = sourceBrick
            self.shdMaxThreads = shdMaxThreads
            self.healPriority = healPriority
            self.setBy = setBy
        }

        /// An operator's committed policy; an unknown split-brain rule reads as manual.
        public init(_ proto: Specola_V1_VolumeStoragePolicy) {
            self.init(priority: Int(proto.priority), splitBrain: SplitBrainPolicy(rawValue: proto.splitBrain) ?? .manual,
                      sourceBrick: proto.sourceBrick, shdMaxThreads: Int(proto.shdMaxThreads),
                      healPriority: HealPriority(committed: proto.healPriority) ?? .normal, setBy: proto.setBy)
        }

        public func proto(volume: String) -> Specola_V1_VolumeStoragePolicy {
            .with {
                $0.volume = volume
                $0.priority = Int32(clamping: priority)
                $0.splitBrain = splitBrain.rawValue
                $0.sourceBrick = sourceBrick
                $0.shdMaxThreads = UInt32(clamping: shdMaxThreads)
                $0.healPriority = healPriority.rawValue
                $0.setBy = setBy
            }
        }
    }

    /// gluster accepts cluster.shd-max-threads from 1 to 64.
    public static let shdMaxThreadsLimit: UInt32 = 64

    /// False: the planner proposes nothing (alerts still fire).
    public var enabled: Bool
    /// Empty directories, by node, that may become bricks when a brick must move.
    public var spareBricks: [String: [String]]
    /// At most this many brick replacements run at once, cluster-wide (each costs a full heal).
    public var maxConcurrentReplacements: Int
    public var volumes: [String: VolumePolicy]
    /// A disk that keeps failing, or a node that stays fenced, this long has its bricks replaced.
    public var replaceAfterMs: Int64
    /// After a restart ended, wait this long (a fresh report) before trying again.
    public var restartRetryAfterMs: Int64
    /// Restarts of one brick within `restartWindowMs`; after that the planner leaves it to an operator.
    public var maxRestartAttempts: Int
    public var restartWindowMs: Int64
    /// HealBacklog fires when a brick lists more entries to heal than this for `healBacklogForMs`.
    public var healBacklogThreshold: UInt64
    public var healBacklogForMs: Int64

    public init(
        enabled: Bool = true, spareBricks: [String: [String]] = [:], maxConcurrentReplacements: Int = 1,
        volumes: [String: VolumePolicy] = [:], replaceAfterMs: Int64 = 300_000, restartRetryAfterMs: Int64 = 15_000,
        maxRestartAttempts: Int = 3, restartWindowMs: Int64 = 600_000, healBacklogThreshold: UInt64 = 1_000,
        healBacklogForMs: Int64 = 600_000
    ) {
        self.enabled = enabled
        self.spareBricks = spareBricks
        self.maxConcurrentReplacements = maxConcurrentReplacements
        self.volumes = volumes
        self.replaceAfterMs = replaceAfterMs
        self.restartRetryAfterMs = restartRetryAfterMs
        self.maxRestartAttempts = maxRestartAttempts
        self.restartWindowMs = restartWindowMs
        self.healBacklogThreshold = healBacklogThreshold
        self.healBacklogForMs = healBacklogForMs
    }

    public func volume(_ name: String) -> VolumePolicy { volumes[name] ?? VolumePolicy() }

    /// The policy in force for a volume: the operator's committed one, else the config's.
    public func volume(_ name: String, in book: StorageBook) -> VolumePolicy {
        book.volumePolicies[name].map(VolumePolicy.init) ?? volume(name)
    }
}
