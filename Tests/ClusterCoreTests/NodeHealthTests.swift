import SpecolaWire
import Testing
@testable import SpecolaClusterCore
import CooperativePoolWatch

/// The failure ladder, one rule per test: fence before failover.
@Suite(.watchesCooperativePool) struct NodeHealthTests {
    let policy = NodeHealth.Policy(suspectAfterMs: 3_000, downAfterMs: 10_000, selfFenceAfterMs: 20_000, leaseMarginMs: 5_000)

    func next(_ committed: NodeStatus, silence: Int64, lease: Int64? = nil, allowed: Bool = true, off: Bool = false,
              policy: NodeHealth.Policy? = nil) -> NodeStatus? {
        NodeHealth.next(
            .init(committed: committed, silenceMs: silence, leaseSilenceMs: lease, fencingAllowed: allowed, bmcConfirmedOff: off),
            policy: policy ?? self.policy)?.status
    }

    @Test func silenceWalksTheLadderDownAndContactWalksItBack() {
        #expect(next(.ready, silence: 500) == nil)
        #expect(next(.ready, silence: 3_000) == .suspect)
        #expect(next(.suspect, silence: 5_000) == nil)
        #expect(next(.suspect, silence: 10_000) == .down)
        #expect(next(.ready, silence: 12_000) == .down, "a long gap skips suspect")
        #expect(next(.suspect, silence: 100) == .ready)
        #expect(next(.down, silence: 100) == .ready, "back before fencing started")
    }

    @Test func aDownNodeIsFencedUnlessTheBrakeOrTheConfigSaysNo() {
        #expect(next(.down, silence: 11_000) == .fencing)
        #expect(next(.down, silence: 11_000, allowed: false) == nil)
        var off = policy
        off.fencingEnabled = false
        #expect(next(.down, silence: 60_000, policy: off) == nil)
    }

    @Test func fencingNeedsProofAndGoesBackOnlyIfNoPowerOffWasSent() {
        #expect(next(.fencing, silence: 15_000) == nil, "no BMC, lease not run out")
        #expect(next(.fencing, silence: 15_000, off: true) == .fenced)
        #expect(next(.fencing, silence: 25_000) == .fenced, "lease + margin witnessed")
        #expect(next(.fencing, silence: 24_999) == nil)
        #expect(next(.fencing, silence: 100) == .ready, "back before any power-off: nothing moved, back to work")
        let sent = NodeHealth.next(.init(committed: .fencing, silenceMs: 100, powerOffSent: true), policy: policy)
        #expect(sent == nil, "a power-off may be under way: fencing finishes")
        let requested = NodeHealth.next(.init(committed: .fencing, silenceMs: 100, requested: true), policy: policy)
        #expect(requested == nil, "an operator's fence finishes whatever the node says")
    }

    @Test func anOperatorsFenceIsRememberedUntilTheNodeIsBack() {
        var state = ClusterState()
        _ = state.apply(.registerNode(name: "n1", address: "", agentVersion: "t", labels: [:], autoAccept: true, atUnixMs: 1))
        func step(_ status: NodeStatus, by operator: String = "") {
            _ = state.apply(.with {
                $0.proposedAtUnixMs = 10
                $0.nodeHealth = .with { $0.node = "n1"; $0.step = status; $0.reason = "test"; $0.fenceRequestedBy = `operator` }
            })
        }
        step(.fencing, by: "user/admin")
        #expect(state.nodes["n1"]?.fenceRequestedBy == "user/admin")
        step(.fenced)
        #expect(state.nodes["n1"]?.fenceRequestedBy == "user/admin", "the automatic step keeps who asked")
        step(.ready)
        #expect(state.nodes["n1"]?.fenceRequestedBy == "")
        step(.fencing)
        #expect(state.nodes["n1"]?.fenceRequestedBy == "", "an automatic fence has no requester")
    }

    @Test func anOperatorsFenceFinishesAndHoldsWhateverTheNodeSays() {
        func requested(_ committed: NodeStatus, off: Bool = false) -> NodeStatus? {
            NodeHealth.next(.init(committed: committed, silenceMs: 100, bmcConfirmedOff: off, requested: true), policy: policy)?.status
        }
        #expect(requested(.fencing) == nil, "a live node fenced by an operator does not go back to ready")
        #expect(requested(.fencing, off: true) == .fenced)
        #expect(requested(.fenced) == nil, "it stays fenced until unfenced")
        #expect(next(.fenced, silence: 100) == .recovered, "an automatic fence recovers when the agent is back")
    }

    @Test func aNewLeaderOnlyTrustsSilenceItWitnessed() {
        // The old leader last heard the node 40 s ago, but this leader is 3 s old: no lease proof yet.
        #expect(next(.fencing, silence: 40_000, lease: 3_000) == nil)
        #expect(next(.fencing, silence: 40_000, lease: 25_000) == .fenced)
    }

    @Test func withoutALeaseOnlyTheBMCCanFence() {
        var noLease = policy
        noLease.selfFenceAfterMs = 0
        #expect(next(.fencing, silence: 3_600_000, policy: noLease) == nil)
        #expect(next(.fencing, silence: 3_600_000, off: true, policy: noLease) == .fenced)
    }

    @Test func aFencedNodeRecoversWhenItsAgentIsBack() {
        #expect(next(.fenced, silence: 60_000) == nil)
        #expect(next(.fenced, silence: 200) == .recovered)
        #expect(next(.recovered, silence: 200) == .ready)
        #expect(next(.recovered, silence: 60_000) == nil, "unfenced, still booting: no new fencing round")
    }

    @Test func theSchedulerOnlyUsesNodesThatAreLiveAndNotFencing() {
        #expect(NodeHealth.schedulingStatus(committed: .fenced, live: .ready) == .fenced)
        #expect(NodeHealth.schedulingStatus(committed: .fencing, live: .ready) == .fencing)
        #expect(NodeHealth.schedulingStatus(committed: .recovered, live: .ready) == .ready)
        #expect(NodeHealth.schedulingStatus(committed: .unspecified, live: .suspect) == .suspect)
        #expect(NodeHealth.displayed(committed: .fenced, live: .ready) == .fenced)
        #expect(NodeHealth.displayed(committed: .down, live: .ready) == .ready)
        #expect(NodeHealth.displayed(committed: .fenced, live: .ready).word == "fenced", "the word operators see")
    }
}

@Suite(.watchesCooperativePool) struct EarlyWarningTests {
    func node(critical: Bool = false, psuEventAt: Int64? = nil, cordoned: Bool = false, draining: Bool = false) -> Specola_V1_Node {
        .with {
            $0.name = "n1"
            $0.cordoned = cordoned
            $0.draining = draining
            $0.facts.bmc.sensors = [.with { $0.name = "CPU Temp"; $0.state = critical ? .critical : .nominal }]
            if let psuEventAt {
                $0.recentSel = [.with { $0.sensorName = "PS1"; $0.sensorType = "Power Supply"; $0.state = .critical; $0.timestampUnix = psuEventAt; $0.event = "failure detected" }]
            }
        }
    }

    @Test func criticalHardwareTakesTheNodeOutOfServiceOnce() {
        let policy = EarlyWarning()
        let now: Int64 = 1_000_000_000
        #expect(policy.step(for: node(), nowUnixMs: now) == nil)
        #expect(policy.step(for: node(critical: true), nowUnixMs: now)?.action == .drain)
        #expect(policy.step(for: node(critical: true, cordoned: true, draining: true), nowUnixMs: now) == nil, "already drained")
        #expect(policy.step(for: node(psuEventAt: now / 1000 - 30), nowUnixMs: now)?.reason.contains("PS1") == true)
        #expect(policy.step(for: node(psuEventAt: now / 1000 - 3_600), nowUnixMs: now) == nil, "an old event does not undo an uncordon")
        let cordonOnly = EarlyWarning(onCriticalSensor: .cordon, onPowerSupplyEvent: .none)
        #expect(cordonOnly.step(for: node(critical: true), nowUnixMs: now)?.action == .cordon)
        #expect(cordonOnly.step(for: node(critical: true, cordoned: true), nowUnixMs: now) == nil)
        #expect(cordonOnly.step(for: node(psuEventAt: now / 1000), nowUnixMs: now) == nil)
    }
}

/// The leader's soft contact record: a new leader's grace period, and what operators see.
@Suite(.watchesCooperativePool) struct NodeContactTests {
    @Test func aNewLeaderCountsItsOwnStartAsContactWithEveryNode() {
        var contact = NodeContact()
        contact.heard(from: "n1", atUnixMs: 5_000)
        contact.heard(from: "n1", atUnixMs: 4_000)
        #expect(contact.lastUnixMs["n1"] == 5_000, "an older contact never moves it back")
        contact.becameLeader(nodes: ["n1", "n2"], atUnixMs: 9_000)
        #expect(contact.lastUnixMs == ["n1": 9_000, "n2": 9_000])
    }

    @Test func operatorsSeeTheLaterOfContactAndTheLastReport() {
        var contact = NodeContact()
        contact.heard(from: "n1", atUnixMs: 10_000)
        let stored = Specola_V1_Node.with { $0.name = "n1"; $0.committedStatus = .ready; $0.lastSeenUnixMs = 2_000 }
        let thresholds = LivenessThresholds(suspectAfterMs: 3_000, downAfterMs: 10_000)
        let shown = contact.displayed(stored, thresholds: thresholds, nowUnixMs: 14_000)
        #expect(shown.lastSeenUnixMs == 10_000)
        #expect(shown.shownStatus == "suspect")
        #expect(NodeContact().displayed(stored, thresholds: thresholds, nowUnixMs: 14_000).shownStatus == "down")
    }
}
