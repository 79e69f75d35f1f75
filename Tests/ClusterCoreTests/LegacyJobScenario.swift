import Foundation
import SpecolaJobs
import SpecolaWire
@testable import SpecolaClusterCore

/// The jobs behind the job fixtures in Tests/Fixtures/legacy-format: two specs that use every
/// field of a spec, and the log entries that move their runs (placements, a start, a success,
/// a failure that waits for its retry). The submit commands are what varies between formats.
enum LegacyJobScenario {
    static let pipeline = JobSpec(
        kind: .pipeline, metadata: JobMetadata(name: "reduce", owner: "alice", project: "astro", priority: 70),
        tasks: [
            TaskSpec(
                name: "prepare", driver: .exec(command: "/usr/bin/prepare", args: ["--night", "2026-12-01"]),
                resources: Resources(cpuMillicores: 500, memoryBytes: 1 << 28), env: ["MODE": "fast"],
                timeoutSeconds: 600, outputs: ["bias"]),
            TaskSpec(
                name: "calibrate", driver: .podman(image: "registry.local/calib:1", command: nil, args: ["-v"]),
                retries: RetryPolicy(attempts: 2, backoffSeconds: 5, maxBackoffSeconds: 60),
                depends: ["prepare"], foreach: ["a.fits", "b.fits"],
                inputs: [StepInput(variable: "BIAS", step: "prepare", key: "bias")]),
        ])

    static let arrayJob = JobSpec(
        kind: .job, metadata: JobMetadata(name: "sweep", owner: "bob", project: ""), spread: true,
        tasks: [
            TaskSpec(
                name: "point", driver: .podman(image: "busybox", command: "/bin/sh", args: ["-c", "echo $SPECOLA_ARRAY_INDEX"]),
                resources: Resources(cpuMillicores: 250, memoryBytes: 1 << 27, gpus: 1, scratchBytes: 1 << 30),
                constraints: [
                    Constraint(label: "gpu", op: .equal, values: ["a100"]), Constraint(label: "site", op: .in, values: ["a", "b"]),
                    Constraint(label: "ssd", op: .exists), Constraint(label: "rack", op: .notIn, values: ["r9"]),
                    Constraint(label: "zone", op: .notEqual, values: ["z0"]),
                ],
                affinities: [Affinity(Constraint(label: "fast", op: .exists), weight: -30)], count: 2,
                array: TaskArray(indices: 3...5),
                mounts: [Mount(source: "/archive", target: "/data"), Mount(source: "/scratch/sweep", target: "/out", readOnly: false)]),
        ])

    /// Registers the nodes the placements name.
    static func nodes() -> [Specola_V1_Command] {
        ["n1", "n2"].map { .registerNode(name: $0, address: "", agentVersion: "t", labels: [:], autoAccept: true, atUnixMs: 1) }
    }

    /// Both submissions in the current form (the fixtures hold them as JSON, with the same fields).
    static func submissions() -> [Specola_V1_Command] {
        [(pipeline, "user/alice"), (arrayJob, "user/bob")].map { spec, submitter in
            .submitJob(spec, sourceFile: "\(spec.metadata.name).yaml", by: submitter, atUnixMs: 10)
        }
    }

    /// Everything after the submissions: both jobs placed, one step succeeded, one failed once.
    static func progress() -> [Specola_V1_Command] {
        func place(_ job: String, _ task: String, _ node: String, _ allocation: String) -> Specola_V1_Command {
            .with {
                $0.proposedAtUnixMs = 20
                $0.placeTasks.placements = [.with { $0.jobID = job; $0.taskID = task; $0.node = node; $0.allocationID = allocation }]
            }
        }
        func event(_ node: String, _ seq: UInt64, _ allocation: String, _ kind: Specola_V1_TaskEventKind, exit: Int32 = 0) -> Specola_V1_Command {
            .applyReport(node: node, report: .with {
                $0.seq = seq
                $0.taskEvents = [.with {
                    $0.allocationID = allocation; $0.kind = kind; $0.exitCode = exit; $0.atUnixMs = 30
                    $0.stdoutTail = "out \(allocation)"; $0.message = kind == .exited && exit != 0 ? "exit \(exit)" : ""
                    $0.outputs = kind == .exited && exit == 0 ? ["bias": "bias.fits"] : [:]
                }]
            }, receivedAtUnixMs: 30)
        }
        return [
            place("astro/reduce", "astro/reduce/prepare", "n1", "a1"),
            event("n1", 1, "a1", .started),
            event("n1", 2, "a1", .exited),
            place("astro/reduce", "astro/reduce/calibrate[0]", "n2", "a2"),
            event("n2", 1, "a2", .exited, exit: 3),
            place("default/sweep", "default/sweep/point#3.0", "n2", "b1"),
            event("n2", 2, "b1", .started),
        ]
    }
}
