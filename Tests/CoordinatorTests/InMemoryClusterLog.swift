import SpecolaClusterCore
import SpecolaWire

/// A single replica's log without Raft or SQLite: each proposal applies at once. Controllers take
/// `any ClusterLog`, which `Replica` satisfies in the process tests.
actor InMemoryClusterLog: ClusterLog {
    private(set) var state = ClusterState()
    private var contact: [String: Int64] = [:]
    private(set) var proposals: [Specola_V1_Command] = []
    var leading = true
    nonisolated let thresholds: LivenessThresholds

    init(thresholds: LivenessThresholds = .init()) {
        self.thresholds = thresholds
    }

    func propose(_ command: Specola_V1_Command) async throws -> ApplyOutcome {
        guard leading else { throw NotLeader() }
        proposals.append(command)
        return state.apply(command)
    }

    func readBarrier() async throws {
        guard leading else { throw NotLeader() }
    }

    var isLeader: Bool { leading }

    func setLeading(_ leads: Bool) { leading = leads }

    func leaderView(nowUnixMs: Int64) -> LeaderView {
        LeaderView(state: state, contactUnixMs: contact, thresholds: thresholds, nowUnixMs: nowUnixMs)
    }

    func noteContact(_ name: String, atUnixMs: Int64 = WallClock.nowUnixMs()) {
        contact[name] = max(contact[name] ?? 0, atUnixMs)
    }

    struct NotLeader: Error, CustomStringConvertible {
        var description: String { "this in-memory log does not lead" }
    }
}
