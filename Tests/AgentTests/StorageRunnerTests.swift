import Foundation
#if canImport(Glibc)
import Glibc
#endif
import TestSupport
import Testing
@testable import SpecolaAgent
import CooperativePoolWatch

@Suite(.watchesCooperativePool) struct StorageRunnerTests {
    /// A killed brick is a zombie until its parent reaps it; it must count as gone at once, or the
    /// restart waits for the reaper and the brick's writes go unreplicated meanwhile.
    @Test func aZombieIsNotARunningProcess() async throws {
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/sleep"), strdup("30"), nil]
        defer { argv.forEach { free($0) } }
        #expect(posix_spawn(&pid, "/bin/sleep", nil, nil, argv, environ) == 0)
        defer { var status: Int32 = 0; _ = waitpid(pid, &status, 0) }
        #expect(ProcessIdentity.isRunning(pid))
        kill(pid, SIGKILL)
        try await waitUntil("pid \(pid) to be a zombie", timeout: .seconds(10), every: .milliseconds(10)) {
            let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
            return stat.split(separator: ")").last?.split(separator: " ").first == "Z"
        }
        #expect(!ProcessIdentity.isRunning(pid), "a zombie still has /proc/\(pid) but is dead")
        #expect(!ProcessIdentity.isRunning(0) && !ProcessIdentity.isRunning(-1))
    }

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

    /// glusterd's lock, held by another peer's query, answers `--xml` calls with exit 0 and the
    /// refusal inside the XML (a cold run failed a brick restart on it); the call is tried again.
    @Test(.runsOffThePool) func aQueryRefusedOnGlusterdsLockIsTriedAgain() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let healthy = BuiltProducts.repositoryRoot + "/Tests/Fixtures/gluster/status-gv0-healthy.xml"
        try dir.write("gluster", """
            #!/bin/sh
            if [ ! -e \(dir.path)/refused ]; then
              touch \(dir.path)/refused
              echo '<?xml version="1.0"?><cliOutput><opRet>-1</opRet><opErrno>30800</opErrno><opErrstr>Another transaction is in progress for gv0. Please try again after some time.</opErrstr></cliOutput>'
              exit 0
            fi
            cat \(healthy)
            """)
        chmod(dir.file("gluster"), 0o755)
        var settings = StorageRunner.Settings()
        settings.command = [dir.file("gluster")]
        let status = try await GlusterCLI(settings: settings).brickStatus("gv0", "10.77.14.1:/tmp/h14cap/pool/p1/bricks/gv0")
        #expect(FileManager.default.fileExists(atPath: dir.file("refused")), "the stand-in never refused")
        #expect(status?.online == true)
    }
}
