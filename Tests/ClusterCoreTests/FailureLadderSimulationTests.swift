import CooperativePoolWatch
import SeededRandom
import SpecolaWire
import Testing
@testable import SpecolaClusterCore

/// The failure ladder against a simulated cluster over simulated time: agents that crash and come
/// back (their work keeps running meanwhile), partitions, BMCs that stop answering, hosts that lose
/// power, and leader changes that wipe the leader's soft state. Each node runs one workload; when
/// the ladder commits a node `fenced`, its workload starts on a ready node.
/// Property: no workload ever runs on two nodes at once, and the brake is never exceeded.
/// The tests are `async` so that `.cpuBoundOffThePool` moves them off the pool (a synchronous test
/// body runs on the pool whatever its traits say).
@Suite(.serialized, .cpuBoundOffThePool, .watchesCooperativePool) struct FailureLadderSimulationTests {
    static let policy = NodeHealth.Policy(suspectAfterMs: 1_000, downAfterMs: 2_000, selfFenceAfterMs: 3_000, leaseMarginMs: 2_000,
                                          maxFencedFraction: 0.34, stuckAfterMs: 30_000)

    /// Agents come back within the lease margin (systemd's RestartSec 2 s against a 5 s margin in
    /// production), so a restarted agent still stops its work before the coordinator moves it.
    @Test(arguments: 1...60) func noWorkloadRunsTwiceAndTheBrakeHolds(seed: Int) async {
        var world = LadderWorld(seed: UInt64(seed), nodeCount: 6, policy: Self.policy, agentDowntimeMs: 200...1_900)
        world.run(forMs: 240_000)
        #expect(world.violations.isEmpty, "seed \(seed): \(world.violations.first ?? "")\n\(world.trace.suffix(25).joined(separator: "\n"))")
        #expect(world.fencedCount > 0, "seed \(seed): nothing was ever fenced, so the run proved little")
    }

    /// The limit of lease fencing: an agent that stays dead past the lease plus the margin while its
    /// BMC does not answer cannot stop its work, and the coordinator moves it anyway. Closing this
    /// needs something that outlives the agent (a node watchdog, as Proxmox arms one).
    @Test func anAgentDeadPastTheMarginWithItsBMCDownLeavesItsWorkRunning() async {
        withKnownIssue("lease fencing assumes the agent restarts within the lease margin") {
            let safe = (1...60).allSatisfy { seed in
                var world = LadderWorld(seed: UInt64(seed), nodeCount: 6, policy: Self.policy, agentDowntimeMs: 200...8_000)
                world.run(forMs: 240_000)
                return world.violations.isEmpty
            }
            #expect(safe)
        }
    }

    /// The simulation must be able to fail: an agent that forgets its lease when it restarts (the
    /// bug fixed in the agent) runs its re-attached work on past the coordinator's count.
    @Test func anAgentThatForgetsItsLeaseOnRestartIsCaught() async {
        let caught = (1...60).contains { seed in
            var world = LadderWorld(seed: UInt64(seed), nodeCount: 6, policy: Self.policy, agentDowntimeMs: 200...1_900,
                                    agentsKeepTheirLease: false)
            world.run(forMs: 240_000)
            return world.violations.contains { $0.contains("runs on") }
        }
        #expect(caught, "no seed caught agents that restart without their lease")
    }

    /// And a leader that counts the lease from the committed last-seen time instead of from its own
    /// election (ignoring heartbeats the previous leader answered) is caught too.
    @Test func aLeaderThatCountsSilenceItDidNotWitnessIsCaught() async {
        let caught = (1...60).contains { seed in
            var world = LadderWorld(seed: UInt64(seed), nodeCount: 6, policy: Self.policy, agentDowntimeMs: 200...1_900,
                                    leaderCountsFromElection: false)
            world.run(forMs: 240_000)
            return world.violations.contains { $0.contains("runs on") }
        }
        #expect(caught, "no seed caught a leader that trusts silence it did not witness")
    }
}

/// The simulated cluster. Time is in ms; the leader runs a ladder pass every 250 ms.
struct LadderWorld {
    struct Node {
        var name: String
        var powered = true
        var agentUp = true
        var agentBackAtMs: Int64 = 0
        var cutOffUntilMs: Int64 = 0
        var bmcDeadUntilMs: Int64 = 0
        var poweredBackAtMs: Int64?
        /// The agent's lease: when it sent the last heartbeat a leader answered.
        var leaseRenewedAtMs: Int64?
        /// The same, as last written to the agent's data directory (at most once a second).
        var leaseOnDiskMs: Int64?
        var selfFenced = false
        /// Workloads whose instances run here.
        var running: Set<Int> = []
    }

    var random: SeededRandom
    let policy: NodeHealth.Policy
    let agentDowntimeMs: ClosedRange<Int64>
    let agentsKeepTheirLease: Bool
    let leaderCountsFromElection: Bool
    let reportEveryMs: Int64 = 5_000
    var now: Int64 = 1_000_000
    var nodes: [Node]
    /// The committed records (replicated state).
    var records: [String: Specola_V1_Node] = [:]
    /// Where each workload is meant to run (committed placement).
    var placement: [Int: String] = [:]
    var ladder: FailureLadder
    var leaderSinceMs: Int64
    var electionUntilMs: Int64 = 0
    /// The leader's soft view of contact, lost with leadership.
    var lastContact: [String: Int64] = [:]
    var pendingPowerOff: [(node: String, atMs: Int64, works: Bool)] = []
    var violations: [String] = []
    var fencedCount = 0
    /// What happened, for replaying a failing seed.
    var trace: [String] = []

    mutating func note(_ event: String) { trace.append("\(now): \(event)") }

    init(seed: UInt64, nodeCount: Int, policy: NodeHealth.Policy, agentDowntimeMs: ClosedRange<Int64>,
         agentsKeepTheirLease: Bool = true, leaderCountsFromElection: Bool = true) {
        random = SeededRandom(seed: seed)
        self.policy = policy
        self.agentDowntimeMs = agentDowntimeMs
        self.agentsKeepTheirLease = agentsKeepTheirLease
        self.leaderCountsFromElection = leaderCountsFromElection
        nodes = (1...nodeCount).map { Node(name: "n\($0)") }
        let bmcs = Dictionary(uniqueKeysWithValues: nodes.map { ($0.name, HostPort(host: "bmc-" + $0.name, port: 623)) })
        ladder = FailureLadder(settings: .init(policy: policy, bmcAddresses: bmcs, bmcCredentials: true, retryPowerOffAfterMs: 2_000))
        leaderSinceMs = now
        for index in nodes.indices {
            nodes[index].running = [index]
            nodes[index].leaseRenewedAtMs = now
            nodes[index].leaseOnDiskMs = now
            placement[index] = nodes[index].name
            records[nodes[index].name] = .with {
                $0.name = nodes[index].name
                $0.committedStatus = .ready
                $0.statusSinceUnixMs = now
                $0.lastSeenUnixMs = now
            }
        }
    }

    mutating func run(forMs duration: Int64) {
        let end = now + duration
        while now < end {
            now += 50
            injectFaults()
            heal()
            exchangeHeartbeats()
            agentsCheckTheirLease()
            deliverPowerOffs()
            if now % 250 == 0 && now >= electionUntilMs { leaderPass() }
            check()
            if !violations.isEmpty { return }
        }
    }

    func reachable(_ node: Node) -> Bool {
        node.powered && node.agentUp && now >= node.cutOffUntilMs && now >= electionUntilMs
    }

    mutating func injectFaults() {
        guard Int.random(in: 0..<40, using: &random) == 0 else { return }
        let index = Int.random(in: 0..<nodes.count, using: &random)
        switch Int.random(in: 0..<6, using: &random) {
        case 0 where nodes[index].agentUp && nodes[index].powered:
            // The agent dies; its containers do not. systemd restarts it after a while.
            nodes[index].agentUp = false
            nodes[index].agentBackAtMs = now + Int64.random(in: agentDowntimeMs, using: &random)
            note("agent of \(nodes[index].name) dies until \(nodes[index].agentBackAtMs)")
        case 1:
            nodes[index].cutOffUntilMs = now + Int64.random(in: 500...20_000, using: &random)
            note("\(nodes[index].name) cut off until \(nodes[index].cutOffUntilMs)")
        case 2:
            nodes[index].bmcDeadUntilMs = now + Int64.random(in: 1_000...30_000, using: &random)
            note("BMC of \(nodes[index].name) dead until \(nodes[index].bmcDeadUntilMs)")
        case 3 where nodes[index].powered:
            nodes[index].powered = false
            nodes[index].running = []
            nodes[index].poweredBackAtMs = now + Int64.random(in: 5_000...40_000, using: &random)
            note("\(nodes[index].name) loses power")
        case 4:
            // A new leader: its soft state (contacts, power-off attempts) starts empty.
            electionUntilMs = now + Int64.random(in: 300...3_000, using: &random)
            leaderSinceMs = electionUntilMs
            lastContact = [:]
            ladder = FailureLadder(settings: ladder.settings)
            pendingPowerOff = []
            note("leader change; elected at \(electionUntilMs)")
        default:
            break
        }
    }

    mutating func heal() {
        for index in nodes.indices {
            if !nodes[index].agentUp && nodes[index].powered && now >= nodes[index].agentBackAtMs {
                nodes[index].agentUp = true
                nodes[index].selfFenced = false
                // The restarted agent re-attaches whatever still runs, with the lease from disk.
                nodes[index].leaseRenewedAtMs = agentsKeepTheirLease ? nodes[index].leaseOnDiskMs : nil
            }
            if let back = nodes[index].poweredBackAtMs, !nodes[index].powered, now >= back {
                powerOn(index)
            }
        }
    }

    mutating func powerOn(_ index: Int) {
        nodes[index].powered = true
        nodes[index].agentUp = true
        nodes[index].poweredBackAtMs = nil
        nodes[index].selfFenced = false
        // A new boot: nothing runs, and no lease survives.
        nodes[index].leaseRenewedAtMs = nil
        nodes[index].leaseOnDiskMs = nil
        nodes[index].running = []
    }

    mutating func exchangeHeartbeats() {
        guard now % 200 == 0 else { return }
        for index in nodes.indices where reachable(nodes[index]) {
            let name = nodes[index].name
            lastContact[name] = now
            if now % reportEveryMs == 0 { records[name]?.lastSeenUnixMs = now }
            nodes[index].leaseRenewedAtMs = now
            if now - (nodes[index].leaseOnDiskMs ?? 0) >= 1_000 { nodes[index].leaseOnDiskMs = now }
            if nodes[index].selfFenced { nodes[index].selfFenced = false }
            // A reachable agent stops instances the leader placed elsewhere.
            nodes[index].running = nodes[index].running.filter { placement[$0] == name }
        }
        // Placed workloads start on reachable agents.
        for (workload, name) in placement {
            guard let index = nodes.firstIndex(where: { $0.name == name }), reachable(nodes[index]) else { continue }
            nodes[index].running.insert(workload)
        }
    }

    mutating func agentsCheckTheirLease() {
        for index in nodes.indices where nodes[index].agentUp && nodes[index].powered && !nodes[index].selfFenced {
            guard let renewed = nodes[index].leaseRenewedAtMs, now - renewed >= policy.selfFenceAfterMs else { continue }
            note("\(nodes[index].name) self-fences (lease renewed at \(renewed))")
            nodes[index].selfFenced = true
            nodes[index].running = []
        }
    }

    mutating func deliverPowerOffs() {
        var due: [(node: String, works: Bool)] = []
        pendingPowerOff.removeAll { pending in
            guard now >= pending.atMs else { return false }
            due.append((pending.node, pending.works))
            return true
        }
        for (name, works) in due {
            guard let index = nodes.firstIndex(where: { $0.name == name }) else { continue }
            if works {
                nodes[index].powered = false
                nodes[index].running = []
                nodes[index].poweredBackAtMs = nil
                execute(ladder.onPowerOffResult(node: name, .confirmedOff, nowUnixMs: now))
            } else {
                execute(ladder.onPowerOffResult(node: name, .failed("BMC timed out"), nowUnixMs: now))
            }
        }
    }

    mutating func leaderPass() {
        let views = nodes.map { node in
            FailureLadder.NodeView(node: records[node.name]!, lastContactUnixMs: lastContact[node.name] ?? 0)
        }
        execute(ladder.onPass(views, leaderSinceUnixMs: leaderCountsFromElection ? leaderSinceMs : 0, nowUnixMs: now))
    }

    mutating func execute(_ directives: [HealthDirective]) {
        for directive in directives {
            switch directive {
            case .commit(let name, let status, let reason, _):
                note("commit \(name) \(status): \(reason)")
                records[name]?.committedStatus = status
                records[name]?.statusSinceUnixMs = now
                if status == .fenced { failOver(from: name) }
                execute(ladder.onCommitted(node: name, status: status, nowUnixMs: now))
            case .powerOff(let name, _):
                guard let node = nodes.first(where: { $0.name == name }) else { continue }
                let works = now >= node.bmcDeadUntilMs
                pendingPowerOff.append((name, now + (works ? 300 : 1_500), works))
            case .powerOn(let name, _):
                if let index = nodes.firstIndex(where: { $0.name == name }), !nodes[index].powered { powerOn(index) }
            case .takeOutOfService, .raise, .resolve, .report:
                break
            }
        }
    }

    mutating func failOver(from name: String) {
        fencedCount += 1
        let ready = nodes.map(\.name).filter { records[$0]?.committed == .ready && $0 != name }
        for (workload, host) in placement where host == name {
            guard let target = ready.randomElement(using: &random) else { continue }
            placement[workload] = target
            note("workload \(workload) placed on \(target)")
        }
    }

    mutating func check() {
        var hosts: [Int: [String]] = [:]
        for node in nodes where node.powered {
            for workload in node.running { hosts[workload, default: []].append(node.name) }
        }
        for (workload, names) in hosts where names.count > 1 {
            violations.append("at \(now) ms workload \(workload) runs on \(names.sorted().joined(separator: " and "))")
        }
        let outOfService = records.values.filter { $0.committed.isFencingOrFenced }.count
        let limit = ladder.brakeLimit(nodeCount: nodes.count)
        if outOfService > limit {
            violations.append("at \(now) ms \(outOfService) nodes fencing or fenced, over the brake's \(limit)")
        }
    }
}
