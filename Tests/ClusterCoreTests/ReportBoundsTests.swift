import Foundation
import SpecolaClusterCore
import SpecolaWire
import Testing
import CooperativePoolWatch

/// What an agent reports is cut to the coordinator's bounds before it is committed.
@Suite(.runsOffThePool, .watchesCooperativePool) struct ReportBoundsTests {
    @Test func aForgedTaskEventIsCutToTheBounds() {
        var report = Specola_V1_Report.with {
            $0.seq = 7
            $0.taskEvents = [.with {
                $0.allocationID = "j1/t/0"
                $0.stdoutTail = String(repeating: "x", count: 10 << 20) + "the-end"
                $0.stderrTail = "fine"
                $0.outputs = ["small": "1", "huge": String(repeating: "y", count: 2 << 20)]
            }]
        }
        let cuts = ReportBounds.clamp(&report)
        let event = report.taskEvents[0]
        #expect(event.stdoutTail.utf8.count == ReportBounds.maxTailBytes)
        #expect(event.stdoutTail.hasSuffix("the-end"))
        #expect(event.stderrTail == "fine")
        #expect(event.outputs == ["small": "1"])
        #expect(cuts == [
            "stdout of j1/t/0: \((10 << 20) + 7) bytes, kept \(ReportBounds.maxTailBytes)",
            "output huge of j1/t/0: \(2 << 20) bytes, dropped (at most \(ReportBounds.maxOutputValueBytes))",
        ])
        #expect(ReportBounds.refusal(report) == nil)
    }

    @Test func aReportWithinTheBoundsIsUntouched() {
        var report = Specola_V1_Report.with {
            $0.seq = 1
            $0.facts.capacity.labels = ["rack": "r1"]
            $0.taskEvents = [.with { $0.allocationID = "a"; $0.stdoutTail = "ok\n"; $0.outputs = ["k": "v"] }]
        }
        let original = report
        #expect(ReportBounds.clamp(&report).isEmpty)
        #expect(report == original)
    }

    @Test func tooManyEntriesAreCutAndNamed() {
        var report = Specola_V1_Report.with {
            $0.facts.bmc.sensors = Array(repeating: .with { $0.name = "t" }, count: ReportBounds.maxListEntries + 10)
            $0.workloadEvents = Array(repeating: .with { $0.name = "vm" }, count: ReportBounds.maxEvents + 1)
        }
        let cuts = ReportBounds.clamp(&report)
        #expect(report.facts.bmc.sensors.count == ReportBounds.maxListEntries)
        #expect(report.workloadEvents.count == ReportBounds.maxEvents)
        #expect(cuts.contains("sensors: \(ReportBounds.maxListEntries + 10) entries, kept \(ReportBounds.maxListEntries)"))
    }
}
