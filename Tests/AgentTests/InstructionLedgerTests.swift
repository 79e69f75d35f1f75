import CooperativePoolWatch
import Foundation
import Logging
import SpecolaProtocol
import TestSupport
import Testing
@testable import SpecolaAgent

/// The agent's one instruction ledger and its one resume path, over real outbox files.
@Suite(.runsOffThePool, .watchesCooperativePool) struct InstructionLedgerTests {
    /// An outbox written by an agent from before the ledger knew work families (schema v2): a
    /// task, a VM and a storage action were running when it stopped. Made with sqlite3 from
    /// Tests/Fixtures/agent-ledger; see the README there.
    static let oldOutbox = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/agent-ledger/outbox-v2.sqlite").path

    /// Takes the entries it is given, as a runner of one family would.
    actor Taker: ClaimedWorkRunner {
        nonisolated let family: WorkFamily
        var taken: [LedgerEntry] = []
        nonisolated var families: [WorkFamily] { [family] }
        init(_ family: WorkFamily) { self.family = family }
        func resume(_ entries: [LedgerEntry]) { taken += entries }
    }

    func upgradedOutbox(in dir: TempDir) throws -> Outbox {
        try FileManager.default.copyItem(atPath: Self.oldOutbox, toPath: dir.file("outbox.sqlite"))
        return try Outbox(path: dir.file("outbox.sqlite"))
    }

    @Test func anUpgradedAgentReadsTheOldLedgerAndKeepsItsQueue() async throws {
        let dir = try TempDir("specola-ledger")
        defer { dir.remove() }
        let outbox = try upgradedOutbox(in: dir)
        let open = try outbox.unfinishedInstructions()
        #expect(open.map(\.id) == ["a-old-1", "wl/vm-old/3", "st/act-1"])
        #expect(open.map(\.family) == [.task, .workload, .storage])
        let run = try Specola_V1_RunTask(serializedBytes: try #require(open[0].payload))
        #expect(run.allocationID == "a-old-1" && run.driver == "podman" && run.command == ["true"])
        let start = try Specola_V1_StartWorkload(serializedBytes: try #require(open[1].payload))
        #expect(start.name == "vm-old" && start.kind == "vm" && start.generation == 3)
        // What ran before the upgrade still runs at most once, and the queue and counters survive.
        #expect(try outbox.instructionFinished("a-done"))
        #expect(try outbox.claimInstruction("a-done")?.duplicate == true)
        #expect(try outbox.claimInstruction("wl/vm-old/3")?.duplicate == true)
        #expect(try outbox.pending(after: 0).map(\.seq) == [7])
        #expect(try outbox.counter("sel") == 42)
        _ = try outbox.append(taskEvents: [], atUnixMs: 0)
        #expect(try outbox.lastSeq() == 8, "sequence numbers go on from the old file's")
    }

    @Test func oneResumePathHandsEachFamilyItsEntries() async throws {
        let dir = try TempDir("specola-ledger")
        defer { dir.remove() }
        let outbox = try upgradedOutbox(in: dir)
        // A stop cut short by a crash: claimed without work, over once executed.
        #expect(try outbox.claimInstruction("stop-1") == nil)
        let tasks = Taker(.task)
        let workloads = Taker(.workload)
        let storage = StorageRunner(outbox: outbox, settings: .init(), logger: Logger(label: "test.storage"), onEvent: {})
        await resumeClaimedWork(ledger: outbox, runners: [tasks, workloads, storage], logger: Logger(label: "test.resume"))
        #expect(await tasks.taken.map(\.id) == ["a-old-1"])
        #expect(await workloads.taken.map(\.id) == ["wl/vm-old/3"])
        // The real storage runner closed its interrupted action as failed and reported it.
        #expect(try outbox.instructionFinished("st/act-1"))
        let storageEvents = try outbox.pending(after: 0).flatMap(\.storageEvents)
        #expect(storageEvents.map(\.actionID) == ["st/act-1"] && storageEvents.allSatisfy { !$0.ok })
        #expect(try outbox.instructionFinished("stop-1"))
        // The takers closed nothing: their entries stay open for the next start.
        #expect(try outbox.unfinishedInstructions().map(\.id) == ["a-old-1", "wl/vm-old/3"])
    }

    @Test func workOfAFamilyWithoutARunnerStaysOpen() async throws {
        let dir = try TempDir("specola-ledger")
        defer { dir.remove() }
        let outbox = try upgradedOutbox(in: dir)
        let tasks = Taker(.task)
        await resumeClaimedWork(ledger: outbox, runners: [tasks], logger: Logger(label: "test.resume"))
        #expect(await tasks.taken.map(\.id) == ["a-old-1"])
        #expect(try outbox.unfinishedInstructions().map(\.id) == ["a-old-1", "wl/vm-old/3", "st/act-1"])
    }

    @Test func newClaimsRecordTheirFamily() async throws {
        let dir = try TempDir("specola-ledger")
        defer { dir.remove() }
        let outbox = try Outbox(path: dir.file("outbox.sqlite"))
        let instruction = Specola_V1_Instruction.with {
            $0.id = "wl/web/1"
            $0.startWorkload = .with { $0.name = "web"; $0.kind = "pod"; $0.generation = 1 }
        }
        let work = try #require(try instruction.claimedWork())
        #expect(try outbox.claimInstruction(instruction.id, family: work.family, payload: work.payload) == nil)
        #expect(try outbox.unfinishedInstructions() == [LedgerEntry(id: "wl/web/1", family: .workload, payload: work.payload)])
        #expect(try Specola_V1_Instruction.with { $0.id = "c"; $0.collectNow = .init() }.claimedWork() == nil)
    }
}
