import CooperativePoolWatch
import SpecolaAlerting
import SpecolaWire
import Testing
@testable import SpecolaClusterCore

/// The failure ladder as a value: each rule returns directives, and no test needs a socket.
@Suite(.watchesCooperativePool) struct FailureLadderTests {
    static let policy = NodeHealth.Policy(suspectAfterMs: 1_000, downAfterMs: 2_000, selfFenceAfterMs: 0, leaseMarginMs: 0,
                                          maxFencedFraction: 0.5, stuckAfterMs: 30_000)
    static let bmc1 = HostPort(host: "127.0.1.21", port: 9623)

    static func ladder(bmcs: [String: HostPort] = ["n1": bmc1], credentials: Bool = true, policy: NodeHealth.Policy = policy) -> FailureLadder {
        FailureLadder(settings: .init(policy: policy, bmcAddresses: bmcs, bmcCredentials: credentials))
    }

    static func node(_ name: String, _ status: NodeStatus = .ready, since: Int64 = 0, lastSeen: Int64 = 0,
                     reportedBMC: String = "", requestedBy: String = "") -> Specola_V1_Node {
        .with {
            $0.name = name
            $0.committedStatus = status
            $0.statusSinceUnixMs = since
            $0.lastSeenUnixMs = lastSeen
            $0.fenceRequestedBy = requestedBy
            if !reportedBMC.isEmpty { $0.facts.bmc.source = "lan:\(reportedBMC)" }
        }
    }

    static func views(_ nodes: Specola_V1_Node...) -> [FailureLadder.NodeView] {
        nodes.map { FailureLadder.NodeView(node: $0, lastContactUnixMs: $0.lastSeenUnixMs) }
    }

    static func commits(_ directives: [HealthDirective]) -> [String: NodeStatus] {
        var result: [String: NodeStatus] = [:]
        for case .commit(let node, let status, _, _) in directives { result[node] = status }
        return result
    }

    static func reports(_ directives: [HealthDirective]) -> [String] {
        directives.compactMap { if case .report(_, _, let message) = $0 { message } else { nil } }
    }

    @Test func aFencingNodeWithAConfiguredBMCIsPoweredOffOnceAtATime() {
        var ladder = Self.ladder()
        let fencing = Self.views(Self.node("n1", .fencing, since: 10_000, lastSeen: 9_000), Self.node("n2", lastSeen: 100_000))
        #expect(ladder.onPass(fencing, leaderSinceUnixMs: 0, nowUnixMs: 20_000) == [.powerOff(node: "n1", bmc: Self.bmc1)])
        #expect(ladder.onPass(fencing, leaderSinceUnixMs: 0, nowUnixMs: 20_250) == [], "one attempt while the first runs")
        #expect(ladder.onPowerOffResult(node: "n1", .confirmedOff, nowUnixMs: 21_000) == [])
        #expect(Self.commits(ladder.onPass(fencing, leaderSinceUnixMs: 0, nowUnixMs: 21_250)) == ["n1": .fenced])
    }

    @Test func aFailedPowerOffIsReportedAndRetriedOnlyAfterThePause() {
        var ladder = Self.ladder()
        let fencing = Self.views(Self.node("n1", .fencing, since: 10_000, lastSeen: 9_000), Self.node("n2", lastSeen: 100_000))
        _ = ladder.onPass(fencing, leaderSinceUnixMs: 0, nowUnixMs: 20_000)
        let failed = ladder.onPowerOffResult(node: "n1", .failed("connection timed out"), nowUnixMs: 21_000)
        #expect(Self.reports(failed).count == 1 && Self.reports(failed)[0].contains("connection timed out"), "\(failed)")
        #expect(ladder.onPass(fencing, leaderSinceUnixMs: 0, nowUnixMs: 25_999) == [])
        #expect(ladder.onPass(fencing, leaderSinceUnixMs: 0, nowUnixMs: 26_000) == [.powerOff(node: "n1", bmc: Self.bmc1)])
    }

    /// The issue's case: a node that reports another server's BMC gets nobody powered off.
    @Test func aNodesOwnReportOfItsBMCIsNeverUsedForFencing() {
        var ladder = Self.ladder(bmcs: [:])
        let liar = Self.node("n1", .fencing, since: 10_000, lastSeen: 9_000, reportedBMC: "127.0.1.22:623")
        let directives = ladder.onPass(Self.views(liar, Self.node("n2", lastSeen: 100_000)), leaderSinceUnixMs: 0, nowUnixMs: 20_000)
        #expect(!directives.contains { if case .powerOff = $0 { true } else { false } }, "\(directives)")
        #expect(Self.reports(directives) == [
            "node reports its BMC at 127.0.1.22:623; fencing.bmcAddresses names none, so this node is fenced by its self-fence lease only; add it there if the BMC is right",
        ])
        let again = ladder.onPass(Self.views(liar, Self.node("n2", lastSeen: 100_000)), leaderSinceUnixMs: 0, nowUnixMs: 20_250)
        #expect(Self.reports(again).isEmpty, "said once")

        var configured = Self.ladder(bmcs: ["n1": Self.bmc1])
        let withConfig = configured.onPass(Self.views(liar, Self.node("n2", lastSeen: 100_000)), leaderSinceUnixMs: 0, nowUnixMs: 20_000)
        #expect(withConfig.contains(.powerOff(node: "n1", bmc: Self.bmc1)), "the configured address, not the reported one")
    }

    @Test func withoutCredentialsNoPowerOffIsAttempted() {
        var ladder = Self.ladder(credentials: false)
        let directives = ladder.onPass(Self.views(Self.node("n1", .fencing, since: 10_000, lastSeen: 9_000)), leaderSinceUnixMs: 0, nowUnixMs: 20_000)
        #expect(directives.isEmpty, "\(directives)")
    }

    @Test func theBrakeHoldsADownNodeAndSaysSoOnce() {
        var ladder = Self.ladder()
        // 4 nodes, fraction 0.5: two may be fencing or fenced.
        let nodes = Self.views(Self.node("a", .fenced), Self.node("b", .fencing, since: 19_000), Self.node("c", .down, lastSeen: 1_000),
                               Self.node("d", lastSeen: 20_000))
        let first = ladder.onPass(nodes, leaderSinceUnixMs: 0, nowUnixMs: 20_000)
        #expect(Self.commits(first)["c"] == nil, "held back: \(first)")
        #expect(Self.reports(first).filter { $0.contains("fencing held back: 2 of 4") }.count == 1, "\(first)")
        let second = ladder.onPass(nodes, leaderSinceUnixMs: 0, nowUnixMs: 20_250)
        #expect(Self.reports(second).isEmpty)
    }

    @Test func stuckFencingRaisesOneAlertThatTheNextStepResolves() {
        var ladder = Self.ladder(bmcs: [:])
        let stuck = Self.views(Self.node("n1", .fencing, since: 0, lastSeen: 0), Self.node("n2", lastSeen: 100_000))
        let first = ladder.onPass(stuck, leaderSinceUnixMs: 0, nowUnixMs: 40_000)
        let raised = first.compactMap { if case .raise(let alert) = $0 { alert } else { nil } }
        #expect(raised.map(\.rule) == [BuiltinRule.fencingStuck] && raised.first?.labels == ["node": "n1"], "\(first)")
        #expect(Self.reports(first).first?.contains("fencing stuck for 40 s") == true)
        #expect(ladder.onPass(stuck, leaderSinceUnixMs: 0, nowUnixMs: 41_000).isEmpty, "raised once")
        #expect(ladder.onCommitted(node: "n1", status: .fenced, nowUnixMs: 42_000) == [.resolve(.fencingStuck(node: "n1", reason: ""))])
        #expect(ladder.onCommitted(node: "n2", status: .fenced, nowUnixMs: 42_000) == [], "never raised for n2")
    }

    /// The issue's case: an operator's fence went around the brake.
    @Test func anOperatorsFenceMeetsTheBrakeUnlessForced() throws {
        let ladder = Self.ladder()
        let nodes = [Self.node("a", .fenced), Self.node("b", .fencing), Self.node("c"), Self.node("d")]
        guard case .failure(let refusal) = ladder.operatorFence("c", nodes: nodes, by: "admin", force: false) else {
            Issue.record("the brake let a third of four nodes be fenced")
            return
        }
        #expect(refusal.description.hasPrefix("refused: 2 of 4 nodes are already fencing or fenced, and the mass-failure brake allows 2"))
        #expect(refusal.description.contains("--force"))
        let forced = try ladder.operatorFence("c", nodes: nodes, by: "admin", force: true).get()
        #expect(forced == [.commit(node: "c", status: .fencing, reason: "requested by admin (--force past the brake)", requestedBy: "admin")])
        let free = try ladder.operatorFence("c", nodes: [Self.node("c"), Self.node("d")], by: "admin", force: false).get()
        #expect(Self.commits(free) == ["c": .fencing])
        #expect(try ladder.operatorFence("a", nodes: nodes, by: "admin", force: false).get() == [], "already fenced: nothing to do")
    }

    @Test func unfencePowersOnThroughTheConfiguredBMCOnly() throws {
        let ladder = Self.ladder()
        let nodes = [Self.node("n1", .fenced), Self.node("n2", .fenced)]
        #expect(try ladder.operatorUnfence("n1", nodes: nodes, by: "admin").get().first == .powerOn(node: "n1", bmc: Self.bmc1))
        #expect(Self.commits(try ladder.operatorUnfence("n2", nodes: nodes, by: "admin").get()) == ["n2": .recovered])
        guard case .failure(let refusal) = ladder.operatorUnfence("n3", nodes: nodes + [Self.node("n3")], by: "admin") else {
            Issue.record("a ready node was unfenced")
            return
        }
        #expect(refusal.description == "node n3 is ready, not fencing or fenced")
    }

    @Test func earlyWarningTakesAFailingNodeOutOfService() {
        var ladder = Self.ladder()
        var sick = Self.node("n1", lastSeen: 20_000)
        sick.facts.bmc.sensors = [.with { $0.name = "CPU Temp"; $0.state = .critical }]
        let directives = ladder.onPass(Self.views(sick), leaderSinceUnixMs: 0, nowUnixMs: 20_000)
        #expect(directives == [.takeOutOfService(node: "n1", drain: true, reason: "BMC sensor 'CPU Temp' is critical")])
    }
}
