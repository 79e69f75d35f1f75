import SpecolaClusterCore
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import SpecolaJobs
import Yams

/// What the coordinator reads from a workload's definition before accepting
/// it: the name the runtime will know it by, and what it needs of a node.
/// Agents start exactly this text; nothing here rewrites it.
struct WorkloadDefinition: Equatable, Sendable {
    /// The libvirt domain name or the kube Pod's metadata.name.
    var name: String
    var cpuMillicores: Int64
    var memoryBytes: Int64

    /// A definition that cannot be used, worded for the operator.
    struct Problem: Error, CustomStringConvertible {
        var description: String
    }

    static func inspect(kind: WorkloadKind, _ text: String, policy: WorkloadPolicy = WorkloadPolicy()) throws -> WorkloadDefinition {
        switch kind {
        case .vm: return try domain(text, policy: policy)
        case .pod: return try kubePod(text, policy: policy)
        }
    }

    /// Domain XML, parsed: `<name>`, `<memory unit=...>` (KiB by default) and `<vcpu>` of the
    /// `<domain>` element itself, after the host-access checks of `hostAccessProblem`.
    static func domain(_ xml: String, policy: WorkloadPolicy) throws -> WorkloadDefinition {
        // No DTD: its entities could expand, or reach for files, inside the leader.
        guard !xml.localizedCaseInsensitiveContains("<!DOCTYPE") else {
            throw Problem(description: "the domain XML has a <!DOCTYPE>; libvirt needs none, remove it")
        }
        let document: XMLDocument
        do {
            document = try XMLDocument(xmlString: xml, options: [.nodeLoadExternalEntitiesNever])
        } catch {
            throw Problem(description: "the domain XML does not parse: \(error.localizedDescription)")
        }
        guard let root = document.rootElement(), root.name == "domain" else {
            throw Problem(description: "not libvirt domain XML: the top element is not <domain>")
        }
        if let problem = hostAccessProblem(root, policy: policy) { throw Problem(description: problem) }
        func child(_ tag: String) -> XMLElement? { root.elements(forName: tag).first }
        guard let name = child("name")?.stringValue?.trimmingCharacters(in: .whitespacesAndNewlines), !name.isEmpty else {
            throw Problem(description: "the domain XML has no <name>")
        }
        var memory: Int64 = 0
        if let element = child("memory") {
            let value = (element.stringValue ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            let unit = element.attribute(forName: "unit")?.stringValue
            guard let amount = Int64(value), let scale = memoryUnits[(unit ?? "KiB").lowercased()] else {
                throw Problem(description: "the domain's <memory> '\(value)' \(unit ?? "") is not an amount libvirt accepts")
            }
            memory = amount * scale
        }
        var cpu: Int64 = 1000
        if let vcpu = child("vcpu") {
            let value = (vcpu.stringValue ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            guard let count = Int64(value), count > 0 else { throw Problem(description: "the domain's <vcpu> '\(value)' is not a count") }
            cpu = count * 1000
        }
        return WorkloadDefinition(name: name, cpuMillicores: cpu, memoryBytes: memory)
    }

    /// What in a domain would reach past the VM into its host: passed-through host devices,
    /// host block devices not on the allow-list, host directories outside the allowed prefixes,
    /// and elements of a hypervisor namespace such as `<qemu:commandline>`, which hand their
    /// text to the emulator. `<metadata>` is the application's own and libvirt never acts on it.
    static func hostAccessProblem(_ domain: XMLElement, policy: WorkloadPolicy) -> String? {
        var pending = domain.children?.compactMap { $0 as? XMLElement } ?? []
        while let element = pending.popLast() {
            let name = element.name ?? ""
            let type = element.attribute(forName: "type")?.stringValue
            if name.contains(":") || !(element.uri ?? "").isEmpty {
                return "the domain XML has <\(name)>: elements of a hypervisor namespace (qemu:, lxc: ...) pass host options through and are refused"
            }
            switch (name, type) {
            case ("metadata", _):
                continue
            case ("hostdev", _), ("interface", "hostdev"), ("redirdev", _):
                return "the domain XML passes a host device through (<\(name)\(type.map { " type='\($0)'" } ?? "")>); HA VMs may not use host devices"
            case ("disk", "block"):
                let device = element.elements(forName: "source").first?.attribute(forName: "dev")?.stringValue ?? ""
                guard policy.allowedBlockDevices.contains(device) else {
                    let allowed = policy.allowedBlockDevices.isEmpty ? "none" : policy.allowedBlockDevices.joined(separator: ", ")
                    return "the domain XML attaches host block device '\(device)', which is not in workloads.allowedBlockDevices of the coordinator's configuration (allowed now: \(allowed))"
                }
            case ("filesystem", _):
                let source = element.elements(forName: "source").first
                if let directory = source?.attribute(forName: "dir")?.stringValue, let problem = policy.hostPathProblem(directory) {
                    return "the domain XML shares a host directory: \(problem)"
                }
            default:
                break
            }
            pending += element.children?.compactMap { $0 as? XMLElement } ?? []
        }
        return nil
    }

    /// libvirt's memory units (case-insensitive).
    static let memoryUnits: [String: Int64] = [
        "b": 1, "bytes": 1, "kb": 1_000, "k": 1_024, "kib": 1_024, "mb": 1_000_000, "m": 1 << 20, "mib": 1 << 20,
        "gb": 1_000_000_000, "g": 1 << 30, "gib": 1 << 30, "tb": 1_000_000_000_000, "t": 1 << 40, "tib": 1 << 40,
    ]

    /// Kube YAML for `podman kube play`: exactly one document, a Pod, with no host access
    /// (see `podHostAccessProblem`); requests summed over its containers.
    static func kubePod(_ yaml: String, policy: WorkloadPolicy) throws -> WorkloadDefinition {
        let documents: [Any]
        do {
            // Refused before anything is expanded (see YAMLAliases).
            if let anchored = try YAMLAliases.composeAll(yaml).firstAnchored {
                throw Problem(description: "line \(anchored.mark?.line ?? 0): \(YAMLAliases.refusal)")
            }
            documents = try Yams.load_all(yaml: yaml).map { $0 }
        } catch let problem as Problem {
            throw problem
        } catch {
            throw Problem(description: "the kube YAML does not parse: \(error)")
        }
        // Another document (a Deployment, a second Pod) would start things HA does not track.
        guard documents.count == 1, let pod = documents[0] as? [String: Any], pod["kind"] as? String == "Pod" else {
            let kinds = documents.map { (($0 as? [String: Any])?["kind"] as? String) ?? "no kind" }
            throw Problem(description: "the kube YAML must be exactly one document of kind Pod (it holds \(documents.count): \(kinds.joined(separator: ", ")))")
        }
        guard let metadata = pod["metadata"] as? [String: Any], let name = metadata["name"] as? String, !name.isEmpty else {
            throw Problem(description: "the Pod has no metadata.name")
        }
        let spec = pod["spec"] as? [String: Any] ?? [:]
        if let problem = podHostAccessProblem(spec, policy: policy) { throw Problem(description: "the Pod '\(name)' \(problem)") }
        let containers = spec["containers"] as? [[String: Any]] ?? []
        guard !containers.isEmpty else { throw Problem(description: "the Pod '\(name)' has no containers") }
        var cpu: Int64 = 0
        var memory: Int64 = 0
        for container in containers {
            let requests = ((container["resources"] as? [String: Any])?["requests"] as? [String: Any]) ?? [:]
            if let value = requests["cpu"] {
                guard let amount = Quantity.millicores("\(value)") else { throw Problem(description: "cpu request '\(value)' is not a CPU amount") }
                cpu += amount
            }
            if let value = requests["memory"] {
                guard let amount = Quantity.bytes("\(value)") else { throw Problem(description: "memory request '\(value)' is not a size") }
                memory += amount
            }
        }
        return WorkloadDefinition(name: name, cpuMillicores: cpu, memoryBytes: memory)
    }

    /// What in a Pod's spec reaches into its host: the host's namespaces, privileged containers
    /// or added capabilities, and hostPath volumes outside the allowed prefixes. Keys match
    /// without regard to case and "yes"/"on" count as true, as podman's decoder reads them.
    static func podHostAccessProblem(_ spec: [String: Any], policy: WorkloadPolicy) -> String? {
        for field in ["hostPID", "hostNetwork", "hostIPC"] where values(spec, field).contains(where: isTrue) {
            return "sets spec.\(field): true; HA pods may not share the host's namespaces"
        }
        let containers = ["initContainers", "containers", "ephemeralContainers"].flatMap { values(spec, $0) }
            .flatMap { $0 as? [Any] ?? [] }.compactMap { $0 as? [String: Any] }
        for container in containers {
            let label = values(container, "name").first.map { "\($0)" } ?? "?"
            for security in values(container, "securityContext").compactMap({ $0 as? [String: Any] }) {
                if values(security, "privileged").contains(where: isTrue) {
                    return "has privileged: true in container '\(label)'; HA pods may not run privileged containers"
                }
                let added = values(security, "capabilities").compactMap { $0 as? [String: Any] }.flatMap { values($0, "add") }
                    .flatMap { $0 as? [Any] ?? [$0] }
                if !added.isEmpty {
                    return "adds capabilities (\(added.map { "\($0)" }.joined(separator: ", "))) in container '\(label)'; HA pods keep podman's default set"
                }
            }
        }
        for volume in values(spec, "volumes").flatMap({ $0 as? [Any] ?? [] }).compactMap({ $0 as? [String: Any] }) {
            for hostPath in values(volume, "hostPath") {
                let path = (hostPath as? [String: Any]).flatMap { values($0, "path").first as? String } ?? ""
                if let problem = policy.hostPathProblem(path) { return "has a hostPath volume: \(problem)" }
            }
        }
        return nil
    }

    /// Every value whose key is `key` in any case.
    private static func values(_ mapping: [String: Any], _ key: String) -> [Any] {
        mapping.filter { $0.key.lowercased() == key.lowercased() }.map(\.value)
    }

    private static func isTrue(_ value: Any) -> Bool {
        if let flag = value as? Bool { return flag }
        return ["true", "yes", "on", "y"].contains("\(value)".lowercased())
    }
}
