import Foundation
import SpecolaAlerting
import SpecolaAlertDelivery
import SpecolaJobs
import SpecolaProtocol
import Testing
@testable import SpecolaClusterCore
@testable import SpecolaCoordinator
import CooperativePoolWatch

/// Rule evaluation as a function of the state, the leader's liveness view and the time.
/// The leader commits what the evaluator returns; the properties checked here are about
/// that loop: it converges (a second pass proposes nothing), it never resolves an alert
/// about a node it has not heard from, and events fire once.
@Suite(.watchesCooperativePool) struct AlertRuleTests {
    let t0: Int64 = 1_763_632_800_000

    func input(_ state: ClusterState, _ status: [String: NodeStatus], at now: Int64, contact: [String: Int64] = [:]) -> AlertRuleInput {
        AlertRuleInput(state: state, status: status, lastContactUnixMs: contact, nowUnixMs: now)
    }

    /// One leader pass: evaluate, commit, and return what was committed.
    @discardableResult
    func pass(_ evaluator: inout AlertRuleEvaluator, _ state: inout ClusterState, _ status: [String: NodeStatus], at now: Int64,
              contact: [String: Int64] = [:]) -> [AlertChange] {
        let changes = evaluator.evaluate(input(state, status, at: now, contact: contact))
        AlertFixture.commit(changes, to: &state, at: now)
        return changes
    }

    func firing(_ state: ClusterState) -> [String] {
        state.alerts.sortedAlerts.filter { $0.status == .firing }.map { alert in
            ([alert.rule] + alert.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }).joined(separator: " ")
        }.sorted()
    }

    /// CertificateExpiring: warns within 30 days of expiry, once, and resolves when the file holds a later certificate.
    @Test func aCertificateCloseToExpiryFiresOnceAndAReissueResolvesIt() {
        var state = ClusterState()
        var evaluator = AlertRuleEvaluator()
        let day: Int64 = 86_400_000
        func certificates(_ input: AlertRuleInput, notAfter: Int64) -> AlertRuleInput {
            var input = input
            input.certificates = [CertificateExpiry(name: "coordinator/c1", path: "/etc/specola/c1.pem", notValidAfterUnixMs: notAfter)]
            return input
        }
        func pass(at now: Int64, notAfter: Int64) -> [AlertChange] {
            let changes = evaluator.evaluate(certificates(input(state, [:], at: now), notAfter: notAfter))
            AlertFixture.commit(changes, to: &state, at: now)
            return changes
        }
        #expect(pass(at: t0, notAfter: t0 + 40 * day).isEmpty)
        #expect(pass(at: t0 + 11 * day, notAfter: t0 + 40 * day).count == 1)
        #expect(firing(state) == ["CertificateExpiring certificate=coordinator/c1 path=/etc/specola/c1.pem"])
        #expect(state.alerts.sortedAlerts.first?.summary == "certificate coordinator/c1 expires in 29 days")
        #expect(pass(at: t0 + 12 * day, notAfter: t0 + 40 * day).isEmpty, "level-triggered: no second fire")
        #expect(pass(at: t0 + 13 * day, notAfter: t0 + 400 * day).count == 1)
        #expect(firing(state).isEmpty)
    }

    @Test func nodeDownFiresOnceAndResolvesOnlyAfterTheAgentIsHeardFromAgain() {
        var state = AlertFixture.registered("n1", "n2", at: t0)
        var evaluator = AlertRuleEvaluator()
        #expect(pass(&evaluator, &state, ["n1": .ready, "n2": .ready], at: t0 + 1_000).isEmpty, "a healthy cluster writes nothing")

        pass(&evaluator, &state, ["n1": .down, "n2": .ready], at: t0 + 12_000, contact: ["n1": t0])
        #expect(firing(state) == ["NodeDown node=n1"])
        #expect(pass(&evaluator, &state, ["n1": .down, "n2": .ready], at: t0 + 12_500).isEmpty, "level-triggered: no second fire")
        // The ladder's later rungs are still down.
        #expect(pass(&evaluator, &state, ["n1": .fencing, "n2": .ready], at: t0 + 13_000).isEmpty)

        // A new leader's grace period shows the dead node as ready: that is not news about the node.
        var newLeader = AlertRuleEvaluator()
        #expect(pass(&newLeader, &state, ["n1": .ready, "n2": .ready], at: t0 + 14_000).isEmpty)
        #expect(firing(state) == ["NodeDown node=n1"])

        // The agent registers again (a committed lastSeen after the alert): now it resolves.
        _ = state.apply(.registerNode(name: "n1", address: "127.0.1.1", agentVersion: "t", labels: [:], autoAccept: true, atUnixMs: t0 + 20_000))
        let resolved = pass(&newLeader, &state, ["n1": .ready, "n2": .ready], at: t0 + 20_100)
        #expect(resolved == [.resolve(rule: BuiltinRule.nodeDown, labels: ["node": "n1"], atUnixMs: t0 + 20_100)])
        #expect(firing(state).isEmpty)
        #expect(state.alerts.alerts.values.first?.transition == 2)
    }

    @Test func agentLostSpeaksOnlyWhenEnabledAndNodeDownMutesIt() {
        var settings = BuiltinRuleSettings()
        settings.agentLostAfterMs = 5_000
        var evaluator = AlertRuleEvaluator(settings: settings)
        var state = AlertFixture.registered("n1", at: t0)
        #expect(pass(&evaluator, &state, ["n1": .suspect], at: t0 + 4_000, contact: ["n1": t0]).isEmpty)
        pass(&evaluator, &state, ["n1": .suspect], at: t0 + 6_000, contact: ["n1": t0])
        #expect(firing(state) == ["AgentLost node=n1"])
        pass(&evaluator, &state, ["n1": .down], at: t0 + 11_000, contact: ["n1": t0])
        #expect(Set(firing(state)) == ["AgentLost node=n1", "NodeDown node=n1"])
        let planner = NotificationPlanner(routing: AlertRouting(routes: [NotificationRoute(receiver: "chat")]))
        let lost = state.alerts.alerts[BuiltinAlert.agentLost(node: "n1", lastContact: "").fingerprint]!
        #expect(planner.muteReason(for: lost, in: state.alerts, atUnixMs: t0 + 11_000) != nil, "the down node inhibits it")

        var off = AlertRuleEvaluator()
        var quiet = AlertFixture.registered("n1", at: t0)
        #expect(pass(&off, &quiet, ["n1": .suspect], at: t0 + 60_000, contact: ["n1": t0]).isEmpty)
    }

    @Test func aCriticalSensorFiresPerSensorAndResolvesWhenTheBMCReportsItBack() {
        var state = AlertFixture.registered("n1", at: t0)
        var evaluator = AlertRuleEvaluator()
        func sensors(_ seq: UInt64, _ cpu: Specola_V1_SensorState, _ fan: Specola_V1_SensorState) {
            AlertFixture.report(&state, node: "n1", seq: seq, at: t0 + Int64(seq) * 1_000) {
                $0.facts.bmc = .with {
                    $0.present = true
                    $0.sensors = [
                        .with { $0.name = "CPU Temp"; $0.type = "Temperature"; $0.units = "C"; $0.hasReading_p = true; $0.reading = 97; $0.state = cpu },
                        .with { $0.name = "FAN1"; $0.type = "Fan"; $0.units = "RPM"; $0.hasReading_p = true; $0.reading = 0; $0.state = fan },
                    ]
                }
            }
        }
        sensors(1, .critical, .critical)
        pass(&evaluator, &state, ["n1": .ready], at: t0 + 1_500)
        #expect(firing(state) == ["SensorCritical node=n1 sensor=CPU Temp", "SensorCritical node=n1 sensor=FAN1"])
        #expect(pass(&evaluator, &state, ["n1": .ready], at: t0 + 1_600).isEmpty)

        sensors(2, .nominal, .critical)
        pass(&evaluator, &state, ["n1": .ready], at: t0 + 2_500)
        #expect(firing(state) == ["SensorCritical node=n1 sensor=FAN1"])

        // Facts of a node that is not ready are stale: nothing resolves on them.
        sensors(3, .nominal, .nominal)
        pass(&evaluator, &state, ["n1": .suspect], at: t0 + 3_500)
        #expect(firing(state) == ["SensorCritical node=n1 sensor=FAN1"])
        pass(&evaluator, &state, ["n1": .ready], at: t0 + 3_600)
        #expect(firing(state).isEmpty)
    }

    @Test func eachCriticalSELEntryFiresOnceAndOldHistoryIsNotNews() {
        var state = AlertFixture.registered("n1", at: t0)
        var evaluator = AlertRuleEvaluator()
        let nowSeconds = (t0 + 10_000) / 1000
        func sel(_ seq: UInt64, _ entries: [(UInt32, Int64, Specola_V1_SensorState)]) {
            AlertFixture.report(&state, node: "n1", seq: seq, at: t0 + Int64(seq) * 1_000) {
                $0.facts.sel.entries = entries.map { id, time, level in
                    .with { $0.recordID = id; $0.timestampUnix = time; $0.sensorName = "PS1"; $0.sensorType = "Power Supply"; $0.state = level; $0.event = "Power Supply Failure detected" }
                }
            }
        }
        // Two days old: history, not news. Then a fresh critical and a fresh nominal entry.
        sel(1, [(1, nowSeconds - 2 * 86_400, .critical), (2, nowSeconds - 5, .critical), (3, nowSeconds - 4, .nominal)])
        pass(&evaluator, &state, ["n1": .ready], at: t0 + 10_000)
        #expect(firing(state) == ["SELCritical event=2 node=n1 sel_time=\(nowSeconds - 5)"])
        #expect(pass(&evaluator, &state, ["n1": .ready], at: t0 + 11_000).isEmpty)

        sel(2, [(4, nowSeconds + 1, .critical)])
        pass(&evaluator, &state, ["n1": .ready], at: t0 + 12_000)
        #expect(firing(state).count == 2)

        // Events resolve after eventResolveAfter and never fire again, though the SEL still holds them.
        let later = t0 + 12_000 + BuiltinRuleSettings().eventResolveAfterMs
        pass(&evaluator, &state, ["n1": .ready], at: later)
        #expect(firing(state).isEmpty)
        #expect(pass(&evaluator, &state, ["n1": .ready], at: later + 1_000).isEmpty)
    }

    @Test func aFailedJobFiresWithItsNodeSoADownNodeMutesIt() throws {
        var state = AlertFixture.registered("n1", at: t0)
        AlertFixture.report(&state, node: "n1", seq: 1, at: t0)
        let spec = try JobSpecParser.parse("""
            apiVersion: specola/v1
            kind: Job
            metadata: {name: broken, owner: astro, project: theory}
            task:
              name: fail
              driver: exec
              command: /bin/false
              resources: {cpu: 0.1, memory: 32MiB}
            """, file: "broken.yaml").get()
        _ = state.apply(.with {
            $0.proposedAtUnixMs = t0 + 100
            $0.submitJob = .with { $0.jobID = "theory/broken"; $0.spec = .init(spec); $0.submittedBy = "user/astro" }
        })
        let task = try #require(state.jobs.jobs["theory/broken"]?.run.order.first)
        _ = state.apply(.with {
            $0.proposedAtUnixMs = t0 + 200
            $0.placeTasks.placements = [.with { $0.jobID = "theory/broken"; $0.taskID = task; $0.node = "n1"; $0.allocationID = "broken-1" }]
        })
        AlertFixture.report(&state, node: "n1", seq: 2, at: t0 + 300, full: false) {
            $0.taskEvents = [.with { $0.allocationID = "broken-1"; $0.kind = .exited; $0.exitCode = 1; $0.message = "exited 1"; $0.atUnixMs = t0 + 300 }]
        }
        #expect(state.jobs.jobs["theory/broken"]?.run.state == .failed)

        var evaluator = AlertRuleEvaluator()
        pass(&evaluator, &state, ["n1": .ready], at: t0 + 1_000)
        #expect(firing(state) == ["JobFailed job=theory/broken node=n1 task=\(task)"])
        let failed = try #require(state.alerts.sortedAlerts.first)
        #expect(failed.description.contains("exit code 1"))
        #expect(pass(&evaluator, &state, ["n1": .ready], at: t0 + 2_000).isEmpty)

        pass(&evaluator, &state, ["n1": .down], at: t0 + 20_000, contact: ["n1": t0 + 300])
        let planner = NotificationPlanner(routing: AlertRouting(routes: [NotificationRoute(receiver: "chat")]))
        #expect(planner.muteReason(for: state.alerts.alerts[failed.id]!, in: state.alerts, atUnixMs: t0 + 20_000)
            == .inhibited(byFingerprints: [BuiltinAlert.nodeDown(node: "n1", reason: "").fingerprint]))

        let later = t0 + 1_000 + BuiltinRuleSettings().eventResolveAfterMs
        pass(&evaluator, &state, ["n1": .down], at: later)
        #expect(!firing(state).contains { $0.hasPrefix("JobFailed") })
        #expect(pass(&evaluator, &state, ["n1": .down], at: later + 1_000).isEmpty, "the same failure never fires twice")
    }

    @Test func thresholdRulesReadNodeAndFilesystemMetricsAndHonourTheirForPeriod() {
        var state = AlertFixture.registered("n1", at: t0)
        let rules = [
            ThresholdRule(name: "HighLoad", metric: NodeMetric.load1PerCore, comparison: .greater, value: 2, forMs: 5_000),
            ThresholdRule(name: "DiskAlmostFull", metric: NodeMetric.filesystemAvailablePercent, comparison: .less, value: 10,
                          severity: .critical),
        ]
        var evaluator = AlertRuleEvaluator(thresholdRules: rules)
        func load(_ seq: UInt64, _ load1: Double, scratchFree: UInt64) {
            AlertFixture.report(&state, node: "n1", seq: seq, at: t0 + Int64(seq)) {
                $0.facts.capacity.load1 = load1
                $0.facts.storage.filesystems = [
                    .with { $0.mountPoint = "/"; $0.sizeBytes = 100; $0.availableBytes = 50 },
                    .with { $0.mountPoint = "/scratch"; $0.sizeBytes = 100; $0.availableBytes = scratchFree },
                ]
            }
        }
        load(1, 12, scratchFree: 5)  // 3 per core on 4 cores
        pass(&evaluator, &state, ["n1": .ready], at: t0 + 1_000)
        #expect(firing(state) == ["DiskAlmostFull mountpoint=/scratch node=n1"], "HighLoad waits for its 5 s")
        pass(&evaluator, &state, ["n1": .ready], at: t0 + 6_000)
        #expect(Set(firing(state)) == ["DiskAlmostFull mountpoint=/scratch node=n1", "HighLoad node=n1"])
        load(2, 1, scratchFree: 40)
        pass(&evaluator, &state, ["n1": .ready], at: t0 + 7_000)
        #expect(firing(state).isEmpty)
    }

    @Test func alertsAboutANodeTheStateNoLongerHasResolve() {
        var state = AlertFixture.registered("n1", at: t0)
        AlertFixture.commit([BuiltinAlert.nodeDown(node: "gone", reason: "test").fire(atUnixMs: t0)], to: &state, at: t0)
        var evaluator = AlertRuleEvaluator()
        pass(&evaluator, &state, ["n1": .ready], at: t0 + 1_000)
        #expect(firing(state).isEmpty)
    }

    @Test func raisedChangesThatWouldChangeNothingAreNotProposed() {
        var state = AlertFixture.registered("n1", at: t0)
        let stuck = BuiltinAlert.fencingStuck(node: "n1", reason: "BMC does not answer")
        #expect(!AlertRuleEvaluator.isRedundant(stuck.fire(atUnixMs: t0), in: state.alerts))
        #expect(AlertRuleEvaluator.isRedundant(stuck.resolve(atUnixMs: t0), in: state.alerts), "nothing to resolve")
        AlertFixture.commit([stuck.fire(atUnixMs: t0)], to: &state, at: t0)
        #expect(AlertRuleEvaluator.isRedundant(stuck.fire(atUnixMs: t0 + 1_000), in: state.alerts))
        #expect(!AlertRuleEvaluator.isRedundant(stuck.resolve(atUnixMs: t0 + 1_000), in: state.alerts))
    }
}
