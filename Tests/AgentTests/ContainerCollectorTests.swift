import SpecolaProtocol
import Foundation
import Logging
import TestSupport
import Testing

@testable import SpecolaAgent

@Suite struct ContainerCollectorTests {
    private static let image = "localhost/specola-test-mini:latest"
    private static let podmanEnvironment = [
        "CONTAINERS_CONF": URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/podman/containers.conf").path
    ]

    private let collector = ContainerCollector(environment: podmanEnvironment, logger: Logger(label: "test.podman"))

    @Test func seesAContainerStartStopAndGo() async throws {
        try await Self.ensureImage()
        let name = "specola-test-\(UUID().uuidString.prefix(8).lowercased())"
        try await Self.withCleanup(["rm", "-f", "-t", "0", name]) {
            try await Self.podman("run", "-d", "--network", "none", "--name", name, "--label", "specola.test=1",
                                  Self.image, "/bin/busybox", "sleep", "300")
            try await waitUntil("\(name) running") { await collector.collect().containers.first { $0.name == name }?.state == "running" }
            let seen = await collector.collect()
            #expect(seen.available)
            let container = try #require(seen.containers.first { $0.name == name })
            #expect(container.image == Self.image)
            #expect(container.labels["specola.test"] == "1")
            #expect(container.id.count == 64)
            #expect(container.createdAtUnix > 0)

            try await Self.podman("stop", "-t", "0", name)
            try await waitUntil("\(name) exited") { await collector.collect().containers.first { $0.name == name }?.state == "exited" }

            try await Self.podman("rm", name)
            try await waitUntil("\(name) gone") { await !collector.collect().containers.contains { $0.name == name } }
        }
    }

    @Test func reportsPodsWithTheirContainers() async throws {
        try await Self.ensureImage()
        let suffix = UUID().uuidString.prefix(8).lowercased()
        let podName = "specola-test-pod-\(suffix)"
        let containerName = "specola-test-member-\(suffix)"
        try await Self.withCleanup(["pod", "rm", "-f", "-t", "0", podName]) {
            try await Self.podman("pod", "create", "--infra=false", "--name", podName)
            let containerID = try await Self.podman(
                "create", "--pod", podName, "--network", "none", "--name", containerName, Self.image, "/bin/busybox", "true")
            let section = await collector.collect()
            let pod = try #require(section.pods.first { $0.name == podName })
            #expect(pod.containerIds == [containerID])
            #expect(pod.status == "created")
            let member = try #require(section.containers.first { $0.name == containerName })
            #expect(member.podID == pod.id)
            #expect(member.state == "created")
        }
    }

    @Test func missingPodmanIsUnavailable() async throws {
        let collector = ContainerCollector(podmanPath: "/nonexistent/podman", logger: Logger(label: "test.podman"))
        let section = await collector.collect()
        #expect(!section.available)
        #expect(section.reason.contains("/nonexistent/podman"), "\(section.reason)")
    }

    @Test func parsesPodmanJSON() {
        let item: [String: Any] = [
            "Id": "abc", "Names": ["web"], "Image": "img", "State": "Exited", "Pod": "p1",
            "Created": 1_700_000_000, "ExitCode": 137, "Labels": ["k": "v"],
        ]
        let container = ContainerCollector.container(from: item)
        #expect(container.name == "web")
        #expect(container.state == "exited")
        #expect(container.exitCode == 137)
        #expect(container.createdAtUnix == 1_700_000_000)
        #expect(container.labels == ["k": "v"])
        let pod = ContainerCollector.pod(from: [
            "Id": "p1", "Name": "pod", "Status": "Running", "Containers": [["Id": "abc", "Names": "web"]],
        ])
        #expect(pod.containerIds == ["abc"])
        #expect(pod.status == "running")
    }

    /// Runs podman with the fixture configuration; returns trimmed stdout, throws on failure.
    @discardableResult
    private static func podman(_ args: String...) async throws -> String {
        try await podman(args)
    }

    private static func podman(_ args: [String]) async throws -> String {
        let result = try await runProcess("podman", args, environment: podmanEnvironment)
        let stdout = String(decoding: result.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard result.status == 0 else {
            throw PodmanTestError("podman \(args.joined(separator: " ")): \(String(decoding: result.stderr, as: UTF8.self))")
        }
        return stdout
    }

    /// Runs `body`, then always the podman cleanup command.
    private static func withCleanup(_ cleanup: [String], _ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch {
            _ = try? await runProcess("podman", cleanup, environment: podmanEnvironment)
            throw error
        }
        _ = try? await runProcess("podman", cleanup, environment: podmanEnvironment)
    }

    /// Imports the image once per test process, so parallel tests do not import it twice.
    private static let imageImport = Task { try await importImageIfMissing() }

    private static func ensureImage() async throws {
        try await imageImport.value
    }

    /// Imports a busybox-only image when it is not there yet.
    private static func importImageIfMissing() async throws {
        if try await runProcess("podman", ["image", "exists", image], environment: podmanEnvironment).status == 0 {
            return
        }
        let dir = try TempDir()
        defer { dir.remove() }
        let bin = "\(dir.path)/rootfs/bin"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "/bin/busybox", toPath: "\(bin)/busybox")
        try FileManager.default.createSymbolicLink(atPath: "\(bin)/sh", withDestinationPath: "busybox")
        let result = try await runProcess(
            "/bin/sh", ["-c", "tar -C \"$0\" -c . | podman import - \"$1\"", "\(dir.path)/rootfs", image],
            environment: podmanEnvironment)
        if result.status != 0 {
            throw PodmanTestError("podman import failed: \(String(decoding: result.stderr, as: UTF8.self))")
        }
    }
}

private struct PodmanTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
