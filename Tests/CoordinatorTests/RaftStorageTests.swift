import CooperativePoolWatch
import Foundation
import SpecolaRaft
import TestSupport
import Testing
@testable import SpecolaClusterCore
@testable import SpecolaCoordinator

/// The Raft log on a real SQLite file: what a restart finds after snapshots.
@Suite(.runsOffThePool, .watchesCooperativePool) struct RaftStorageTests {
    static let members = ConfigState(voters: [1, 2, 3])

    static func log(_ indexes: ClosedRange<Index>, term: Term) -> [Entry] {
        indexes.map { Entry(term: term, index: $0, data: [UInt8($0 % 256)]) }
    }

    @Test func aSnapshotInstalledFromTheLeaderReplacesTheWholeLog() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let storage = try RaftStorage(path: dir.file("raft.sqlite"))
        // A deposed leader's entries 1...10, of which only 1...5 made it into the new leader's log.
        try storage.persist(hardState: HardState(term: 1, vote: 1, commit: 3), entries: Self.log(1...10, term: 1), snapshot: nil)
        let snapshot = Snapshot(meta: SnapshotMeta(index: 7, term: 2, config: Self.members), data: [1, 2, 3])
        try storage.persist(hardState: HardState(term: 2, vote: nil, commit: 7), entries: [], snapshot: snapshot)

        let restarted = try #require(try RaftStorage(path: dir.file("raft.sqlite")).load())
        #expect(restarted.snapshot == snapshot)
        #expect(restarted.entries.isEmpty, "entries 8...10 of term 1 survived a snapshot that replaced them: \(restarted.entries.map(\.index))")
    }

    @Test func entriesAfterAnInstalledSnapshotAreKept() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let storage = try RaftStorage(path: dir.file("raft.sqlite"))
        try storage.persist(hardState: HardState(term: 1, vote: 1), entries: Self.log(1...4, term: 1), snapshot: nil)
        let snapshot = Snapshot(meta: SnapshotMeta(index: 7, term: 2, config: Self.members), data: [])
        try storage.persist(hardState: HardState(term: 2), entries: Self.log(8...9, term: 2), snapshot: snapshot)

        let restarted = try #require(try RaftStorage(path: dir.file("raft.sqlite")).load())
        #expect(restarted.entries.map(\.index) == [8, 9])
    }

    @Test func aLocalCompactionDropsOnlyWhatItCovers() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let storage = try RaftStorage(path: dir.file("raft.sqlite"))
        try storage.persist(hardState: HardState(term: 1, vote: 1, commit: 10), entries: Self.log(1...10, term: 1), snapshot: nil)
        try storage.compact(to: Snapshot(meta: SnapshotMeta(index: 6, term: 1, config: Self.members), data: []))

        let restarted = try #require(try RaftStorage(path: dir.file("raft.sqlite")).load())
        #expect(restarted.snapshot?.meta.index == 6)
        #expect(restarted.entries.map(\.index) == [7, 8, 9, 10])
    }
}
