import CooperativePoolWatch
import Foundation
import SpecolaRaft
import Synchronization
import TestSupport
import Testing
@testable import SpecolaCoordinator

/// The storage thread on a real SQLite log: answers leave only once what they promise is on
/// disk, in the order they were handed in, and writes queued together land in order.
@Suite(.runsOffThePool, .watchesCooperativePool) struct RaftLogWriterTests {
    static func log(_ indexes: ClosedRange<Index>, term: Term) -> [Entry] {
        indexes.map { Entry(term: term, index: $0, data: [UInt8($0 % 256)]) }
    }

    static func answer(_ index: Index) -> Message {
        Message(from: 2, to: 1, term: 1, payload: .appendResponse(index: index, reject: false, hint: 0))
    }

    @Test func anAnswerLeavesOnlyOnceItsWriteIsOnDiskAndInOrder() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let storage = try RaftStorage(path: dir.file("raft.sqlite"))
        // What the log held on disk when each answer left.
        let sent = Mutex<[(message: Message, storedThrough: Index)]>([])
        let writer = RaftLogWriter(storage: storage, name: "test") { messages in
            let stored = (try? storage.load())?.entries.last?.index ?? 0
            sent.withLock { sent in for message in messages { sent.append((message, stored)) } }
        }
        defer { writer.close() }
        let reports = Mutex<[RaftLogWriter.Written]>([])
        writer.report(written: { written in reports.withLock { $0.append(written) } }, failed: { _ in })

        writer.submit(.init(hardState: HardState(term: 1, vote: 2), entries: Self.log(1...3, term: 1), messages: [Self.answer(3)]))
        writer.submit(.init(messages: [Self.answer(30)]))
        writer.submit(.init(entries: Self.log(4...6, term: 1), messages: [Self.answer(6)]))
        writer.waitUntilIdle()

        let answers = sent.withLock { $0 }
        #expect(answers.map(\.message) == [Self.answer(3), Self.answer(30), Self.answer(6)])
        #expect(answers[0].storedThrough >= 3, "an answer for entry 3 left with the log on disk through \(answers[0].storedThrough)")
        #expect(answers[2].storedThrough >= 6, "an answer for entry 6 left with the log on disk through \(answers[2].storedThrough)")
        let reported = reports.withLock { $0 }
        #expect(reported.last?.lastIndex == 6 && reported.last?.lastTerm == 1)
        #expect(reported.reduce(0) { $0 + $1.entries } == 6)
    }

    /// The replica hands its own compactions and a leader's snapshots to the writer too; they
    /// land in the order handed in, so a compaction queued before a leader's newer snapshot never
    /// overwrites it, and the snapshot's answer leaves only once it is stored.
    @Test func snapshotsAndCompactionsLandInOrderWithTheLog() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let storage = try RaftStorage(path: dir.file("raft.sqlite"))
        let sent = Mutex<[(message: Message, storedSnapshot: Index)]>([])
        let writer = RaftLogWriter(storage: storage, name: "test") { messages in
            let stored = (try? storage.load())?.snapshot?.meta.index ?? 0
            sent.withLock { sent in for message in messages { sent.append((message, stored)) } }
        }
        defer { writer.close() }
        let reports = Mutex<[RaftLogWriter.Written]>([])
        writer.report(written: { written in reports.withLock { $0.append(written) } }, failed: { _ in })
        func snapshot(_ index: Index, term: Term) -> Snapshot {
            Snapshot(meta: SnapshotMeta(index: index, term: term, config: ConfigState(voters: [1, 2, 3])), data: [UInt8(index)])
        }

        writer.submit(.init(hardState: HardState(term: 1, vote: 1), entries: Self.log(1...10, term: 1)))
        writer.submit(.init(compaction: snapshot(5, term: 1)))
        writer.submit(.init(hardState: HardState(term: 2, vote: 2), entries: Self.log(21...22, term: 2),
                            snapshot: snapshot(20, term: 2), messages: [Self.answer(22)]))
        writer.waitUntilIdle()

        let stored = try #require(try RaftStorage(path: dir.file("raft.sqlite")).load())
        #expect(stored.snapshot?.meta.index == 20, "the leader's snapshot was overwritten by an older compaction")
        #expect(stored.entries.map(\.index) == [21, 22])
        #expect(stored.hardState.term == 2)
        #expect(sent.withLock { $0 }.map(\.storedSnapshot) == [20])
        #expect(reports.withLock { $0 }.contains { $0.storedSnapshot })

        // A compaction alone keeps the entries after it.
        writer.submit(.init(compaction: snapshot(21, term: 2)))
        writer.waitUntilIdle()
        let compacted = try #require(try RaftStorage(path: dir.file("raft.sqlite")).load())
        #expect(compacted.snapshot?.meta.index == 21 && compacted.entries.map(\.index) == [22])
    }

    @Test func writesQueuedTogetherLandInOrderAndTheLastOneWins() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let storage = try RaftStorage(path: dir.file("raft.sqlite"))
        let writer = RaftLogWriter(storage: storage, name: "test") { _ in }
        defer { writer.close() }
        // A deposed leader's 2...3 replaced by the new leader's, handed in back to back.
        writer.submit(.init(hardState: HardState(term: 1, vote: 1), entries: Self.log(1...3, term: 1)))
        writer.submit(.init(hardState: HardState(term: 2, vote: 3), entries: Self.log(2...3, term: 2)))
        writer.waitUntilIdle()

        let stored = try #require(try RaftStorage(path: dir.file("raft.sqlite")).load())
        #expect(stored.entries.map(\.term) == [1, 2, 2])
        #expect(stored.hardState == HardState(term: 2, vote: 3))
    }

    /// A write SQLite refuses (here: the connection made read-only, a real SQLITE_READONLY) stops
    /// the writer for good: `failed` is told once, and neither that job's answers nor any later
    /// job's leave, since they would promise what is not on disk.
    @Test func afterAFailedWriteNothingIsSentOrWritten() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let storage = try RaftStorage(path: dir.file("raft.sqlite"))
        let sent = Mutex<[Message]>([])
        let writer = RaftLogWriter(storage: storage, name: "test") { messages in sent.withLock { $0 += messages } }
        defer { writer.close() }
        let failures = Mutex<[String]>([])
        writer.report(written: { _ in }, failed: { error in failures.withLock { $0.append("\(error)") } })

        writer.submit(.init(hardState: HardState(term: 1, vote: 2), entries: Self.log(1...2, term: 1), messages: [Self.answer(2)]))
        writer.waitUntilIdle()
        #expect(sent.withLock { $0 } == [Self.answer(2)])
        #expect(!writer.hasFailed)

        try await storage.queue.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA query_only = 1") }
        writer.submit(.init(entries: Self.log(3...4, term: 1), messages: [Self.answer(4)]))
        writer.waitUntilIdle()
        writer.submit(.init(messages: [Self.answer(40)]))
        writer.submit(.init(entries: Self.log(5...5, term: 1), messages: [Self.answer(5)]))
        writer.waitUntilIdle()

        #expect(writer.hasFailed)
        #expect(sent.withLock { $0 } == [Self.answer(2)], "answers left after the log could not be written")
        let failed = failures.withLock { $0 }
        #expect(failed.count == 1, "failures reported: \(failed)")
        #expect(failed.first?.contains("readonly") == true, "\(failed)")
        let stored = try #require(try storage.load())
        #expect(stored.entries.map(\.index) == [1, 2])
    }
}
