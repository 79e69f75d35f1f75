import SpecolaWire

/// The failure ladder: ready → suspect → down → fencing → fenced → recovered.
/// Each step is a committed `NodeHealthCommand`; this decides the next step
/// from what the leader observes. Pure, so every rule has a unit test.
public enum NodeHealth {
    public struct Policy: Sendable {
        public var suspectAfterMs: Int64
        public var downAfterMs: Int64
        /// The agents' self-fence lease; 0 turns lease fencing off.
        public var selfFenceAfterMs: Int64
        /// Added to the lease before the coordinator relies on it (clock drift, the agent's stop time).
        public var leaseMarginMs: Int64
        /// False: nodes go down and stay there; nothing is fenced or moved automatically.
        public var fencingEnabled: Bool
        /// At most this share of the nodes may be fencing or fenced at once (mass-failure brake).
        public var maxFencedFraction: Double
        /// Fencing this long without proof raises an alert.
        public var stuckAfterMs: Int64

        public init(suspectAfterMs: Int64 = 3_000, downAfterMs: Int64 = 10_000, selfFenceAfterMs: Int64 = 20_000,
                    leaseMarginMs: Int64 = 5_000, fencingEnabled: Bool = true, maxFencedFraction: Double = 0.34,
                    stuckAfterMs: Int64 = 60_000) {
            self.suspectAfterMs = suspectAfterMs
            self.downAfterMs = downAfterMs
            self.selfFenceAfterMs = selfFenceAfterMs
            self.leaseMarginMs = leaseMarginMs
            self.fencingEnabled = fencingEnabled
            self.maxFencedFraction = maxFencedFraction
            self.stuckAfterMs = stuckAfterMs
        }

        /// Silence after which the node's own agent has provably stopped its work.
        public var leaseExpiresAfterMs: Int64? { selfFenceAfterMs > 0 ? selfFenceAfterMs + leaseMarginMs : nil }
    }

    /// What the leader knows about one node in one pass.
    public struct Observation: Sendable {
        public var committed: NodeStatus
        /// Time since the node's last sign of life.
        public var silenceMs: Int64
        /// The same, but never more than this leader's own time as leader: only silence
        /// it witnessed itself proves that the lease ran out (a new leader missed the old one's heartbeats).
        public var leaseSilenceMs: Int64
        /// The mass-failure brake allows one more node into fencing.
        public var fencingAllowed: Bool
        /// The node's BMC confirmed chassis power off after an off command.
        public var bmcConfirmedOff: Bool
        /// A power-off command may have reached the BMC: fencing must finish.
        public var powerOffSent: Bool
        /// An operator asked for this fencing (`specola node fence`): it finishes whatever the node
        /// says, and the node stays fenced until it is unfenced.
        public var requested: Bool

        public init(committed: NodeStatus, silenceMs: Int64, leaseSilenceMs: Int64? = nil, fencingAllowed: Bool = true,
                    bmcConfirmedOff: Bool = false, powerOffSent: Bool = false, requested: Bool = false) {
            self.committed = committed.committed
            self.silenceMs = silenceMs
            self.leaseSilenceMs = leaseSilenceMs ?? silenceMs
            self.fencingAllowed = fencingAllowed
            self.bmcConfirmedOff = bmcConfirmedOff
            self.powerOffSent = powerOffSent || bmcConfirmedOff
            self.requested = requested
        }
    }

    /// The next committed step, if any, with the reason operators see.
    public static func next(_ node: Observation, policy: Policy) -> (status: NodeStatus, reason: String)? {
        let seconds = String(format: "%.1f", Double(node.silenceMs) / 1000)
        let alive = node.silenceMs < policy.suspectAfterMs
        switch node.committed {
        case .ready, .suspect, .down, .unspecified, .UNRECOGNIZED:
            if alive { return node.committed == .ready ? nil : (.ready, "heartbeats resumed") }
            if node.silenceMs < policy.downAfterMs {
                return node.committed == .suspect ? nil : (.suspect, "no heartbeat for \(seconds) s")
            }
            if node.committed != .down { return (.down, "no heartbeat for \(seconds) s") }
            guard policy.fencingEnabled else { return nil }
            guard node.fencingAllowed else { return nil }
            return (.fencing, "down for \(seconds) s; fencing before its work moves")
        case .fencing:
            if node.bmcConfirmedOff { return (.fenced, "BMC confirmed chassis power off") }
            if let lease = policy.leaseExpiresAfterMs, node.leaseSilenceMs >= lease {
                return (.fenced, "self-fence lease expired: no contact for \(seconds) s (lease \(policy.selfFenceAfterMs / 1000) s + margin)")
            }
            // Nothing has moved yet, so a node that answers again before any power-off was sent
            // simply goes back to work. Once a power-off may be under way, fencing finishes.
            if alive && !node.powerOffSent && !node.requested { return (.ready, "heartbeats resumed before fencing completed") }
            return nil
        case .fenced:
            // An operator's fence holds until `specola node unfence`.
            return alive && !node.requested ? (.recovered, "the agent is back after fencing") : nil
        case .recovered:
            return alive ? (.ready, "healthy again") : nil
        }
    }

    /// What the scheduler may assume: committed fencing states win, otherwise liveness.
    public static func schedulingStatus(committed: NodeStatus, live: NodeStatus) -> NodeStatus {
        committed.committed.isFencingOrFenced ? committed : live
    }

    /// The status `specola nodes` shows: the committed step, with fresh liveness for the healthy steps.
    public static func displayed(committed: NodeStatus, live: NodeStatus) -> NodeStatus {
        switch committed.committed {
        case .fencing, .fenced: return committed
        case .recovered where live == .ready: return committed
        default: return live
        }
    }
}
