import Foundation
import SpecolaAlerting
import SpecolaAlertDelivery
import SpecolaJobs
import SpecolaProtocol
import Testing
@testable import SpecolaClusterCore
@testable import SpecolaCoordinator
import CooperativePoolWatch

/// HA workloads in the replicated state and the planner that moves them:
/// restarts, relocations only after fencing, limits, and error.
@Suite(.watchesCooperativePool) struct WorkloadBookTests {
    static let gib: Int64 = 1 << 30

    /// Nodes with 4 cores, 8 GiB, libvirt and podman reachable.
    static func cluster(_ names: [String] = ["n1", "n2"]) -> ClusterState {
        var state = ClusterState()
        for (index, name) in names.enumerated() {
            _ = state.apply(.registerNode(name: name, address: "", agentVersion: "t", labels: [:], autoAccept: true, atUnixMs: 1))
            let facts = Specola_V1_NodeFacts.with {
                $0.capacity = .with { $0.cpuCores = 4; $0.memoryBytes = UInt64(8 * gib) }
                $0.vms = .with { $0.available = true }
                $0.containers = .with { $0.available = true }
            }
            _ = state.apply(.applyReport(node: name, report: .with { $0.seq = 1; $0.full = true; $0.facts = facts },
                                         receivedAtUnixMs: Int64(index + 1)))
        }
        return state
    }

    static func vm(_ name: String, home: String = "", restarts: UInt32 = 1, relocations: UInt32 = 1, memory: Int64 = gib) -> Specola_V1_Command {
        .workload(name, at: 10, by: "user/admin", .define(.with {
            $0.kind = "vm"
            $0.definition = "<domain type='test'><name>\(name)</name></domain>"
            $0.homeNode = home
            $0.maxRestarts = restarts
            $0.maxRelocations = relocations
            $0.cpuMillicores = 1000
            $0.memoryBytes = memory
        }))
    }

    static func health(_ node: String, _ status: NodeStatus) -> Specola_V1_Command {
        .with {
            $0.proposedAtUnixMs = 50
            $0.nodeHealth = .with { $0.node = node; $0.step = status; $0.reason = "test" }
        }
    }

    /// Per-node report sequence numbers, so each event report is new.
    var seqs: [String: UInt64] = [:]

    mutating func event(_ node: String, _ name: String, _ generation: UInt64, _ kind: Specola_V1_WorkloadEventKind, at: Int64 = 100) -> Specola_V1_Command {
        let seq = (seqs[node] ?? 1) + 1
        seqs[node] = seq
        return .applyReport(node: node, report: .with {
            $0.seq = seq
            $0.workloadEvents = [.with {
                $0.name = name
                $0.workloadKind = "vm"
                $0.generation = generation
                $0.kind = kind
                $0.message = "\(kind)"
            }]
        }, receivedAtUnixMs: at)
    }

    static func ready(_ state: ClusterState, except down: Set<String> = []) -> [String: NodeStatus] {
        Dictionary(uniqueKeysWithValues: state.nodes.keys.map { ($0, down.contains($0) ? NodeStatus.down : .ready) })
    }

    /// Applies every decision of one planner pass, as the controller would.
    @discardableResult
    static func pass(_ state: inout ClusterState, status: [String: NodeStatus]? = nil, at: Int64 = 200) -> [WorkloadPlanner.Decision] {
        let plan = WorkloadPlanner.plan(state: state, status: status ?? ready(state))
        for decision in plan.decisions {
            let outcome = state.apply(command(decision, at: at))
            #expect(outcome == .done, "\(decision) was refused: \(outcome)")
        }
        return plan.decisions
    }

    static func command(_ decision: WorkloadPlanner.Decision, at: Int64) -> Specola_V1_Command {
        switch decision {
        case let .place(name, generation, node, reason, message):
            return .workload(name, at: at, by: "controller", .place(.with {
                $0.generation = generation; $0.node = node; $0.reason = reason; $0.message = message
            }))
        case let .fail(name, generation, reason):
            return .workload(name, at: at, by: "controller", .fail(.with { $0.generation = generation; $0.reason = reason }))
        case let .release(name, generation, reason):
            return .workload(name, at: at, by: "controller", .release(.with { $0.generation = generation; $0.reason = reason }))
        case let .evacuate(name, generation, reason):
            return .workload(name, at: at, by: "controller", .evacuate(.with { $0.generation = generation; $0.reason = reason }))
        }
    }

    static func workload(_ state: ClusterState, _ name: String) -> Specola_V1_Workload? { state.workloads.workloads[name] }

    @Test mutating func aWorkloadStartsOnItsHomeNodeAndRunsOnceTheAgentSaysSo() {
        var state = Self.cluster()
        #expect(state.apply(Self.vm("web", home: "n2")) == .done)
        #expect(Self.workload(state, "web")?.phase == "pending")
        if case .rejected = state.apply(Self.vm("web")) {} else { Issue.record("a second definition of the same name must be refused") }
        if case .rejected = state.apply(Self.vm("bad/name")) {} else { Issue.record("a name with '/' must be refused") }

        #expect(Self.pass(&state) == [.place(name: "web", generation: 1, node: "n2", reason: "start", message: "started on n2")])
        #expect(Self.workload(state, "web")?.phase == "starting")
        let due = state.workloads.dueInstructions()
        #expect(due.map(\.node) == ["n2"])
        #expect(due.first?.instruction.id == "wl/web/1")
        #expect(due.first?.instruction.startWorkload.definition.contains("<name>web</name>") == true)
        // A repeated pass changes nothing while the start is in flight.
        #expect(Self.pass(&state).isEmpty)

        _ = state.apply(event("n2", "web", 1, .started, at: 120))
        #expect(Self.workload(state, "web")?.phase == "running")
        #expect(Self.workload(state, "web")?.startedAtUnixMs == 120)
        #expect(state.workloads.dueInstructions().isEmpty)
        // Only the node that runs the current instance moves it; another node claiming it gets a stop.
        _ = state.apply(event("n1", "web", 1, .exited))
        #expect(Self.workload(state, "web")?.phase == "running")
        _ = state.apply(event("n1", "web", 1, .started))
        #expect(Self.workload(state, "web")?.phase == "running")
        #expect(state.workloads.dueInstructions().map { "\($0.node) \($0.instruction.id)" } == ["n1 wl/web/1/stop"])
    }

    @Test mutating func crashesAreRestartedThenRelocatedThenTheWorkloadGoesToError() {
        var state = Self.cluster()
        _ = state.apply(Self.vm("db", home: "n1", restarts: 2, relocations: 1))
        Self.pass(&state)
        _ = state.apply(event("n1", "db", 1, .started))

        // Two restarts in place...
        for generation in UInt64(1)...2 {
            _ = state.apply(event("n1", "db", generation, .exited))
            #expect(Self.workload(state, "db")?.phase == "crashed")
            let decisions = Self.pass(&state)
            guard case .place(_, generation + 1, "n1", "restart", _)? = decisions.first else {
                Issue.record("expected a restart on n1, got \(decisions)"); return
            }
            _ = state.apply(event("n1", "db", generation + 1, .started))
        }
        #expect(Self.workload(state, "db")?.restarts == 2)
        // ...then the restart limit moves it to the other node, with a fresh restart count...
        _ = state.apply(event("n1", "db", 3, .failedToStart))
        let relocation = Self.pass(&state)
        guard case .place(_, 4, "n2", "relocate", _)? = relocation.first else { Issue.record("expected a relocation, got \(relocation)"); return }
        #expect(Self.workload(state, "db")?.relocations == 1)
        #expect(Self.workload(state, "db")?.restarts == 0)
        _ = state.apply(event("n2", "db", 4, .started))
        _ = state.apply(event("n2", "db", 4, .exited))
        Self.pass(&state)
        _ = state.apply(event("n2", "db", 5, .started))
        _ = state.apply(event("n2", "db", 5, .exited))
        Self.pass(&state)
        _ = state.apply(event("n2", "db", 6, .exited))
        // ...and once both limits are spent it goes to error and stays there.
        let last = Self.pass(&state)
        guard case .fail(_, 6, let reason)? = last.first else { Issue.record("expected a failure, got \(last)"); return }
        #expect(reason.contains("restart limit 2 and relocation limit 1 reached"), "\(reason)")
        #expect(Self.workload(state, "db")?.phase == "error")
        #expect(Self.pass(&state).isEmpty)
        // Spent limits are refused by the state itself, whatever a controller proposes.
        let extra = Self.command(.place(name: "db", generation: 7, node: "n1", reason: "relocate", message: ""), at: 300)
        if case .rejected = state.apply(extra) {} else { Issue.record("a relocation beyond the limit must be refused") }

        // Enabling again starts it with fresh limits.
        _ = state.apply(.workload("db", at: 400, by: "user/admin", .setDesired("started")))
        #expect(Self.workload(state, "db")?.phase == "pending")
        #expect(Self.workload(state, "db")?.restarts == 0 && Self.workload(state, "db")?.relocations == 0)
        guard case .place(_, 7, "n1", "start", _)? = Self.pass(&state).first else { Issue.record("expected a fresh start on the home node"); return }
    }

    @Test mutating func aLongRunSinceTheLastStartResetsTheRestartCount() {
        var state = Self.cluster(["n1"])
        _ = state.apply(Self.vm("svc", restarts: 1, relocations: 0))
        Self.pass(&state)
        _ = state.apply(event("n1", "svc", 1, .started, at: 1_000))
        _ = state.apply(event("n1", "svc", 1, .exited, at: 2_000))
        Self.pass(&state)
        #expect(Self.workload(state, "svc")?.restarts == 1)
        _ = state.apply(event("n1", "svc", 2, .started, at: 3_000))
        _ = state.apply(event("n1", "svc", 2, .exited, at: 3_000 + WorkloadBook.stableRunMs))
        guard case .place(_, 3, "n1", "restart", _)? = Self.pass(&state).first else { Issue.record("a crash after a long run gets a restart"); return }
    }

    @Test mutating func aFenceAfterALongRunStartsTheRelocationCountAfresh() {
        var state = Self.cluster(["n1", "n2"])
        _ = state.apply(Self.vm("db", home: "n1", relocations: 1))
        Self.pass(&state)
        _ = state.apply(event("n1", "db", 1, .started, at: 100))
        _ = state.apply(Self.health("n1", .fenced))
        Self.pass(&state)
        #expect(Self.workload(state, "db")?.node == "n2" && Self.workload(state, "db")?.relocations == 1)
        _ = state.apply(Self.health("n1", .ready))

        // n2 dies soon after: the one relocation is spent.
        _ = state.apply(event("n2", "db", 2, .started, at: 200))
        var soon = state
        _ = soon.apply(.with {
            $0.proposedAtUnixMs = 200 + WorkloadBook.stableRunMs - 1
            $0.nodeHealth = .with { $0.node = "n2"; $0.step = .fenced; $0.reason = "test" }
        })
        guard case .fail? = Self.pass(&soon).first else { Issue.record("a second fence within the stable time is a failure"); return }

        // n2 dies after a long run: a fresh count, so it moves back to n1.
        _ = state.apply(.with {
            $0.proposedAtUnixMs = 200 + WorkloadBook.stableRunMs
            $0.nodeHealth = .with { $0.node = "n2"; $0.step = .fenced; $0.reason = "test" }
        })
        guard case .place(_, 3, "n1", "relocate", _)? = Self.pass(&state).first else { Issue.record("expected a relocation to n1"); return }
        #expect(Self.workload(state, "db")?.relocations == 1)
    }

    @Test func theJobSchedulerLeavesOutWhatHAWorkloadsHold() {
        var state = Self.cluster(["n1", "n2"])
        _ = state.apply(Self.vm("big", home: "n1", memory: 6 * Self.gib))
        Self.pass(&state)
        let input = SchedulingInput(state: state, status: { _ in .ready }, nowUnixMs: 300)
        let n1 = input.cluster.nodes.first { $0.name == "n1" }!, n2 = input.cluster.nodes.first { $0.name == "n2" }!
        #expect(n1.allocated.cpuMillicores == 1000 && n1.allocated.memoryBytes == 6 * Self.gib, "\(n1.allocated)")
        #expect(n2.allocated == .zero)
    }

    @Test mutating func nothingMovesOffADownNodeUntilItIsFenced() {
        var state = Self.cluster()
        _ = state.apply(Self.vm("web", home: "n1"))
        Self.pass(&state)
        _ = state.apply(event("n1", "web", 1, .started))

        // n1 stops answering: it may still run the VM, so nothing starts elsewhere.
        let down = Self.ready(state, except: ["n1"])
        let plan = WorkloadPlanner.plan(state: state, status: down)
        #expect(plan.decisions.isEmpty)
        #expect(plan.waiting["web"]?.contains("waiting until it is fenced") == true, "\(plan.waiting)")
        _ = state.apply(Self.health("n1", .fencing))
        #expect(WorkloadPlanner.plan(state: state, status: down).decisions.isEmpty)
        // A controller that tried anyway is refused by the state.
        let early = Self.command(.place(name: "web", generation: 2, node: "n2", reason: "relocate", message: ""), at: 300)
        guard case .rejected(let why) = state.apply(early) else { Issue.record("a relocation before fencing must be refused"); return }
        #expect(why.contains("double start"))

        // Fenced: proven off, so it moves.
        _ = state.apply(Self.health("n1", .fenced))
        #expect(nodeIsFenced(state, "n1"))
        #expect(Self.pass(&state, status: down) == [.place(name: "web", generation: 2, node: "n2", reason: "relocate",
                                                           message: "node n1 was fenced; relocated from n1")])
        // Nothing is ever placed on a fenced node.
        let back = Self.command(.place(name: "web", generation: 3, node: "n1", reason: "relocate", message: ""), at: 300)
        if case .rejected = state.apply(back) {} else { Issue.record("a fenced node takes no workload") }

        // n1 comes back with its old instance: it is a stray and gets a stop.
        _ = state.apply(Self.health("n1", .ready))
        _ = state.apply(event("n1", "web", 1, .started))
        #expect(Self.workload(state, "web")?.node == "n2")
        let stops = state.workloads.dueInstructions().filter { $0.node == "n1" }
        #expect(stops.map(\.instruction.id) == ["wl/web/1/stop"])
        _ = state.apply(event("n1", "web", 1, .stopped))
        #expect(state.workloads.strays.isEmpty)
    }

    @Test mutating func aFencedNodeWithNoRelocationLeftPutsTheWorkloadInError() {
        var state = Self.cluster()
        _ = state.apply(Self.vm("batch", relocations: 0))
        Self.pass(&state)
        let node = Self.workload(state, "batch")!.node
        _ = state.apply(event(node, "batch", 1, .started))
        _ = state.apply(Self.health(node, .fenced))
        guard case .fail(_, 1, let reason)? = Self.pass(&state).first else { Issue.record("expected error"); return }
        #expect(reason.contains("was fenced; relocation limit 0 reached"))
    }

    @Test mutating func disableStopsAndADisabledWorkloadOnAFencedNodeIsReleased() {
        var state = Self.cluster()
        _ = state.apply(Self.vm("web", home: "n1"))
        Self.pass(&state)
        _ = state.apply(event("n1", "web", 1, .started))
        _ = state.apply(.workload("web", at: 300, by: "user/admin", .setDesired("disabled")))
        #expect(Self.workload(state, "web")?.phase == "stopping")
        #expect(state.workloads.dueInstructions().map(\.instruction.id) == ["wl/web/1/stop"])
        if case .rejected = state.apply(.workload("web", at: 301, by: "user/admin", .delete(.init()))) {} else {
            Issue.record("a workload that may run cannot be deleted")
        }
        // The node dies while stopping; once it is fenced nothing runs, and nothing is started.
        _ = state.apply(Self.health("n1", .fenced))
        #expect(Self.pass(&state) == [.release(name: "web", generation: 1, reason: "node n1 was fenced")])
        #expect(Self.workload(state, "web")?.phase == "stopped")
        #expect(state.apply(.workload("web", at: 302, by: "user/admin", .delete(.init()))) == .done)
        #expect(state.workloads.workloads.isEmpty)
    }

    @Test mutating func drainingMovesAWorkloadWithoutSpendingItsLimits() {
        var state = Self.cluster()
        _ = state.apply(Self.vm("web", home: "n1", restarts: 0, relocations: 0))
        Self.pass(&state)
        _ = state.apply(event("n1", "web", 1, .started))
        _ = state.apply(.with { $0.setNodeScheduling = .with { $0.node = "n1"; $0.cordoned = true; $0.draining = true } })
        #expect(Self.pass(&state) == [.evacuate(name: "web", generation: 1, reason: "node n1 is draining")])
        #expect(state.workloads.dueInstructions().map { "\($0.node) \($0.instruction.id)" } == ["n1 wl/web/1/stop"])
        // Nothing starts elsewhere until n1's agent says it stopped.
        #expect(Self.pass(&state).isEmpty)
        _ = state.apply(event("n1", "web", 1, .stopped))
        #expect(Self.workload(state, "web")?.phase == "pending")
        #expect(Self.pass(&state) == [.place(name: "web", generation: 2, node: "n2", reason: "start", message: "started on n2")])
        #expect(Self.workload(state, "web")?.relocations == 0 && Self.workload(state, "web")?.restarts == 0)
    }

    @Test func placementIsBestFitAndSkipsNodesThatCannotTakeIt() {
        var state = Self.cluster(["n1", "n2", "n3"])
        _ = state.apply(.with { $0.setNodeScheduling = .with { $0.node = "n3"; $0.cordoned = true } })
        _ = state.apply(Self.vm("big", home: "n1", memory: 6 * Self.gib))
        var copy = state
        Self.pass(&copy)
        // n1 now has 2 GiB left, n2 8 GiB: a 2 GiB VM fits n1 best; a 4 GiB one only n2; n3 is cordoned.
        _ = copy.apply(Self.vm("small", memory: 2 * Self.gib))
        _ = copy.apply(Self.vm("medium", memory: 4 * Self.gib))
        let placed = Self.pass(&copy).compactMap { decision -> String? in
            if case let .place(name, _, node, _, _) = decision { return "\(name)@\(node)" }
            return nil
        }
        #expect(placed == ["medium@n2", "small@n1"])
        _ = copy.apply(Self.vm("huge", memory: 64 * Self.gib))
        let plan = WorkloadPlanner.plan(state: copy, status: Self.ready(copy))
        #expect(plan.decisions.isEmpty)
        #expect(plan.waiting["huge"]?.contains("no ready, uncordoned node with libvirt") == true)
    }

    @Test mutating func aWorkloadInErrorRaisesOneAlertThatResolvesWhenItIsEnabled() {
        var state = Self.cluster()
        _ = state.apply(Self.vm("db", home: "n1", restarts: 0, relocations: 0))
        Self.pass(&state)
        _ = state.apply(event("n1", "db", 1, .exited))
        Self.pass(&state)
        #expect(Self.workload(state, "db")?.phase == "error")
        var rules = AlertRuleEvaluator()
        func evaluate(at now: Int64) -> [AlertChange] {
            let changes = rules.evaluate(AlertRuleInput(state: state, status: Self.ready(state), lastContactUnixMs: [:], nowUnixMs: now))
            AlertFixture.commit(changes, to: &state, at: now)
            return changes
        }
        #expect(evaluate(at: 1_000).count == 1)
        let alert = state.alerts.alerts.values.first { $0.rule == BuiltinRule.workloadError }
        #expect(alert?.status == .firing)
        #expect(alert?.labels == ["kind": "vm", "workload": "db", "node": "n1"])
        #expect(alert?.description.contains("restart limit 0 and relocation limit 0 reached") == true, "\(alert?.description ?? "")")
        #expect(evaluate(at: 2_000).isEmpty, "level-triggered: it fires once")
        _ = state.apply(.workload("db", at: 3_000, by: "user/admin", .setDesired("started")))
        #expect(evaluate(at: 3_000).count == 1)
        #expect(state.alerts.alerts.values.first { $0.rule == BuiltinRule.workloadError }?.status == .resolved)
    }

    @Test mutating func theSnapshotRestoresAnEqualState() throws {
        var state = Self.cluster()
        _ = state.apply(Self.vm("web", home: "n1"))
        _ = state.apply(Self.vm("db"))
        Self.pass(&state)
        _ = state.apply(event("n1", "web", 1, .started))
        _ = state.apply(event("n2", "ghost", 4, .started))
        #expect(state.workloads.strays.count == 1)
        let image = state.snapshot()
        let restored = try ClusterState(snapshot: image)
        #expect(try restored.snapshot().serializedBytes() as [UInt8] == image.serializedBytes() as [UInt8])
        #expect(restored.workloads.workloads["web"]?.phase == "running")
        #expect(restored.workloads.strays.keys.sorted() == ["wl/ghost/4"])
        #expect(restored.workloads.dueInstructions().map(\.instruction.id) == state.workloads.dueInstructions().map(\.instruction.id))
    }

    @Test func domainXMLAndKubeYAMLAreReadForNameAndNeeds() throws {
        let xml = """
            <domain type='kvm'>
              <name>web1</name>
              <memoryBacking><hugepages/></memoryBacking>
              <memory unit='MiB'>2048</memory>
              <vcpu placement='static'>2</vcpu>
              <metadata><name>not-this</name></metadata>
            </domain>
            """
        #expect(try WorkloadDefinition.inspect(kind: .vm, xml) == WorkloadDefinition(name: "web1", cpuMillicores: 2000, memoryBytes: 2 << 30))
        #expect(throws: WorkloadDefinition.Problem.self) { try WorkloadDefinition.inspect(kind: .vm, "<domain><vcpu>1</vcpu></domain>") }
        let yaml = """
            apiVersion: v1
            kind: Pod
            metadata: {name: api}
            spec:
              containers:
              - name: a
                image: x
                resources: {requests: {cpu: 250m, memory: 64Mi}}
              - name: b
                image: y
                resources: {requests: {cpu: "0.5", memory: 1Gi}}
            """
        #expect(try WorkloadDefinition.inspect(kind: .pod, yaml) == WorkloadDefinition(name: "api", cpuMillicores: 750, memoryBytes: (64 << 20) + (1 << 30)))
        #expect(throws: WorkloadDefinition.Problem.self) { try WorkloadDefinition.inspect(kind: .pod, "kind: Deployment\nmetadata: {name: x}") }
    }
}
