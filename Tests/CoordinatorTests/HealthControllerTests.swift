import CooperativePoolWatch
import Logging
import SpecolaProtocol
import Synchronization
import TestSupport
import Testing
@testable import SpecolaClusterCore
@testable import SpecolaCoordinator

/// Records every BMC call; stands in for `IPMIPowerControl`, which the process tests drive
/// against ipmi_sim (FailoverTests) behind the same protocol.
final class RecordingPowerControl: NodePowerControl {
    let calls = Mutex<[String]>([])
    let failOff: String?

    init(failOff: String? = nil) { self.failOff = failOff }

    func powerOffConfirmed(_ bmc: HostPort) async throws {
        calls.withLock { $0.append("off \(bmc)") }
        if let failOff { throw BMCFailure(description: failOff) }
    }

    func powerOn(_ bmc: HostPort) async throws {
        calls.withLock { $0.append("on \(bmc)") }
    }

    struct BMCFailure: Error, CustomStringConvertible { var description: String }
}

/// The health executor on an in-memory log: it carries out what the ladder decides, and the
/// operator's fence meets the brake.
@Suite(.watchesCooperativePool) struct HealthControllerTests {
    static let bmc = HostPort(host: "127.0.1.21", port: 9623)

    func withController(power: RecordingPowerControl, maxFencedFraction: Double = 0.5,
                        _ body: (InMemoryClusterLog, HealthController) async throws -> Void) async throws {
        let replica = InMemoryClusterLog()
        for name in ["n1", "n2"] {
            _ = try await replica.propose(.registerNode(name: name, address: "x", agentVersion: "v", labels: [:], autoAccept: true, atUnixMs: 1))
        }
        let policy = NodeHealth.Policy(suspectAfterMs: 100, downAfterMs: 200, selfFenceAfterMs: 0, leaseMarginMs: 0,
                                       maxFencedFraction: maxFencedFraction)
        let health = HealthController(
            replica: replica, settings: .init(policy: policy, bmcAddresses: ["n1": Self.bmc], bmcCredentials: true),
            power: power, logger: Logger(label: "test"), onTransition: {})
        try await body(replica, health)
    }

    func status(_ replica: InMemoryClusterLog, _ node: String) async -> NodeStatus? {
        await replica.replicatedState.nodes[node]?.committed
    }

    @Test func aSilentNodeIsPoweredOffAtItsConfiguredBMCAndFenced() async throws {
        let power = RecordingPowerControl()
        try await withController(power: power) { replica, health in
            try await waitUntil("n1 to be fenced") {
                await replica.noteContact("n2")
                await health.pass(leaderSinceUnixMs: 0)
                return await status(replica, "n1") == .fenced
            }
            #expect(power.calls.withLock { $0 } == ["off 127.0.1.21:9623"], "one power-off, at the configured address")
            #expect(await replica.replicatedState.nodes["n1"]?.statusReason == "BMC confirmed chassis power off")
            #expect(await status(replica, "n2") == .ready)
        }
    }

    @Test func aFailedPowerOffLeavesTheNodeFencing() async throws {
        let power = RecordingPowerControl(failOff: "no answer from 127.0.1.21:9623")
        try await withController(power: power) { replica, health in
            try await waitUntil("a power-off attempt") {
                await replica.noteContact("n2")
                await health.pass(leaderSinceUnixMs: 0)
                return !power.calls.withLock { $0 }.isEmpty
            }
            for _ in 0..<5 { await health.pass(leaderSinceUnixMs: 0) }
            #expect(await status(replica, "n1") == .fencing, "no proof, no fenced")
        }
    }

    @Test func theOperatorsFenceMeetsTheBrakeUnlessForced() async throws {
        try await withController(power: RecordingPowerControl()) { replica, health in
            await replica.noteContact("n1")
            await replica.noteContact("n2")
            try await health.operatorRequest(fence: true, node: "n1", by: "admin", force: false)
            #expect(await status(replica, "n1") == .fencing)
            do {
                try await health.operatorRequest(fence: true, node: "n2", by: "admin", force: false)
                Issue.record("a second of two nodes was fenced past the brake")
            } catch {
                #expect("\(error)".hasPrefix("refused: 1 of 2 nodes are already fencing or fenced"), "\(error)")
            }
            #expect(await status(replica, "n2") == .ready)
            try await health.operatorRequest(fence: true, node: "n2", by: "admin", force: true)
            #expect(await status(replica, "n2") == .fencing)
            #expect(await replica.replicatedState.nodes["n2"]?.fenceRequestedBy == "admin")
        }
    }
}
