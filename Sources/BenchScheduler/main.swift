// specola-bench-scheduler: placements per second committed through a real
// 3-replica Raft group, with simulated nodes, against the anchors' published figures.
// scripts/bench-jobs.sh runs it in release mode.
import Foundation
import Logging
import SpecolaCoordinator

let anchors: [(name: String, perSecond: Double)] = [
    ("Nomad C1M", 3_750), ("Kubernetes at 5k nodes", 100), ("Slurm", 500),
]
let target = 20_000.0

var nodeCounts = [5_000, 10_000]
var tasks = 50_000
var arguments = CommandLine.arguments.dropFirst()
while let flag = arguments.popFirst() {
    switch flag {
    case "--nodes": nodeCounts = (arguments.popFirst() ?? "").split(separator: ",").compactMap { Int($0) }
    case "--tasks": tasks = Int(arguments.popFirst() ?? "") ?? tasks
    default:
        FileHandle.standardError.write(Data("usage: specola-bench-scheduler [--nodes 5000,10000] [--tasks 50000]\n".utf8))
        exit(2)
    }
}
var logger = Logger(label: "bench.scheduler")
logger.logLevel = .error
for nodes in nodeCounts {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("specola-bench-scheduler-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: directory) }
    do {
        let result = try await SchedulerBenchmark.run(nodes: nodes, tasks: tasks, directory: directory, logger: logger)
        let rate = result.placementsPerSecond
        print(String(format: "scheduler: %d nodes, %d of %d tasks placed and committed in %.2f s (%d passes, planning %.2f s): %.0f placements/s",
                     nodes, result.placed, result.tasks, result.totalSeconds, result.passes, result.planSeconds, rate))
        for anchor in anchors {
            print(String(format: "  ratio vs %@ (%.0f/s): %.1fx", anchor.name, anchor.perSecond, rate / anchor.perSecond))
        }
        print(String(format: "  target %.0f/s: %@ (%.2fx)", target, rate >= target ? "MET" : "NOT MET", rate / target))
    } catch {
        FileHandle.standardError.write(Data("specola-bench-scheduler: \(nodes) nodes failed: \(error)\n".utf8))
        exit(1)
    }
}
