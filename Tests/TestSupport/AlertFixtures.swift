import Foundation
#if canImport(Glibc)
import Glibc
#endif

// The alerting fixture receivers (Tests/Fixtures/alerting), shared by the alerting unit
// tests and the coordinator's process tests.

/// A fixture server from Tests/Fixtures/alerting, run as a child process on a loopback
/// address and stopped by its PID.
public final class FixtureServer: Sendable {
    public let process: ChildProcess
    public let host: String
    public let port: Int
    public let logFile: String
    public let directory: TempDir

    private init(process: ChildProcess, host: String, port: Int, logFile: String, directory: TempDir) {
        self.process = process
        self.host = host
        self.port = port
        self.logFile = logFile
        self.directory = directory
    }

    public static var fixtures: String { BuiltProducts.repositoryRoot + "/Tests/Fixtures/alerting" }

    /// Starts `script` with `--host`, `--log` and `--ready`, and waits until it has bound a port.
    public static func start(
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
    public func records<Record: Decodable>(_ type: Record.Type) throws -> [Record] {
        guard let text = try? String(contentsOfFile: logFile, encoding: .utf8) else { return [] }
        return try text.split(separator: "\n").map { try JSONDecoder().decode(Record.self, from: Data($0.utf8)) }
    }

    public func stop() async {
        try? await process.stop(SIGTERM, timeout: .seconds(5))
    }
}

public struct FixtureError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Runs `body` with a fresh temporary directory, and removes it and stops `servers` afterwards, also on failure.
public func withTemporaryDirectory<T>(_ body: (TempDir) async throws -> T) async throws -> T {
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
public func using<T>(_ server: FixtureServer, _ body: (FixtureServer) async throws -> T) async throws -> T {
    do {
        let result = try await body(server)
        await server.stop()
        return result
    } catch {
        await server.stop()
        throw error
    }
}

public enum Python {
    /// A python3 for the stdlib-only webhook receiver: Debian's first, as on CI.
    public static var any: String { FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") ? "/usr/bin/python3" : "python3" }

    /// The python3 that can import aiosmtpd (Debian's python3-aiosmtpd installs it for /usr/bin/python3,
    /// which a pyenv python3 first on PATH cannot see).
    public static func withAiosmtpd() async throws -> String {
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


/// A self-signed certificate for a test server on `host` (a loopback address), made by
/// openssl; returns the (certificate, key) paths, the certificate doubling as the CA to trust.
public func selfSignedCertificate(in directory: TempDir, name: String, host: String) async throws -> (cert: String, key: String) {
    let cert = directory.file("\(name).pem")
    let key = directory.file("\(name)-key.pem")
    let result = try await run(
        "openssl",
        [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
            "-days", "2", "-subj", "/CN=specola-test-smtp", "-addext", "subjectAltName=IP:\(host),DNS:localhost",
        ])
    guard result.status == 0 else { throw FixtureError("openssl could not make a test certificate: \(result.stderr)") }
    return (cert, key)
}
