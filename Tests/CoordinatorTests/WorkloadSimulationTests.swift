import Foundation
import SpecolaJobs
import SpecolaProtocol
import TestSupport
import Testing
@testable import SpecolaClusterCore
@testable import SpecolaCoordinator
import CooperativePoolWatch

/// A seeded simulation of the HA loop: the planner and the replicated state
/// against simulated nodes that crash workloads, die (keeping what they ran
/// until fenced), get fenced (powered off), and come back. After every step no
/// workload runs on two nodes, whatever operators drain or disable meanwhile;
/// once the cluster is healthy again every
/// workload that should run, runs exactly once. A failure prints its seed.
@Suite(.cpuBoundOffThePool, .watchesCooperativePool) struct WorkloadSimulationTests {
    /// The physical world the state is about.
    struct World {
        var state = WorkloadBookTests.cluster(["n1", "n2", "n3"])
        /// What really runs: node -> workload -> generation.
        var running: [String: [String: UInt64]] = ["n1": [:], "n2": [:], "n3": [:]]
        var alive: Set<String> = ["n1", "n2", "n3"]
        /// Instruction ids each agent has executed (the outbox ledger).
        var executed: [String: Set<String>] = [:]
        /// Instances each agent started and has not seen end (its unfinished ledger entries; they survive a power-off).
        var ledger: [String: [String: UInt64]] = [:]
        var seqs: [String: UInt64] = [:]
        var now: Int64 = 1_000
        var errors: [String] = []

        var status: [String: NodeStatus] {
            Dictionary(uniqueKeysWithValues: state.nodes.keys.map { ($0, alive.contains($0) ? .ready : .down) })
        }

        mutating func report(_ node: String, _ name: String, _ generation: UInt64, _ kind: Specola_V1_WorkloadEventKind) {
            let seq = (seqs[node] ?? 1) + 1
            seqs[node] = seq
            now += 1
            _ = state.apply(.applyReport(node: node, report: .with {
                $0.seq = seq
                $0.workloadEvents = [.with { $0.name = name; $0.workloadKind = "vm"; $0.generation = generation; $0.kind = kind }]
            }, receivedAtUnixMs: now))
        }

        mutating func controllerPass() {
            now += 1
            let plan = WorkloadPlanner.plan(state: state, status: status)
            for decision in plan.decisions {
                let outcome = state.apply(WorkloadBookTests.command(decision, at: now))
                if outcome != .done { errors.append("refused \(decision): \(outcome)") }
            }
        }

        /// Live agents carry out what the state asks of them, each id at most once.
        mutating func deliver() {
            for (node, instruction) in state.workloads.dueInstructions() where alive.contains(node) {
                guard executed[node, default: []].insert(instruction.id).inserted else { continue }
                switch instruction.action {
                case .startWorkload(let start):
                    running[node, default: [:]][start.name] = start.generation
                    ledger[node, default: [:]][start.name] = start.generation
                    report(node, start.name, start.generation, .started)
                case .stopWorkload(let stop):
                    executed[node, default: []].insert(WorkloadBook.instanceID(stop.name, stop.generation))
                    if running[node]?[stop.name] == stop.generation {
                        running[node]?[stop.name] = nil
                        ledger[node]?[stop.name] = nil
                    }
                    report(node, stop.name, stop.generation, .stopped)
                default:
                    break
                }
            }
        }

        mutating func crashOne(_ random: inout SeededRandom) {
            let candidates = alive.sorted().flatMap { node in running[node, default: [:]].sorted { $0.key < $1.key }.map { (node, $0.key, $0.value) } }
            guard let (node, name, generation) = candidates.randomElement(using: &random) else { return }
            running[node]?[name] = nil
            ledger[node]?[name] = nil
            report(node, name, generation, Int.random(in: 0..<3, using: &random) == 0 ? .failedToStart : .exited)
        }

        /// Fencing powers the node off first, and only then is `fenced` committed.
        mutating func fence(_ node: String) {
            running[node] = [:]
            alive.remove(node)
            _ = state.apply(WorkloadBookTests.health(node, .fenced))
        }

        /// A node comes back: a fenced one empty, a merely unreachable one with what it ran.
        /// Its agent goes through its ledger: what still runs is reported started, what is gone exited.
        mutating func recover(_ node: String) {
            alive.insert(node)
            _ = state.apply(WorkloadBookTests.health(node, .ready))
            for (name, generation) in ledger[node, default: [:]].sorted(by: { $0.key < $1.key }) {
                if running[node]?[name] == generation {
                    report(node, name, generation, .started)
                } else {
                    ledger[node]?[name] = nil
                    report(node, name, generation, .exited)
                }
            }
        }

        /// No workload runs on two nodes.
        func doubleStarts() -> [String] {
            var seen: [String: [String]] = [:]
            for (node, workloads) in running {
                for name in workloads.keys { seen[name, default: []].append(node) }
            }
            return seen.filter { $0.value.count > 1 }.map { "\($0.key) runs on \($0.value.sorted())" }
        }
    }

    static func simulate(seed: UInt64, steps: Int) -> [String] {
        var random = SeededRandom(seed: seed)
        var world = World()
        let names = ["a", "b", "c", "d"]
        for name in names {
            _ = world.state.apply(WorkloadBookTests.vm(name, restarts: UInt32(Int.random(in: 0..<3, using: &random)), relocations: UInt32(1 + Int.random(in: 0..<3, using: &random)), memory: 1 << 30))
        }
        var problems: [String] = []
        for step in 0..<steps {
            switch Int.random(in: 0..<11, using: &random) {
            case 0, 1, 2: world.controllerPass()
            case 3, 4, 5: world.deliver()
            case 6: world.crashOne(&random)
            case 7:
                // A node dies; it keeps running what it ran.
                if world.alive.count > 1, let node = world.alive.sorted().randomElement(using: &random) { world.alive.remove(node) }
            case 8:
                let dead = Set(world.state.nodes.keys).subtracting(world.alive).sorted()
                if let node = dead.randomElement(using: &random) {
                    if Int.random(in: 0..<2, using: &random) == 0 { world.fence(node) } else { world.recover(node) }
                }
            case 9:
                // An operator drains a node, or puts it back in service.
                if let node = world.state.nodes.keys.sorted().randomElement(using: &random) {
                    let drain = world.state.nodes[node]?.draining != true
                    _ = world.state.apply(.with { $0.setNodeScheduling = .with { $0.node = node; $0.cordoned = drain; $0.draining = drain } })
                }
            default:
                if let name = names.randomElement(using: &random) {
                    world.now += 1
                    let desired = Int.random(in: 0..<4, using: &random) == 0 ? "disabled" : "started"
                    _ = world.state.apply(.workload(name, at: world.now, by: "user/op", .setDesired(desired)))
                }
            }
            for problem in world.doubleStarts() { problems.append("seed \(seed) step \(step): \(problem)") }
            if !problems.isEmpty { return problems }
        }
        // Heal: fence what is dead, bring every node back, re-enable everything, and let it settle.
        for node in Set(world.state.nodes.keys).subtracting(world.alive).sorted() {
            world.fence(node)
            world.recover(node)
        }
        for node in world.state.nodes.keys.sorted() where world.state.nodes[node]?.committed == .fenced { world.recover(node) }
        for node in world.state.nodes.keys.sorted() {
            _ = world.state.apply(.with { $0.setNodeScheduling = .with { $0.node = node } })
        }
        for name in names {
            world.now += 1
            _ = world.state.apply(.workload(name, at: world.now, by: "user/op", .setDesired("started")))
        }
        for _ in 0..<20 {
            world.controllerPass()
            world.deliver()
            // Crashes before healing may have spent the limits; an operator enables those again.
            for name in names where world.state.workloads.workloads[name]?.phase == "error" {
                world.now += 1
                _ = world.state.apply(.workload(name, at: world.now, by: "user/op", .setDesired("started")))
            }
        }
        problems += world.errors.map { "seed \(seed): \($0)" }
        problems += world.doubleStarts().map { "seed \(seed) after healing: \($0)" }
        for name in names {
            let workload = world.state.workloads.workloads[name]!
            let hosts = world.running.filter { $0.value[name] != nil }.map(\.key)
            if workload.phase != "running" || hosts != [workload.node] {
                problems.append("seed \(seed): after healing \(name) is \(workload.phase) on \(workload.node) (\(workload.message)) but runs on \(hosts)")
            }
        }
        if !world.state.workloads.strays.isEmpty { problems.append("seed \(seed): strays left \(world.state.workloads.strays.keys.sorted())") }
        return problems
    }

    @Test func noWorkloadEverRunsOnTwoNodesAndAllRunAgainAfterHealing() {
        var problems: [String] = []
        for seed in UInt64(1)...300 {
            problems += Self.simulate(seed: seed, steps: 300)
            if problems.count > 5 { break }
        }
        #expect(problems.isEmpty, "\(problems.prefix(5).joined(separator: "\n"))")
    }
}
