import Foundation
import Logging
import SpecolaProtocol
import SpecolaRaft
import Synchronization
import TestSupport
import Testing
@testable import SpecolaClusterCore
@testable import SpecolaCoordinator
import CooperativePoolWatch

/// Failover through the real leader loop: a Raft replica, the workload
/// controller and the instruction hub, with simulated agents on the hub's
/// streams. A node that stops answering keeps what it ran; only once `fenced`
/// is committed (the lead's ladder does that after a BMC power-off) do its VM
/// and pod start elsewhere, within seconds, and never on two nodes at once.
@Suite(.watchesCooperativePool) struct WorkloadFailoverTests {
    /// What really runs on each simulated node, and whether its agent answers.
    final class World: Sendable {
        private let lock = Mutex<(running: [String: [String: UInt64]], alive: Set<String>, doubles: [String])>(([:], [], []))

        func setAlive(_ node: String, _ alive: Bool) {
            lock.withLock { if alive { $0.alive.insert(node) } else { $0.alive.remove(node) } }
        }
        func isAlive(_ node: String) -> Bool { lock.withLock { $0.alive.contains(node) } }
        func running(_ node: String) -> [String: UInt64] { lock.withLock { $0.running[node] ?? [:] } }
        func powerOff(_ node: String) { lock.withLock { $0.running[node] = [:]; $0.alive.remove(node) } }
        var doubles: [String] { lock.withLock { $0.doubles } }
        /// Workloads the controller put into error.
        let errors = Mutex<[String]>([])

        func set(_ node: String, _ name: String, _ generation: UInt64?) {
            lock.withLock { world in
                world.running[node, default: [:]][name] = generation
                let hosts = world.running.filter { $0.value[name] != nil }.map(\.key).sorted()
                if hosts.count > 1 { world.doubles.append("\(name) on \(hosts)") }
            }
        }
    }

    /// An agent on the hub's stream: runs each instruction id once and reports through Raft.
    static func agent(_ node: String, replica: InMemoryClusterLog, hub: InstructionHub, world: World) -> Task<Void, Never> {
        let (stream, outgoing) = AsyncStream<Specola_V1_CoordinatorMessage>.makeStream()
        _ = hub.attach(node: node, outgoing: outgoing)
        let heartbeat = Task {
            while !Task.isCancelled {
                if world.isAlive(node) { await replica.noteContact(node) }
                try? await Task.sleep(for: .milliseconds(50))
            }
        }
        return Task {
            defer { heartbeat.cancel() }
            var executed: Set<String> = []
            var seq: UInt64 = 1
            for await message in stream {
                // A dead node hears nothing; the hub resends on a new connection, which this test does not need.
                guard world.isAlive(node), case .instruction(let instruction) = message.kind,
                    executed.insert(instruction.id).inserted
                else { continue }
                var event = Specola_V1_WorkloadEvent()
                switch instruction.action {
                case .startWorkload(let start):
                    world.set(node, start.name, start.generation)
                    event = .with { $0.name = start.name; $0.workloadKind = start.kind; $0.generation = start.generation; $0.kind = .started }
                case .stopWorkload(let stop):
                    world.set(node, stop.name, nil)
                    event = .with { $0.name = stop.name; $0.workloadKind = stop.kind; $0.generation = stop.generation; $0.kind = .stopped }
                default:
                    continue
                }
                seq += 1
                let report = Specola_V1_Report.with { $0.seq = seq; $0.workloadEvents = [event] }
                _ = try? await replica.propose(.applyReport(node: node, report: report, receivedAtUnixMs: WallClock.nowUnixMs()))
            }
        }
    }

    @Test func aFencedNodesVMAndPodRunElsewhereWithinSecondsAndNeverBefore() async throws {
        let logger = Logger(label: "test.failover")
        let replica = InMemoryClusterLog(thresholds: .init(suspectAfterMs: 300, downAfterMs: 600))

        // Two nodes with room, libvirt and podman.
        for command in WorkloadBookTests.cluster(["n1", "n2"]).snapshot().nodes.flatMap({ node in
            [Specola_V1_Command.registerNode(name: node.name, address: "", agentVersion: "t", labels: [:], autoAccept: true, atUnixMs: 1),
             .applyReport(node: node.name, report: .with { $0.seq = 1; $0.full = true; $0.facts = node.facts }, receivedAtUnixMs: 2)]
        }) {
            _ = try await replica.propose(command)
        }
        let world = World()
        let hub = InstructionHub(logger: logger)
        let agents = ["n1", "n2"].map { node in
            world.setAlive(node, true)
            return Self.agent(node, replica: replica, hub: hub, world: world)
        }
        defer { agents.forEach { $0.cancel() } }
        let controller = WorkloadController(
            replica: replica, hub: hub, settings: .init(interval: .milliseconds(50)), logger: logger,
            onError: { name, reason in world.errors.withLock { $0.append("\(name): \(reason)") } })
        let loop = Task { await controller.run() }
        defer { loop.cancel() }

        _ = try await replica.propose(WorkloadBookTests.vm("web", home: "n1"))
        _ = try await replica.propose(.workload("api", at: 10, by: "user/admin", .define(.with {
            $0.kind = "pod"
            $0.definition = "kind: Pod"
            $0.homeNode = "n1"
            $0.maxRestarts = 1
            $0.maxRelocations = 1
        })))
        func workload(_ name: String) async -> Specola_V1_Workload? { await replica.replicatedState.workloads.workloads[name] }
        try await waitUntil("web and api to run on n1") {
            let web = await workload("web"), api = await workload("api")
            return web?.phase == "running" && api?.phase == "running" && world.running("n1") == ["web": 1, "api": 1]
        }

        // n1 goes silent, still running both. Down is not proof: the controller waits for fencing.
        world.setAlive("n1", false)
        try await waitUntil("the controller to wait for n1's fencing", timeout: .seconds(10)) {
            controller.waitingReason("web")?.contains("waiting until it is fenced") == true
                && controller.waitingReason("api")?.contains("waiting until it is fenced") == true
        }
        #expect(world.running("n2").isEmpty)
        #expect(await workload("web")?.node == "n1")

        // Fenced: powered off first, then committed.
        world.powerOff("n1")
        let fencedAt = ContinuousClock.now
        _ = try await replica.propose(WorkloadBookTests.health("n1", .fenced))
        try await waitUntil("web and api to run on n2", timeout: .seconds(10)) {
            let web = await workload("web"), api = await workload("api")
            return web?.phase == "running" && web?.node == "n2" && api?.phase == "running" && api?.node == "n2"
                && world.running("n2") == ["web": 2, "api": 2]
        }
        let failover = ContinuousClock.now - fencedAt
        #expect(failover < .seconds(10), "failover took \(failover)")
        #expect(await workload("web")?.relocations == 1)
        #expect(world.doubles.isEmpty, "\(world.doubles)")
        #expect(world.errors.withLock { $0 }.isEmpty)
    }
}
