import SpecolaClusterCore
import Foundation
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

    static func inspect(kind: WorkloadKind, _ text: String) throws -> WorkloadDefinition {
        switch kind {
        case .vm: return try domain(text)
        case .pod: return try kubePod(text)
        }
    }

    /// Domain XML: `<name>`, `<memory unit=...>` (KiB by default) and `<vcpu>`.
    static func domain(_ xml: String) throws -> WorkloadDefinition {
        guard xml.contains("<domain") else { throw Problem(description: "not libvirt domain XML: no <domain> element") }
        guard let name = element("name", in: xml)?.value, !name.isEmpty else {
            throw Problem(description: "the domain XML has no <name>")
        }
        var memory: Int64 = 0
        if let element = element("memory", in: xml) {
            guard let amount = Int64(element.value), let scale = memoryUnits[(element.unit ?? "KiB").lowercased()] else {
                throw Problem(description: "the domain's <memory> '\(element.value)' \(element.unit ?? "") is not an amount libvirt accepts")
            }
            memory = amount * scale
        }
        var cpu: Int64 = 1000
        if let vcpu = element("vcpu", in: xml) {
            guard let count = Int64(vcpu.value), count > 0 else { throw Problem(description: "the domain's <vcpu> '\(vcpu.value)' is not a count") }
            cpu = count * 1000
        }
        return WorkloadDefinition(name: name, cpuMillicores: cpu, memoryBytes: memory)
    }

    /// libvirt's memory units (case-insensitive).
    static let memoryUnits: [String: Int64] = [
        "b": 1, "bytes": 1, "kb": 1_000, "k": 1_024, "kib": 1_024, "mb": 1_000_000, "m": 1 << 20, "mib": 1 << 20,
        "gb": 1_000_000_000, "g": 1 << 30, "gib": 1 << 30, "tb": 1_000_000_000_000, "t": 1 << 40, "tib": 1 << 40,
    ]

    /// The first `<tag ...>value</tag>` (the domain's own `<name>` comes before any nested one).
    private static func element(_ tag: String, in xml: String) -> (value: String, unit: String?)? {
        var from = xml.startIndex
        while let open = xml.range(of: "<\(tag)", range: from..<xml.endIndex) {
            from = open.upperBound
            guard let close = xml.range(of: ">", range: open.upperBound..<xml.endIndex) else { return nil }
            let attributes = xml[open.upperBound..<close.lowerBound]
            // `<memory` must not match `<memoryBacking>`: the tag ends at whitespace or '>'.
            guard attributes.isEmpty || attributes.first!.isWhitespace else { continue }
            guard let end = xml.range(of: "</\(tag)>", range: close.upperBound..<xml.endIndex) else { return nil }
            let value = xml[close.upperBound..<end.lowerBound].trimmingCharacters(in: .whitespacesAndNewlines)
            var unit: String?
            if let range = attributes.range(of: "unit=") {
                let rest = attributes[range.upperBound...]
                if let quote = rest.first, quote == "'" || quote == "\"" {
                    unit = String(rest.dropFirst().prefix { $0 != quote })
                }
            }
            return (value, unit)
        }
        return nil
    }

    /// Kube YAML for `podman kube play`: exactly one Pod; requests summed over its containers.
    static func kubePod(_ yaml: String) throws -> WorkloadDefinition {
        let documents: [Any]
        do {
            // Refused before anything is expanded (see YAMLAliases).
            if let anchored = try YAMLAliases.composeAll(yaml).firstAnchored {
                throw Problem(description: "line \(anchored.mark?.line ?? 0): \(YAMLAliases.refusal)")
            }
            documents = try Yams.load_all(yaml: yaml).compactMap { $0 }
        } catch let problem as Problem {
            throw problem
        } catch {
            throw Problem(description: "the kube YAML does not parse: \(error)")
        }
        let pods = documents.compactMap { $0 as? [String: Any] }.filter { $0["kind"] as? String == "Pod" }
        guard pods.count == 1, let pod = pods.first else {
            throw Problem(description: "the kube YAML must hold exactly one document of kind Pod (it holds \(pods.count))")
        }
        guard let metadata = pod["metadata"] as? [String: Any], let name = metadata["name"] as? String, !name.isEmpty else {
            throw Problem(description: "the Pod has no metadata.name")
        }
        let containers = (pod["spec"] as? [String: Any])?["containers"] as? [[String: Any]] ?? []
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
}
