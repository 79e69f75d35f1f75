import ArgumentParser
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SpecolaJobs
import SpecolaProtocol

/// One kind of HA workload as the CLI names it.
protocol WorkloadNoun {
    /// "vm" or "pod", as the API and state spell it.
    static var kind: String { get }
    /// "VM" or "pod", for messages.
    static var noun: String { get }
    /// The `create` flag naming the definition file, and what that file is.
    static var definitionFlag: String { get }
    static var definition: String { get }
    /// Where the definition names it.
    static var nameInDefinition: String { get }
}

enum VMNoun: WorkloadNoun {
    static let kind = "vm"
    static let noun = "VM"
    static let definitionFlag = "xml"
    static let definition = "libvirt domain XML (as `virsh dumpxml` prints it)"
    static let nameInDefinition = "the domain XML's <name>"
}

enum PodNoun: WorkloadNoun {
    static let kind = "pod"
    static let noun = "pod"
    static let definitionFlag = "kube"
    static let definition = "kube YAML for `podman kube play` (one Pod)"
    static let nameInDefinition = "the Pod's metadata.name"
}

/// `specola vm list|show|create|enable|disable|delete`.
///
/// Exit codes: 0 done, 2 invalid definition or arguments, 3 no coordinator
/// reachable, 4 no such VM or node, 5 refused (certificate), 8 the state
/// refuses (e.g. a VM of that name exists).
struct VMCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vm",
        abstract: "HA virtual machines: libvirt domains the cluster keeps running, restarts after a crash and moves off fenced nodes.",
        subcommands: [
            WorkloadList<VMNoun>.self, WorkloadShow<VMNoun>.self, WorkloadCreate<VMNoun>.self, WorkloadSetDesired<VMNoun, EnableChange>.self,
            WorkloadSetDesired<VMNoun, DisableChange>.self, WorkloadDelete<VMNoun>.self,
        ])
}

/// `specola pod list|show|create|enable|disable|delete`; exit codes as for `specola vm`.
struct PodCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pod",
        abstract: "HA pods: kube YAML played with podman, kept running, restarted after a crash and moved off fenced nodes.",
        subcommands: [
            WorkloadList<PodNoun>.self, WorkloadShow<PodNoun>.self, WorkloadCreate<PodNoun>.self, WorkloadSetDesired<PodNoun, EnableChange>.self,
            WorkloadSetDesired<PodNoun, DisableChange>.self, WorkloadDelete<PodNoun>.self,
        ])
}

extension ConnectionOptions {
    func withWorkloads<T: Sendable>(
        _ body: @escaping @Sendable (Specola_V1_Workloads.Client<HTTP2ClientTransport.Posix>) async throws -> T
    ) async throws -> T {
        try await withClient { try await body(Specola_V1_Workloads.Client(wrapping: $0)) }
    }
}

/// The HA policy flags that `vm create` and `pod create` share.
struct WorkloadPolicyOptions: ParsableArguments {
    @Option(help: "Preferred node for a fresh start (default: the best fit).")
    var node: String?

    @Option(name: .customLong("max-restarts"), help: "Restarts on the same node after a crash before it is relocated (default 1).")
    var maxRestarts: UInt32?

    @Option(name: .customLong("max-relocations"), help: "Starts on another node, after a fence or spent restarts, before it goes to error (default 1).")
    var maxRelocations: UInt32?

    @Option(help: "CPU it needs of a node, e.g. 2 or 500m (default: from the definition).")
    var cpu: String?

    @Option(help: "Memory it needs of a node, e.g. 4GiB (default: from the definition).")
    var memory: String?

    @Flag(help: "Define it disabled: nothing starts until `enable`.")
    var disabled = false

    func request(kind: String, name: String?, definition: String) throws -> Specola_V1_DefineWorkloadRequest {
        var workload = Specola_V1_Workload.with {
            $0.kind = kind
            $0.name = name ?? ""
            $0.definition = definition
            $0.homeNode = node ?? ""
            $0.desired = disabled ? "disabled" : "started"
            $0.maxRestarts = maxRestarts ?? 1
            $0.maxRelocations = maxRelocations ?? 1
        }
        if let cpu {
            guard let millicores = Quantity.millicores(cpu), millicores > 0 else { throw CLIError("--cpu '\(cpu)' is not a CPU amount; use e.g. 2 or 500m", exitCode: 2) }
            workload.cpuMillicores = millicores
        }
        if let memory {
            guard let bytes = Quantity.bytes(memory), bytes > 0 else { throw CLIError("--memory '\(memory)' is not a size; use e.g. 4GiB", exitCode: 2) }
            workload.memoryBytes = bytes
        }
        return .with { $0.workload = workload }
    }
}

/// `specola vm create` and `specola pod create`: the definition file's flag and wording come from the noun.
struct WorkloadCreate<Noun: WorkloadNoun>: AsyncParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "create", abstract: "Define an HA \(Noun.noun) from \(Noun.definition); it starts at once unless --disabled.")
    }
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var policy: WorkloadPolicyOptions
    @Argument(help: ArgumentHelp("The \(Noun.noun)'s name; must match \(Noun.nameInDefinition) (default: that name)."))
    var name: String?
    @Option(name: .customLong(Noun.definitionFlag), help: ArgumentHelp("File holding the \(Noun.definition)."))
    var file: String

    func run() async throws {
        try await runReporting {
            let request = try policy.request(kind: Noun.kind, name: name, definition: try readDefinition(file))
            let workload = try await connection.withWorkloads { try await $0.define(request) }
            try printDefined(workload, noun: Noun.self, json: connection.json)
        }
    }
}

private func readDefinition(_ file: String) throws -> String {
    guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw CLIError("cannot read \(file)", exitCode: 2) }
    return text
}

private func printDefined(_ workload: Specola_V1_Workload, noun: any WorkloadNoun.Type, json: Bool) throws {
    if json { return try JSONOutput.print(workload) }
    let follow = "follow it with `specola \(noun.kind) show \(workload.name)`"
    print(workload.desired == "started" ? "\(noun.noun) \(workload.name) defined and starting; \(follow)" : "\(noun.noun) \(workload.name) defined, \(workload.desired)")
}

struct WorkloadList<Noun: WorkloadNoun>: AsyncParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "list", abstract: "List HA \(Noun.noun)s with their state, node and spent limits.")
    }
    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        try await runReporting {
            let request = Specola_V1_ListWorkloadsRequest.with { $0.kind = Noun.kind }
            let list = try await connection.withWorkloads { try await $0.list(request) }
            if connection.json { return try JSONOutput.print(list) }
            if list.workloads.isEmpty {
                print("No HA \(Noun.noun)s. Define one with `specola \(Noun.kind) create`.")
                return
            }
            var table = Table("NAME", "WANTED", "PHASE", "NODE", "RESTARTS", "RELOCATIONS", "NOTE")
            for workload in list.workloads {
                table.add(workload.name, workload.desired, workload.phase, workload.node.isEmpty ? "-" : workload.node,
                          "\(workload.restarts)/\(workload.maxRestarts)", "\(workload.relocations)/\(workload.maxRelocations)",
                          workload.message)
            }
            print(table.rendered)
        }
    }
}

struct WorkloadShow<Noun: WorkloadNoun>: AsyncParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "show", abstract: "Show one HA \(Noun.noun): policy, where it runs, and its definition.")
    }
    @OptionGroup var connection: ConnectionOptions
    @Argument var name: String

    func run() async throws {
        try await runReporting {
            let request = Specola_V1_GetWorkloadRequest.with { $0.name = name; $0.kind = Noun.kind }
            let workload = try await connection.withWorkloads { try await $0.get(request) }
            if connection.json { return try JSONOutput.print(workload) }
            print("""
                Name         \(workload.name) (\(Noun.noun))
                Wanted       \(workload.desired)
                Phase        \(workload.phase)\(workload.node.isEmpty ? "" : " on \(workload.node)"), instance \(workload.generation)
                Note         \(workload.message.isEmpty ? "-" : workload.message)
                Home node    \(workload.homeNode.isEmpty ? "any" : workload.homeNode)
                Restarts     \(workload.restarts) of \(workload.maxRestarts) on the current node
                Relocations  \(workload.relocations) of \(workload.maxRelocations)
                Needs        \(Quantity.formatCores(workload.cpuMillicores)), \(Quantity.formatBytes(workload.memoryBytes))
                Running since \(Format.time(workload.startedAtUnixMs)); changed \(Format.time(workload.changedAtUnixMs))
                Created      \(Format.time(workload.createdAtUnixMs)) by \(workload.createdBy)

                \(workload.definition)
                """)
        }
    }
}

/// Sets the desired state and prints the result; shared by enable and disable.
private func setDesired(_ desired: String, name: String, noun: any WorkloadNoun.Type, connection: ConnectionOptions) async throws {
    let request = Specola_V1_SetWorkloadDesiredRequest.with { $0.name = name; $0.kind = noun.kind; $0.desired = desired }
    let workload = try await connection.withWorkloads { try await $0.setDesired(request) }
    if connection.json { return try JSONOutput.print(workload) }
    print("\(noun.noun) \(workload.name): wanted \(workload.desired), now \(workload.phase)\(workload.node.isEmpty ? "" : " on \(workload.node)")")
}

/// What `enable` and `disable` set, so one command type serves both.
protocol DesiredChange {
    static var commandName: String { get }
    static var desired: String { get }
    static func abstract(_ noun: String) -> String
}

enum EnableChange: DesiredChange {
    static let commandName = "enable"
    static let desired = "started"
    static func abstract(_ noun: String) -> String {
        "Keep the \(noun) running; from error or disabled, with fresh restart and relocation limits."
    }
}

enum DisableChange: DesiredChange {
    static let commandName = "disable"
    static let desired = "disabled"
    static func abstract(_ noun: String) -> String { "Stop the \(noun) and keep it stopped, out of HA care." }
}

struct WorkloadSetDesired<Noun: WorkloadNoun, Change: DesiredChange>: AsyncParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: Change.commandName, abstract: Change.abstract(Noun.noun))
    }
    @OptionGroup var connection: ConnectionOptions
    @Argument var name: String

    func run() async throws {
        try await runReporting { try await setDesired(Change.desired, name: name, noun: Noun.self, connection: connection) }
    }
}

struct WorkloadDelete<Noun: WorkloadNoun>: AsyncParsableCommand {
    static var configuration: CommandConfiguration {
        CommandConfiguration(commandName: "delete", abstract: "Disable the \(Noun.noun), wait until it is stopped, then forget it.")
    }
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Seconds to wait for it to stop.") var timeout: Double = 120
    @Argument var name: String

    func run() async throws {
        try await runReporting {
            let get = Specola_V1_GetWorkloadRequest.with { $0.name = name; $0.kind = Noun.kind }
            var workload = try await connection.withWorkloads { try await $0.get(get) }
            if workload.desired != "disabled" {
                let disable = Specola_V1_SetWorkloadDesiredRequest.with { $0.name = name; $0.kind = Noun.kind; $0.desired = "disabled" }
                workload = try await connection.withWorkloads { try await $0.setDesired(disable) }
            }
            let deadline = ContinuousClock.now + .milliseconds(Int64(timeout * 1000))
            while ["starting", "running", "stopping"].contains(workload.phase) {
                guard ContinuousClock.now < deadline else {
                    throw CLIError("\(Noun.noun) \(name) is still \(workload.phase) on \(workload.node) after \(Int(timeout)) s; it is disabled, delete it once it has stopped", exitCode: 8)
                }
                try await Task.sleep(for: .milliseconds(250))
                workload = try await connection.withWorkloads { try await $0.get(get) }
            }
            let delete = Specola_V1_DeleteWorkloadRequest.with { $0.name = name; $0.kind = Noun.kind }
            _ = try await connection.withWorkloads { try await $0.delete(delete) }
            if !connection.json { print("\(Noun.noun) \(name) deleted") }
        }
    }
}
