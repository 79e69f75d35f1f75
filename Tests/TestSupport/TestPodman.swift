import Foundation
import SpecolaProtocol

/// Real podman with the project's fixture configuration (runc, safe ulimits)
/// and a tiny local busybox image, since no registry is reachable.
public enum TestPodman {
    public static let image = "localhost/specola-test-mini:latest"
    public static let environment = ["CONTAINERS_CONF": BuiltProducts.repositoryRoot + "/Tests/Fixtures/podman/containers.conf"]

    /// Runs podman; returns trimmed stdout, throws on a non-zero exit.
    @discardableResult
    public static func run(_ args: [String]) async throws -> String {
        let result = try await runProcess("podman", args, environment: environment)
        let stdout = String(decoding: result.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard result.status == 0 else {
            throw TimedOut(what: "podman \(args.joined(separator: " ")) to succeed: \(String(decoding: result.stderr, as: UTF8.self))")
        }
        return stdout
    }

    /// Imports the image once per test process, so parallel tests do not import it twice.
    private static let imageImport = Task { try await importImageIfMissing() }

    public static func ensureImage() async throws {
        try await imageImport.value
    }

    private static func importImageIfMissing() async throws {
        do {
            try await BusyboxImage.ensure(image, podmanEnvironment: environment)
        } catch {
            throw TimedOut(what: "the test image to be imported: \(error)")
        }
    }
}
