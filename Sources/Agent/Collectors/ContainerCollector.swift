import Foundation
import Logging
import SpecolaProtocol
import SpecolaProcesses

/// Reports podman containers and pods through the podman CLI's JSON output.
///
/// When podman is missing or fails, the section says `available = false` with the reason.
public struct ContainerCollector: Sendable {
    private let podmanPath: String
    private let environment: [String: String]
    private let logger: Logger
    private let timeout: Duration = .seconds(30)

    /// `environment` is added to the agent's own, e.g. to set `CONTAINERS_CONF`.
    public init(podmanPath: String = "podman", environment: [String: String] = [:], logger: Logger) {
        self.podmanPath = podmanPath
        self.environment = environment
        self.logger = logger
    }

    public func collect() async -> Specola_V1_ContainerSection {
        var section = Specola_V1_ContainerSection()
        do {
            let containers = try await podmanJSON(["ps", "-a", "--format", "json"])
            let pods = try await podmanJSON(["pod", "ps", "--format", "json"])
            section.available = true
            section.containers = containers.map(Self.container(from:)).sorted { $0.name < $1.name }
            section.pods = pods.map(Self.pod(from:)).sorted { $0.name < $1.name }
        } catch {
            section.available = false
            section.reason = "\(error)"
            logger.debug("podman unavailable", metadata: ["reason": "\(error)"])
        }
        return section
    }

    private func podmanJSON(_ args: [String]) async throws -> [[String: Any]] {
        let result = try await runProcess(podmanPath, args, environment: environment, timeout: timeout)
        guard result.status == 0 else {
            let stderr = String(decoding: result.stderr, as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            throw PodmanError(
                message: "podman \(args.joined(separator: " ")) exited \(result.status): \(stderr)")
        }
        // Older podman prints nothing instead of [] when there is nothing to list.
        if result.stdout.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            return []
        }
        guard let items = try? JSONSerialization.jsonObject(with: result.stdout) as? [[String: Any]] else {
            throw PodmanError(message: "podman \(args.joined(separator: " ")) printed unexpected JSON")
        }
        return items
    }

    static func container(from item: [String: Any]) -> Specola_V1_Container {
        var container = Specola_V1_Container()
        container.id = item["Id"] as? String ?? ""
        container.name = firstName(item["Names"])
        container.image = item["Image"] as? String ?? ""
        container.state = (item["State"] as? String ?? "").lowercased()
        container.podID = item["Pod"] as? String ?? ""
        container.createdAtUnix = (item["Created"] as? NSNumber)?.int64Value ?? 0
        container.exitCode = (item["ExitCode"] as? NSNumber)?.int32Value ?? 0
        if let labels = item["Labels"] as? [String: Any] {
            container.labels = labels.compactMapValues { $0 as? String }
        }
        return container
    }

    static func pod(from item: [String: Any]) -> Specola_V1_Pod {
        var pod = Specola_V1_Pod()
        pod.id = item["Id"] as? String ?? ""
        pod.name = item["Name"] as? String ?? ""
        pod.status = (item["Status"] as? String ?? "").lowercased()
        let members = item["Containers"] as? [[String: Any]] ?? []
        pod.containerIds = members.compactMap { $0["Id"] as? String }
        return pod
    }

    /// podman prints names as a list for containers and as a string inside pods.
    private static func firstName(_ value: Any?) -> String {
        if let names = value as? [String] { return names.first ?? "" }
        return value as? String ?? ""
    }
}

struct PodmanError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
