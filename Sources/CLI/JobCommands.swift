import ArgumentParser
import Foundation
import SpecolaJobs
import SpecolaProtocol

/// `specola job validate|plan FILE`. Submitting and running jobs through the
/// coordinator is not wired yet; these work today against a spec and the live nodes.
struct JobCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "job", abstract: "Validate a job or pipeline spec and dry-run its placement.",
        subcommands: [Validate.self, PlanJob.self])

    static func load(_ file: String) throws -> JobSpec {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
            throw CLIError("cannot read \(file)", exitCode: 2)
        }
        switch JobSpecParser.parse(text, file: file) {
        case .success(let spec): return spec
        case .failure(let errors): throw CLIError("\(errors.errors.count) problem(s); nothing was submitted\n\(errors)", exitCode: 2)
        }
    }

    struct Validate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Check FILE; every problem is reported with file:line:column and field.")
        @Argument var file: String

        func run() async throws {
            try await runReporting {
                let spec = try JobCommand.load(file)
                print("\(file): valid \(spec.kind) '\(spec.metadata.name)' with \(spec.instances().count) task instance(s)")
            }
        }
    }

    struct PlanJob: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "plan", abstract: "Show where FILE's runnable tasks would be placed on the live nodes, without committing anything.")
        @OptionGroup var connection: ConnectionOptions
        @Argument var file: String

        func run() async throws {
            try await runReporting {
                let spec = try JobCommand.load(file)
                let nodes = try await connection.withAPI { try await $0.listNodes(.init()) }.nodes
                let cluster = ClusterView(nodes: nodes.map(Self.view))
                let plan = Scheduler.plan(cluster: cluster, pending: spec.initialRequests(submitIndex: 1), usage: FairShareUsage())
                if connection.json {
                    let data = try JSONEncoder().encode(["placements": plan.placements.map { ["task": $0.taskID, "node": $0.node] }])
                    print(String(decoding: data, as: UTF8.self))
                    return
                }
                var table = Table("TASK", "NODE", "NOTE")
                for placement in plan.placements { table.add(placement.taskID, placement.node, "") }
                for unplaced in plan.unplaced { table.add(unplaced.taskID, "-", unplaced.reason.message) }
                print(table.rendered)
                let waiting = spec.instances().count - plan.placements.count - plan.unplaced.count
                if waiting > 0 { print("\(waiting) more task instance(s) wait for their dependencies") }
            }
        }

        static func view(_ node: Specola_V1_Node) -> NodeView {
            let status: NodeStatus = NodeStatus(rawValue: node.status) ?? .down
            return NodeView(
                name: node.name, status: status, labels: node.facts.capacity.labels,
                capacity: Resources(cpuMillicores: Int64(node.facts.capacity.cpuCores) * 1000,
                                    memoryBytes: Int64(clamping: node.facts.capacity.memoryBytes)))
        }
    }
}
