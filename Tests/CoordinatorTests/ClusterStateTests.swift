import SpecolaProtocol
import Testing
@testable import SpecolaClusterCore
@testable import SpecolaCoordinator
import CooperativePoolWatch

@Suite(.watchesCooperativePool) struct ClusterStateTests {
    func report(_ seq: UInt64, full: Bool = false, _ edit: (inout Specola_V1_NodeFacts) -> Void = { _ in }) -> Specola_V1_Report {
        .with {
            $0.seq = seq
            $0.full = full
            edit(&$0.facts)
        }
    }

    func registered(_ name: String = "a") -> ClusterState {
        var state = ClusterState()
        _ = state.apply(.registerNode(name: name, address: "127.0.1.1", agentVersion: "t", labels: [:], autoAccept: true, atUnixMs: 1))
        return state
    }

    @Test func everyReportIsAppliedOnceAndResendsAreIgnored() {
        var state = registered()
        #expect(state.apply(.applyReport(node: "a", report: report(1, full: true) { $0.capacity.cpuCores = 4 }, receivedAtUnixMs: 2))
            == .reportApplied(lastAppliedSeq: 1, gap: false, needsFullReport: false))
        #expect(state.apply(.applyReport(node: "a", report: report(1), receivedAtUnixMs: 3)) == .duplicateReport(lastAppliedSeq: 1))
        #expect(state.apply(.applyReport(node: "a", report: report(2), receivedAtUnixMs: 3))
            == .reportApplied(lastAppliedSeq: 2, gap: false, needsFullReport: false))
        #expect(state.nodes["a"]?.reportsApplied == 2)
        #expect(state.nodes["a"]?.seqGaps == 0)
    }

    @Test func aMissingSequenceNumberIsCountedAsAGap() {
        var state = registered()
        _ = state.apply(.applyReport(node: "a", report: report(1, full: true) { $0.capacity.cpuCores = 2 }, receivedAtUnixMs: 2))
        let outcome = state.apply(.applyReport(node: "a", report: report(3), receivedAtUnixMs: 3))
        #expect(outcome == .reportApplied(lastAppliedSeq: 3, gap: true, needsFullReport: false))
        #expect(state.nodes["a"]?.seqGaps == 1)
    }

    @Test func deltasReplaceOnlyTheSectionsTheyCarry() {
        var state = registered()
        _ = state.apply(.applyReport(node: "a", report: report(1, full: true) {
            $0.capacity.cpuCores = 48
            $0.bmc.present = true
            $0.vms.available = true
            $0.vms.vms = [.with { $0.name = "vm1"; $0.state = "running" }]
        }, receivedAtUnixMs: 2))
        _ = state.apply(.applyReport(node: "a", report: report(2) {
            $0.vms.available = true
            $0.vms.vms = []
        }, receivedAtUnixMs: 3))
        let facts = state.nodes["a"]!.facts
        #expect(facts.capacity.cpuCores == 48)
        #expect(facts.bmc.present)
        #expect(facts.vms.vms.isEmpty)
    }

    @Test func aDeltaWithoutBaselineAsksForAFullReport() {
        var state = registered()
        let outcome = state.apply(.applyReport(node: "a", report: report(5) { $0.vms.available = true }, receivedAtUnixMs: 2))
        #expect(outcome == .reportApplied(lastAppliedSeq: 5, gap: false, needsFullReport: true))
    }

    @Test func selHistoryIsBounded() {
        var state = registered()
        var seq: UInt64 = 0
        for batch in 0..<5 {
            seq += 1
            _ = state.apply(.applyReport(node: "a", report: report(seq, full: seq == 1) {
                $0.sel.entries = (0..<60).map { i in .with { $0.recordID = UInt32(batch * 60 + i) } }
            }, receivedAtUnixMs: 2))
        }
        let sel = state.nodes["a"]!.recentSel
        #expect(sel.count == ClusterState.selHistoryLimit)
        #expect(sel.last?.recordID == 299)
        #expect(!state.nodes["a"]!.facts.hasSel)
    }

    @Test func reportsFromUnregisteredNodesAreRejected() {
        var state = ClusterState()
        guard case .rejected = state.apply(.applyReport(node: "x", report: report(1), receivedAtUnixMs: 1)) else {
            Issue.record("expected rejection")
            return
        }
    }

    @Test func livenessLadder() {
        let thresholds = LivenessThresholds(suspectAfterMs: 3000, downAfterMs: 10000)
        #expect(thresholds.status(sinceLastContactMs: 100) == .ready)
        #expect(thresholds.status(sinceLastContactMs: 3000) == .suspect)
        #expect(thresholds.status(sinceLastContactMs: 10000) == .down)
    }
}
