import Foundation
import SpecolaProtocol
#if canImport(Glibc)
import Glibc
import SpecolaProcesses
#endif

/// A libvirtd of the test's own, on a socket inside `workDir`, stopped by PID.
///
/// Started with `spawnProcess` rather than `Process`: a child of a concurrency-pool
/// thread would otherwise inherit a mask that blocks SIGTERM.
public final class PrivateLibvirtd: @unchecked Sendable {
    public let uri: String
    private let pid: pid_t
    private let lock = NSLock()
    private var reaped = false

    /// The project's libvirtd.conf template (a socket dir, no auth).
    public static var template: URL {
        URL(fileURLWithPath: BuiltProducts.repositoryRoot + "/Tests/Fixtures/libvirt/libvirtd.conf.template")
    }

    private init(uri: String, pid: pid_t) {
        self.uri = uri
        self.pid = pid
    }

    public static func start(workDir: String, template: URL = PrivateLibvirtd.template) async throws -> PrivateLibvirtd {
        let runDir = "\(workDir)/run"
        let driverDir = "\(workDir)/drivers"
        for dir in [runDir, driverDir] {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        }
        let config = try String(contentsOf: template, encoding: .utf8)
            .replacingOccurrences(of: "@RUNDIR@", with: runDir)
        try config.write(toFile: "\(workDir)/libvirtd.conf", atomically: true, encoding: .utf8)
        let socket = "\(runDir)/libvirt-sock"
        try? FileManager.default.removeItem(atPath: socket)

        let logPath = "\(workDir)/libvirtd.log"
        let log = open(logPath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard log >= 0 else { throw LibvirtdTestError("cannot open \(logPath)") }
        defer { close(log) }
        let pid = try spawnProcess(
            "/usr/sbin/libvirtd", ["-f", "\(workDir)/libvirtd.conf", "-p", "\(workDir)/libvirtd.pid"],
            environment: ["LIBVIRT_DRIVER_DIR": driverDir], stdout: log, stderr: log)
        let daemon = PrivateLibvirtd(uri: "test+unix:///default?socket=\(socket)", pid: pid)
        do {
            try await waitUntil("libvirtd socket \(socket)", timeout: .seconds(15)) {
                if daemon.hasExited() { throw LibvirtdTestError("libvirtd exited early") }
                return FileManager.default.fileExists(atPath: socket)
            }
        } catch {
            try? await daemon.stop()
            let output = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            throw LibvirtdTestError("libvirtd did not start: \(error); log: \(output)")
        }
        return daemon
    }

    /// Keeps one client connected (`virsh event --loop`), since the test driver
    /// forgets its domains when the last client leaves, e.g. when an agent is killed.
    public func holdConnection(logDirectory: String, name: String) throws -> ChildProcess {
        try ChildProcess(name: name, executable: "virsh", arguments: ["-q", "-c", uri, "event", "--all", "--loop"], logDirectory: logDirectory)
    }

    /// Runs `virsh` against this daemon.
    @discardableResult
    public func virsh(_ args: String...) async throws -> (status: Int32, stdout: String, stderr: String) {
        try await run("virsh", ["-q", "-c", uri] + args, timeout: .seconds(20))
    }

    /// The libvirt state of a domain ("running", "shut off", ...), nil when there is no such domain.
    public func domainState(_ name: String) async throws -> String? {
        let result = try await virsh("domstate", name)
        return result.status == 0 ? result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) : nil
    }

    /// SIGTERM, then SIGKILL if needed; returns once /proc/PID is gone.
    public func stop() async throws {
        if !hasExited() { kill(pid, SIGTERM) }
        do {
            try await waitUntil("libvirtd \(pid) to exit", timeout: .seconds(10)) { self.hasExited() }
        } catch {
            kill(pid, SIGKILL)
            try await waitUntil("libvirtd \(pid) to die after SIGKILL") { self.hasExited() }
        }
        try await waitUntil("/proc/\(pid) to vanish") { !FileManager.default.fileExists(atPath: "/proc/\(self.pid)") }
    }

    private func hasExited() -> Bool {
        lock.withLock {
            if !reaped {
                var status: Int32 = 0
                reaped = waitpid(pid, &status, WNOHANG) == pid
            }
            return reaped
        }
    }
}

struct LibvirtdTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
