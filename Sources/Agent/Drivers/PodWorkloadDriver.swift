import Foundation
import Logging
import SpecolaProtocol

/// HA pods through the podman CLI: `podman kube play` of the workload's kube
/// YAML, watched with `podman pod ps`, stopped and removed with `podman pod rm -f`.
/// The pod is named by the YAML's metadata.name (the coordinator checks that it
/// is the workload's name). A pod counts as up while any of its containers
/// runs (Running or Degraded); restarting single containers inside it is the
/// job of the pod's own restartPolicy.
public struct PodWorkloadDriver: WatchedWorkloadDriver {
    /// Annotations on the pod's containers: which node's agent and which instance started it.
    public static let nodeAnnotation = "org.specola.node"
    public static let instanceAnnotation = "org.specola.workload"

    /// The agent's podman settings (path, CONTAINERS_CONF, node name) and its way of running podman.
    let podman: PodmanDriver
    /// Where the kube YAML of each pod is written for `kube play`.
    let directory: String
    var logger: Logger { podman.logger }

    public init(podman: PodmanDriver, directory: String) {
        self.podman = podman
        self.directory = directory
    }

    public func start(name: String, generation: UInt64, definition: String) async throws {
        switch try await observe([name])[name] {
        case .running?:
            logger.info("pod already runs here; adopting it", metadata: ["workload.name": "\(name)"])
            return
        case .stopped(let state)? where !state.hasPrefix("gone"):
            // An exited pod of the same name would make `kube play` fail.
            try await stop(name: name, immediately: true)
        default:
            break
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let file = directory + "/\(name).yaml"
        try definition.write(toFile: file, atomically: true, encoding: .utf8)
        let played = try await podman.podman([
            "kube", "play", "--annotation", "\(Self.nodeAnnotation)=\(podman.nodeName)",
            "--annotation", "\(Self.instanceAnnotation)=\(name)/\(generation)", file,
        ], timeout: .seconds(300))
        guard played.status == 0 else {
            // Leave nothing half-created behind.
            try? await stop(name: name, immediately: true)
            throw DriverError("podman kube play failed: \(played.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }

    public func observe(_ names: [String]) async throws -> [String: WorkObservation] {
        let listed = try await podman.podman(["pod", "ps", "--format", "json"], timeout: .seconds(30))
        guard listed.status == 0 else { throw DriverError("podman pod ps failed: \(listed.stderr)") }
        var status: [String: String] = [:]
        if !listed.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            guard let pods = try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]] else {
                throw DriverError("podman pod ps printed something other than a JSON list")
            }
            for pod in pods {
                if let name = pod["Name"] as? String { status[name] = (pod["Status"] as? String ?? "unknown").lowercased() }
            }
        }
        var seen: [String: WorkObservation] = [:]
        for name in names {
            switch status[name] {
            case nil: seen[name] = .stopped("gone (no such pod)")
            case "running", "degraded": seen[name] = .running
            case let other?: seen[name] = .stopped(other)
            }
        }
        return seen
    }

    /// The init process of each of the pod's containers (the infra one too). Killing a
    /// container's init kills everything in its pid namespace.
    public func processes(of name: String) async -> [ProcessIdentity] {
        guard let listed = try? await podman.podman(["pod", "inspect", name, "--format", "{{range .Containers}}{{.Id}} {{end}}"],
                                                    timeout: .seconds(30)),
              listed.status == 0 else { return [] }
        let ids = listed.stdout.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }.filter { !$0.isEmpty }
        guard !ids.isEmpty, let inspected = try? await podman.podman(["inspect", "--format", "{{.State.Pid}}"] + ids, timeout: .seconds(30)),
              inspected.status == 0 else { return [] }
        return inspected.stdout.split(whereSeparator: \.isNewline).compactMap { pid_t($0.trimmingCharacters(in: .whitespaces)) }
            .compactMap { ProcessIdentity(pid: $0) }
    }

    public func stop(name: String, immediately: Bool = false) async throws {
        let removed = try await podman.podman(["pod", "rm", "--force", "--ignore", "--time", immediately ? "0" : "10", name], timeout: .seconds(60))
        guard removed.status == 0 else {
            throw DriverError("podman pod rm failed: \(removed.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        try? FileManager.default.removeItem(atPath: directory + "/\(name).yaml")
    }
}
