import SpecolaProtocol
import Foundation
import Logging
import TestSupport
import Testing

@testable import SpecolaAgent
import CooperativePoolWatch

@Suite(.watchesCooperativePool) struct ContainerCollectorTests {
    private static let image = TestPodman.image
    private static let podmanEnvironment = TestPodman.environment

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

    @discardableResult
    private static func podman(_ args: String...) async throws -> String {
        try await TestPodman.run(args)
    }

    /// Runs `body`, then always the podman cleanup command.
    private static func withCleanup(_ cleanup: [String], _ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch {
            _ = try? await TestPodman.run(cleanup)
            throw error
        }
        _ = try? await TestPodman.run(cleanup)
    }

    private static func ensureImage() async throws {
        try await TestPodman.ensureImage()
    }
}
