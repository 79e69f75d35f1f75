import Foundation
import Logging
import TestSupport

@testable import SpecolaAlerting

/// Builders for the pure tests: one place that knows how to fire, plan and mark.
enum Scenario {
    static let chat = "chat"
    static let mail = "mail"

    static func fire(_ book: inout AlertBook, _ alert: BuiltinAlert, at now: Int64) {
        book.apply(alert.fire(atUnixMs: now))
    }

    /// Marks every notification as delivered at `now`, as the leader does after delivery.
    static func commit(_ notifications: [AlertNotification], to book: inout AlertBook, at now: Int64) {
        for change in notifications.flatMap({ $0.markNotified(atUnixMs: now) }) { book.apply(change) }
    }

    /// A notification planned from a one-alert book, for receiver tests.
    static func notification(
        _ alert: BuiltinAlert = .nodeDown(node: "n3", reason: "no heartbeat for 12 s"), receiver: String = chat,
        firedAt: Int64 = 1_763_632_800_000
    ) -> AlertNotification {
        var book = AlertBook()
        fire(&book, alert, at: firedAt)
        let planner = NotificationPlanner(routing: AlertRouting(routes: [NotificationRoute(receiver: receiver)]))
        let notifications = planner.plan(book, atUnixMs: firedAt).notifications
        precondition(notifications.count == 1, "a fresh alert must be due at once; the planner tests say why not")
        return notifications[0]
    }

    /// Tests never bootstrap logging; set SPECOLA_TEST_LOG=1 to see the delivery logs.
    static let logger =
        ProcessInfo.processInfo.environment["SPECOLA_TEST_LOG"] == nil
        ? Logger(label: "specola.alerting.test", factory: { _ in SwiftLogNoOpLogHandler() })
        : Logger(label: "specola.alerting.test")
}

/// A fixture server from Tests/Fixtures/alerting, run as a child process on a loopback
/// address and stopped by its PID.
final class FixtureServer: Sendable {
    let process: ChildProcess
    let host: String
    let port: Int
    let logFile: String
    let directory: TempDir

    private init(process: ChildProcess, host: String, port: Int, logFile: String, directory: TempDir) {
        self.process = process
        self.host = host
        self.port = port
        self.logFile = logFile
        self.directory = directory
    }

    static var fixtures: String { BuiltProducts.repositoryRoot + "/Tests/Fixtures/alerting" }

    /// Starts `script` with `--host`, `--log` and `--ready`, and waits until it has bound a port.
    static func start(
        _ script: String, python: String, host: String, arguments: [String] = [], directory: TempDir
    ) async throws -> FixtureServer {
        let logFile = directory.file("\(script).jsonl")
        let ready = directory.file("\(script).port")
        let process = try ChildProcess(
            name: script, executable: python,
            arguments: ["-B", fixtures + "/\(script).py", "--host", host, "--log", logFile, "--ready", ready] + arguments,
            logDirectory: directory.path)
        do {
            try await waitUntil("\(script) to listen on \(host)", timeout: .seconds(20), every: .milliseconds(20)) {
                guard process.isRunning else { throw FixtureError("\(script) exited early:\n\(process.log)") }
                return FileManager.default.fileExists(atPath: ready)
            }
        } catch {
            try? await process.stop(SIGKILL)
            throw FixtureError("\(script) did not start: \(error)\n\(process.log)")
        }
        let port = Int(try String(contentsOfFile: ready, encoding: .utf8))!
        return FixtureServer(process: process, host: host, port: port, logFile: logFile, directory: directory)
    }

    /// The JSON lines the server has recorded so far.
    func records<Record: Decodable>(_ type: Record.Type) throws -> [Record] {
        guard let text = try? String(contentsOfFile: logFile, encoding: .utf8) else { return [] }
        return try text.split(separator: "\n").map { try JSONDecoder().decode(Record.self, from: Data($0.utf8)) }
    }

    func stop() async {
        try? await process.stop(SIGTERM, timeout: .seconds(5))
    }
}

struct FixtureError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Runs `body` with a fresh temporary directory, and removes it and stops `servers` afterwards, also on failure.
func withTemporaryDirectory<T>(_ body: (TempDir) async throws -> T) async throws -> T {
    let directory = try TempDir("specola-alerting")
    do {
        let result = try await body(directory)
        directory.remove()
        return result
    } catch {
        directory.remove()
        throw error
    }
}

/// Runs `body` with the server, then stops it whether or not `body` threw.
func using<T>(_ server: FixtureServer, _ body: (FixtureServer) async throws -> T) async throws -> T {
    do {
        let result = try await body(server)
        await server.stop()
        return result
    } catch {
        await server.stop()
        throw error
    }
}

enum Python {
    /// A python3 for the stdlib-only webhook receiver: Debian's first, as on CI.
    static var any: String { FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") ? "/usr/bin/python3" : "python3" }

    /// The python3 that can import aiosmtpd (Debian's python3-aiosmtpd installs it for /usr/bin/python3,
    /// which a pyenv python3 first on PATH cannot see).
    static func withAiosmtpd() async throws -> String {
        var candidates = ["/usr/bin/python3"]
        if let onPath = which("python3") { candidates.append(onPath) }
        for candidate in candidates where FileManager.default.isExecutableFile(atPath: candidate) {
            if (try? await run(candidate, ["-c", "import aiosmtpd"]))?.status == 0 { return candidate }
        }
        throw FixtureError(
            "no python3 can import aiosmtpd (tried \(candidates.joined(separator: ", "))); "
                + "install it with scripts/install-deps.sh (Debian package python3-aiosmtpd)")
    }
}
