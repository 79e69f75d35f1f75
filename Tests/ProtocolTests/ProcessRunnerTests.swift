import Foundation
import Testing
@testable import SpecolaProtocol
import CooperativePoolWatch
#if canImport(Glibc)
import Glibc
import SpecolaProcesses
#endif

@Suite(.runsOffThePool, .watchesCooperativePool) struct ProcessRunnerTests {
    /// A descriptor this process holds (not close-on-exec) must not leak into children.
    @Test func childrenInheritOnlyTheStandardStreams() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("leak-\(UUID().uuidString.prefix(8))").path
        let fd = open(path, O_WRONLY | O_CREAT, 0o644)
        #expect(fd > 2)
        defer { close(fd); unlink(path) }
        let result = try runProcessBlocking("/bin/ls", ["/proc/self/fd"])
        let fds = String(decoding: result.stdout, as: UTF8.self).split(separator: "\n").compactMap { Int($0) }
        // 0, 1, 2 and the directory ls itself opened.
        #expect(!fds.contains(Int(fd)), "inherited: \(fds)")
        #expect(fds.count <= 4, "inherited: \(fds)")
    }

    @Test func aTimeoutKillsTheChild() throws {
        #expect(throws: ProcessRunnerError.self) {
            try runProcessBlocking("/bin/sleep", ["10"], timeout: .milliseconds(300))
        }
    }
}
