@_exported import SeededRandom
import Foundation
import SpecolaProtocol
#if canImport(Glibc)
import Glibc
import SpecolaProcesses
import SpecolaDevSupport
#endif

/// A temporary directory removed by `remove()`.
public struct TempDir: Sendable {
    public let path: String

    public init(_ prefix: String = "specola-test") throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        path = base.path
    }

    public func file(_ name: String) -> String { path + "/" + name }

    public func write(_ name: String, _ text: String) throws {
        try text.write(toFile: file(name), atomically: true, encoding: .utf8)
    }

    /// Removes the directory. A pass fails, leaving the rest, when a file appears or goes while it
    /// runs (a process the test stopped a moment ago); the next pass removes what is left.
    public func remove() {
        for _ in 0..<3 {
            do {
                try FileManager.default.removeItem(atPath: path)
                return
            } catch {
                if !FileManager.default.fileExists(atPath: path) { return }
            }
        }
    }

    /// A directory that tasks, which run as unprivileged users (uid 65534 in containers, nobody for exec), may write.
    public func taskWritableDirectory(_ name: String) throws -> String {
        try FileManager.default.createDirectory(atPath: file(name), withIntermediateDirectories: true, attributes: [.posixPermissions: 0o777])
        // The process umask trims the mode given at creation.
        try FileManager.default.setAttributes([.posixPermissions: 0o777], ofItemAtPath: file(name))
        return file(name)
    }
}

public struct TimedOut: Error, CustomStringConvertible {
    public var what: String
    /// What the wait saw last, for the reader of a failed run.
    public var lastSeen: String?
    public init(what: String, lastSeen: String? = nil) { self.what = what; self.lastSeen = lastSeen }
    public var description: String {
        "timed out waiting for \(what)" + (lastSeen.map { "; last seen:\n\($0)" } ?? "")
    }
}

/// Polls `condition` until it holds or the deadline passes (never a bare sleep).
public func waitUntil(
    _ what: String, timeout: Duration = .seconds(20), every interval: Duration = .milliseconds(100),
    explain: (() async -> String)? = nil,
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if (try? await condition()) == true { return }
        try await Task.sleep(for: interval)
    }
    if try await condition() { return }
    throw TimedOut(what: what, lastSeen: await explain?())
}

/// Polls `value` until it is non-nil, and returns it.
public func waitUntilValue<T>(
    _ what: String, timeout: Duration = .seconds(20), every interval: Duration = .milliseconds(100),
    _ value: () async throws -> T?
) async throws -> T {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if let found = try? await value() { return found }
        try await Task.sleep(for: interval)
    }
    if let found = try await value() { return found }
    throw TimedOut(what: what)
}

/// Locates the package's built executables next to the test bundle.
public enum BuiltProducts {
    public static var directory: String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var url = URL(fileURLWithPath: exe).deletingLastPathComponent()
        // Inside `X.xctest` on some layouts.
        if url.pathExtension == "xctest" { url.deleteLastPathComponent() }
        return url.path
    }

    public static func path(_ name: String) -> String { directory + "/" + name }

    /// Repository root, found from this source file.
    public static var repositoryRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }
}

/// A child process started by a test, stopped by PID only. Started with a
/// clean signal mask (see `spawnProcess`), so SIGTERM reaches it.
public final class ChildProcess: @unchecked Sendable {
    public let pid: pid_t
    public let logPath: String
    public let name: String
    private let lock = NSLock()
    private var exitStatus: Int32?

    public init(name: String, executable: String, arguments: [String], logDirectory: String,
                environment: [String: String] = [:]) throws {
        self.name = name
        logPath = logDirectory + "/\(name).log"
        let fd = open(logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        guard fd >= 0 else { throw TimedOut(what: "open \(logPath)") }
        defer { close(fd) }
        pid = try spawnProcess(executable, arguments, environment: environment, stdout: fd, stderr: fd)
    }

    /// Reaps the child without blocking; true while it runs.
    public var isRunning: Bool {
        lock.withLock {
            if exitStatus != nil { return false }
            var status: Int32 = 0
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid {
                let signal = status & 0x7f
                exitStatus = signal == 0 ? (status >> 8) & 0xff : 128 + signal
                return false
            }
            return result == 0
        }
    }

    public var terminationStatus: Int32? { _ = isRunning; return lock.withLock { exitStatus } }

    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    public func signal(_ sig: Int32) { if isRunning { kill(pid, sig) } }

    /// Sends `sig` and waits until the process has exited and been reaped.
    public func stop(_ sig: Int32 = SIGTERM, timeout: Duration = .seconds(10)) async throws {
        signal(sig)
        do {
            try await waitUntil("\(name) (pid \(pid)) to exit", timeout: timeout, every: .milliseconds(20)) { !isRunning }
        } catch {
            kill(pid, SIGKILL)
            try await waitUntil("\(name) to die after SIGKILL", timeout: .seconds(5)) { !isRunning }
            throw error
        }
    }

    public func waitForExit(timeout: Duration = .seconds(20)) async throws -> Int32 {
        try await waitUntil("\(name) to exit", timeout: timeout, every: .milliseconds(20)) { !isRunning }
        return terminationStatus ?? -1
    }
}

/// Runs a command to completion (stdin is /dev/null) and returns its status and output.
/// Async so the wait happens off Swift's small cooperative pool: a blocking wait there
/// starves every other test running alongside on a 2-core machine.
@discardableResult
public func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
                timeout: Duration = .seconds(60)) async throws -> (status: Int32, stdout: String, stderr: String) {
    let result = try await runProcess(executable, arguments, environment: environment, timeout: timeout)
    return (result.status, String(decoding: result.stdout, as: UTF8.self), String(decoding: result.stderr, as: UTF8.self))
}

/// A tool's path from PATH, or from the sbin directories a non-root PATH may lack.
public func which(_ tool: String) -> String? {
    resolveExecutable(tool) ?? resolveExecutable(tool, environment: ["PATH": "/usr/sbin:/sbin"])
}

/// A free port on `host`, found by binding port 0 (TCP unless `udp`).
public func freePort(host: String = "127.0.0.1", udp: Bool = false) -> Int {
    LoopbackPort.free(on: host, udp: udp)
}

/// `count` different free TCP ports on `host`, for one process's listeners (probed one by one, ports can repeat).
public func freePorts(_ count: Int, host: String) -> [Int] {
    LoopbackPort.free(count, on: host)
}

/// A throwaway cluster PKI for a test.
public struct TestPKI: Sendable {
    public let directory: String

    public init(in dir: TempDir, name: String = "pki") throws {
        directory = dir.file(name)
        // Longer than CertificateExpiring's 30-day warning, so a test cluster starts without alerts.
        _ = try PKI.initCA(directory: directory, commonName: "test-ca-\(name)", validityDays: 400)
    }

    @discardableResult
    public func issue(_ role: CertificateRole, _ name: String, sans: [String] = []) throws -> TLSFiles {
        let paths = try PKI.issue(directory: directory, role: role, name: name, sans: sans, validityDays: 90)
        return TLSFiles(ca: directory + "/ca.pem", cert: paths.certPath, key: paths.keyPath)
    }
}

/// `run` for quick commands in synchronous code (iptables rules, cleanup).
/// It blocks the calling thread, so keep it to commands that return at once.
@discardableResult
public func runBlocking(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
                        timeout: Duration = .seconds(30)) throws -> (status: Int32, stdout: String, stderr: String) {
    let result = try runProcessBlocking(executable, arguments, environment: environment, timeout: timeout)
    return (result.status, String(decoding: result.stdout, as: UTF8.self), String(decoding: result.stderr, as: UTF8.self))
}
