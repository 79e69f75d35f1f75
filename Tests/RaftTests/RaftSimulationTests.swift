import Foundation
import SpecolaRaft
import Synchronization
import Testing
import CooperativePoolWatch

#if canImport(Glibc)
    import Glibc
#endif

/// One seeded random run: faults, client traffic and membership churn for `steps` ticks,
/// then a healed network in which the group must elect a leader and commit.
enum RandomRun {
    struct Stats {
        var ticks = 0
        var committed: Index = 0
        var reads = 0
        var nodes = 0
    }

    static let livenessTicks = 400

    /// `brokenDriver`: the driver sends every message before persisting, with frequent
    /// crashes in between; the invariant checks must catch it. Even seeds write in the
    /// background, as the production driver's storage thread does (`Simulation.backgroundWrites`);
    /// chosen by parity, not drawn, so the other seeds' runs stay as they were.
    static func run(seed: UInt64, trace: Bool = false, brokenDriver: Bool = false) throws -> Stats {
        var rng = Xoshiro(seed: seed ^ 0x5EED)
        let n: UInt64 = rng.chance(0.5) ? 3 : 5
        let voters = Array(1...n)
        let spares = [n + 1, n + 2]
        // A quarter of the runs use the production replication window; the rest small ones,
        // which reach the interesting states sooner.
        let production = rng.chance(0.25)
        let maxEntries = production ? 256 : 1 + rng.below(8)
        let maxInflight = production ? 256 : 1 + rng.below(6)
        let preVote = rng.chance(0.85)
        let sim = Simulation(voters: voters, spares: spares, seed: seed) {
            $0.maxEntriesPerMessage = maxEntries
            $0.maxInflight = maxInflight
            $0.preVote = preVote
        }
        if trace { sim.trace = [] }
        sim.faults = .init(drop: Double(rng.below(20)) / 100, duplicate: 0.03, maxDelay: rng.below(4),
                           crashBeforePersist: brokenDriver ? 0.05 : rng.chance(0.5) ? 0.003 : 0)
        sim.driverSendsBeforePersisting = brokenDriver
        sim.backgroundWrites = seed % 2 == 0 && !brokenDriver
        sim.readyProbability = 0.8
        // Clock skew: in half the runs each node's clock runs at its own rate (a tick is skipped
        // with probability up to 30%), so election timeouts race as on real machines.
        let skewed = rng.chance(0.5)
        var tickRate: [NodeID: Double] = [:]
        for id in voters + spares { tickRate[id] = skewed ? 1 - Double(rng.below(31)) / 100 : 1 }
        let steps = 150 + rng.below(150)
        let churn = [0.0, 0.01, 0.03, 0.08][rng.below(4)]
        var proposals: UInt64 = 0
        // The leader's driver: commands queue while its own log write is under way (`ProposalWindow`).
        var queued: [[UInt8]] = []
        var batchesInFlight: [Index] = []
        var driverLeader: NodeID?
        var stats = Stats(nodes: Int(n))

        func pick(_ xs: [NodeID]) -> NodeID? { xs.isEmpty ? nil : xs[rng.below(xs.count)] }
        let all = voters + spares

        do {
            for _ in 0..<steps {
                let live = all.filter { sim.nodes[$0]!.raft != nil }
                let down = all.filter { sim.nodes[$0]!.raft == nil }
                if rng.chance(0.015), let id = pick(live) { sim.crash(id) }
                // Leader churn is what exposes figure-8 style bugs.
                if rng.chance(churn), let id = sim.leaders.first { sim.crash(id) }
                if rng.chance(0.06), let id = pick(down) { try sim.restart(id) }
                if sim.partition == nil, rng.chance(churn) {
                    var groups: [NodeID: Int] = [:]
                    for id in all { groups[id] = rng.below(2) }
                    sim.partition = groups
                    sim.note("partition \(groups.sorted { $0.key < $1.key }.map(\.value))")
                } else if sim.partition != nil, rng.chance(0.05) {
                    sim.note("heal")
                    sim.heal()
                }
                if rng.chance(0.4) {
                    // Mostly a few commands per tick, sometimes a burst past one batch.
                    let burst = rng.chance(0.03) ? 1 + rng.below(ProposalWindow.maxBatch + 60) : 1 + rng.below(3)
                    for _ in 0..<burst {
                        proposals += 1
                        queued.append(Array("s\(seed)p\(proposals)".utf8))
                    }
                }
                if !queued.isEmpty, let leader = sim.leaders.first {
                    if driverLeader != leader {
                        driverLeader = leader
                        batchesInFlight = []
                    }
                    let commit = sim.raft(leader).commitIndex
                    batchesInFlight.removeAll { $0 <= commit }
                    let raft = sim.raft(leader)
                    if ProposalWindow.mayPropose(
                        ownLogSynced: raft.ownLogIsDurable, batchesInFlight: batchesInFlight.count,
                        queued: queued.count, queuedBytes: queued.reduce(0) { $0 + $1.count }, isLeader: true) {
                        if case .accepted(let first, _)? = try sim.propose(at: leader, batch: queued) {
                            batchesInFlight.append(first + Index(queued.count) - 1)
                        }
                        queued = []  // refused commands fail back to their clients
                    }
                }
                if rng.chance(0.08), let id = pick(live) { _ = try sim.read(at: id) }
                if rng.chance(0.03), let leader = sim.leaders.first {
                    try changeMembership(sim, leader: leader, pool: all, rng: &rng)
                }
                if rng.chance(0.04), let id = pick(live) { try sim.compact(id) }
                if rng.chance(0.01), let leader = sim.leaders.first,
                    let target = pick(sim.raft(leader).membership.voters.sorted())
                {
                    let r = sim.withRaft(leader) { $0.transferLeadership(to: target) }
                    sim.note("transfer \(leader)->\(target): \(String(describing: r))")
                }
                var budget = 400
                while budget > 0, try sim.deliverOne() { budget -= 1 }
                for id in sim.ids where rng.chance(0.7) { try sim.processReady(id) }
                sim.now += 1
                for id in sim.ids where sim.nodes[id]!.raft != nil && rng.chance(tickRate[id] ?? 1) { try sim.tick(id) }
            }
            stats.ticks = steps

            // Liveness: faults stop, every node comes back, the group must make progress.
            sim.note("--- heal everything ---")
            sim.heal()
            sim.faults = .init()
            sim.readyProbability = 1
            for id in all where sim.nodes[id]!.raft == nil { try sim.restart(id) }
            var pending: (index: Index, term: Term)?
            var done = false
            for _ in 0..<livenessTicks {
                try sim.deliverAll()
                if let leader = sim.leaders.first {
                    let r = sim.raft(leader)
                    if let p = pending, r.commitIndex >= p.index, r.term(at: p.index) == p.term {
                        done = true
                        break
                    }
                    if pending == nil || r.term != pending!.term {
                        if case .accepted(let index, let term)? = try sim.propose(at: leader, Array("final".utf8)) {
                            pending = (index, term)
                        }
                    }
                }
                try sim.tickAll()
            }
            guard done else {
                throw SimFailure(
                    description: "liveness: no leader committed a proposal within \(livenessTicks) ticks of healing")
            }
            try sim.checkLogMatchingFully()
            stats.ticks += sim.now - steps
            stats.committed = sim.maxCommitted
            stats.reads = sim.readsServed
            return stats
        } catch let failure as SimFailure {
            if let trace = sim.trace {
                print(trace.suffix(Int(ProcessInfo.processInfo.environment["RAFT_TRACE_LINES"] ?? "300") ?? 300).joined(separator: "\n"))
            }
            throw failure
        }
    }

    static func changeMembership(_ sim: Simulation, leader: NodeID, pool: [NodeID], rng: inout Xoshiro) throws {
        let config = sim.raft(leader).membership
        var options: [ConfigChange] = []
        for id in pool where !config.members.contains(id) {
            options.append(.addVoter(id))
            options.append(.addLearner(id))
        }
        for id in config.learners.sorted() {
            options.append(.promoteLearner(id))
            options.append(.removeNode(id))
        }
        if config.voters.count > 3 {
            for id in config.voters.sorted() { options.append(.removeNode(id)) }
        }
        guard !options.isEmpty else { return }
        let change = options[rng.below(options.count)]
        let r = sim.withRaft(leader) { $0.proposeConfigChange(change) }
        sim.note("config change \(change) at \(leader): \(String(describing: r))")
        try sim.check()
    }
}

// A trap inside the core kills the whole test process, so the seeds in flight are kept
// where a signal handler can print them with the replay command.
nonisolated(unsafe) private var seedsInFlight: [UInt64] = Array(repeating: 0, count: 64)

private func writeStderr(_ s: String) {
    var bytes = Array(s.utf8)
    _ = write(2, &bytes, bytes.count)
}

private func installCrashReporter() {
    let handler: @convention(c) (Int32) -> Void = { sig in
        // Only async-signal-safe work here: format digits by hand and write(2).
        var buf = [UInt8](repeating: 0, count: 4096)
        var n = 0
        func put(_ s: StaticString) {
            s.withUTF8Buffer { for b in $0 where n < buf.count { buf[n] = b; n += 1 } }
        }
        func putNumber(_ v: UInt64) {
            var digits: [UInt8] = []
            var x = v
            repeat {
                digits.append(UInt8(48 + x % 10))
                x /= 10
            } while x > 0
            for d in digits.reversed() where n < buf.count { buf[n] = d; n += 1 }
        }
        put("\nRAFT SIMULATION CRASHED (signal) while running seed(s):")
        for s in seedsInFlight where s != 0 {
            put(" ")
            putNumber(s)
        }
        put("\nreplay one with: RAFT_SEED=<seed> swift test --filter RaftSimulationTests\n")
        _ = write(2, &buf, n)
        signal(sig, SIG_DFL)
        raise(sig)
    }
    signal(SIGILL, handler)
    signal(SIGTRAP, handler)
    signal(SIGSEGV, handler)
}

/// Hands out seed numbers to the parallel workers.
final class SeedCounter: Sendable {
    let value = Mutex<UInt64>(0)
}

@Suite(.cpuBoundOffThePool, .watchesCooperativePool) struct RaftSimulationTests {
    static let env = ProcessInfo.processInfo.environment

    /// A driver that sends its votes and append acknowledgements before they are on disk
    /// (and crashes in between) breaks Raft. These seeds catch it, each through a different
    /// invariant, and pass with the real order. They were found by running seeds 1...600 with
    /// `brokenDriver: true` (17 of the first 120 failed, mostly on durability; election safety
    /// first at 270); if RandomRun or the persistence policy changes, find new ones the same way.
    @Test(arguments: [
        (UInt64(39), "durability"), (30, "leader completeness"), (368, "election safety"), (129, "state machine safety"),
        (22, "durability"),
    ])
    func aDriverThatSendsBeforePersistingIsCaught(seed: UInt64, invariant: String) throws {
        do {
            _ = try RandomRun.run(seed: seed, brokenDriver: true)
            Issue.record("seed \(seed) no longer catches a driver that sends before persisting")
        } catch {
            #expect("\(error)".hasPrefix(invariant), "seed \(seed): \(error)")
        }
        do {
            _ = try RandomRun.run(seed: seed)
        } catch {
            Issue.record("seed \(seed) fails with the real driver too: \(error)")
        }
    }

    @Test func randomSeeds() async throws {
        if let seed = Self.env["RAFT_SEED"].flatMap(UInt64.init) {
            do {
                let stats = try RandomRun.run(seed: seed, trace: true)
                print("RAFT_SEED=\(seed) passed: \(stats)")
            } catch {
                Issue.record("seed \(seed) failed: \(error)")
            }
            return
        }
        installCrashReporter()
        let seconds = Self.env["RAFT_SIM_SECONDS"].flatMap(Double.init) ?? 90
        let forcedCount = Self.env["RAFT_SIM_SEEDS"].flatMap(Int.init)
        let base = Self.env["RAFT_SEED_BASE"].flatMap(UInt64.init) ?? 1
        // One worker by default: the rest of the suite (real processes with timing checks) needs a core.
        let workers = max(1, min(Self.env["RAFT_SIM_WORKERS"].flatMap(Int.init) ?? 1, 8))
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        let next = SeedCounter()
        let start = ContinuousClock.now

        let results = await withTaskGroup(of: (runs: Int, ticks: Int, reads: Int, failures: [String]).self) { group in
            for worker in 0..<workers {
                group.addTask {
                    var runs = 0
                    var ticks = 0
                    var reads = 0
                    var failures: [String] = []
                    while true {
                        let i = next.value.withLock { value -> UInt64 in
                            defer { value += 1 }
                            return value
                        }
                        if let forcedCount {
                            if i >= UInt64(forcedCount) { break }
                        } else if ContinuousClock.now >= deadline {
                            break
                        }
                        let seed = base + i
                        seedsInFlight[worker] = seed
                        do {
                            let stats = try RandomRun.run(seed: seed)
                            ticks += stats.ticks
                            reads += stats.reads
                        } catch {
                            failures.append(
                                "seed \(seed): \(error)\n  replay: RAFT_SEED=\(seed) swift test --filter RaftSimulationTests")
                        }
                        seedsInFlight[worker] = 0
                        runs += 1
                        // Seeds are CPU-bound; give the shared concurrency pool back between them so
                        // tests running alongside (real replicas, agents) are not starved.
                        await Task.yield()
                    }
                    return (runs, ticks, reads, failures)
                }
            }
            var total = (runs: 0, ticks: 0, reads: 0, failures: [String]())
            for await r in group {
                total.runs += r.runs
                total.ticks += r.ticks
                total.reads += r.reads
                total.failures += r.failures
            }
            return total
        }
        let elapsed = ContinuousClock.now - start
        print(
            "RaftSimulationTests: \(results.runs) seeds (\(base)..<\(base + UInt64(results.runs))), "
                + "\(results.ticks) ticks, \(results.reads) linearizable reads checked, "
                + "\(results.failures.count) failed, \(elapsed) on \(workers) workers")
        for f in results.failures.prefix(20) {
            writeStderr(f + "\n")
            Issue.record(Comment(rawValue: f))
        }
        #expect(results.runs > 0)
    }
}

