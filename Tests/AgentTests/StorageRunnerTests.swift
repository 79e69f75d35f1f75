import Foundation
import TestSupport
import Testing
@testable import SpecolaAgent
import CooperativePoolWatch

@Suite(.watchesCooperativePool) struct StorageRunnerTests {
    @Test func aGfidEntryIsNamedTheWayTheSplitBrainCLITakesIt() {
        #expect(StorageRunner.splitBrainArgument("<gfid:6e082a9b-702d-4334-b544-442bc26af6ff>") == "gfid:6e082a9b-702d-4334-b544-442bc26af6ff")
        #expect(StorageRunner.splitBrainArgument("/dir/f") == "/dir/f")
    }

    @Test(.runsOffThePool) func aSpareMustBeAnEmptyDirectoryUnderAnExistingParent() async throws {
        let dir = try TempDir("specola-spare")
        defer { dir.remove() }
        #expect(StorageRunner.spareProblem("\(dir.path)/missing/brick")?.contains("does not exist") == true)
        #expect(StorageRunner.spareProblem("\(dir.path)/brick") == nil, "absent under an existing parent: gluster creates it")
        try FileManager.default.createDirectory(atPath: dir.file("full"), withIntermediateDirectories: true)
        try dir.write("full/data", "x")
        #expect(StorageRunner.spareProblem("\(dir.path)/full")?.contains("not an empty directory") == true)
    }
}
