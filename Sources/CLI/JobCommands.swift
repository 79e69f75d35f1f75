import ArgumentParser
import Foundation
import SpecolaJobs
import SpecolaProtocol

/// `specola job run|status|cancel|validate|plan`.
///
/// Exit codes: 0 the job succeeded (or the command did its work), 1 a task failed,
/// 2 the spec or arguments are invalid, 3 no coordinator reachable, 4 no such job,
/// 5 refused (certificate), 7 the job was cancelled, 8 the cluster cannot take the
/// request as it stands (e.g. more CPU than any node has, a job of that name still running).
struct JobCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "job", abstract: "Run, watch and cancel jobs and pipelines; validate and dry-run specs.",
        subcommands: [RunJob.self, JobStatusCommand.self, CancelJob.self, Validate.self, PlanJob.self])

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
            commandName: "plan",
            abstract: "Dry run: where FILE's runnable tasks would be placed now, and what changes against the running version. Commits nothing.")
        @OptionGroup var connection: ConnectionOptions
        @Argument var file: String

        func run() async throws {
            try await runReporting {
                _ = try JobCommand.load(file)
                let yaml = try String(contentsOfFile: file, encoding: .utf8)
                let request = Specola_V1_SubmitJobRequest.with { $0.yaml = yaml; $0.fileName = file }
                let plan = try await connection.withJobs { try await $0.plan(request) }
                if connection.json { return try JSONOutput.print(plan) }
                print(plan.jobActive ? "Against the running version:" : "New job:")
                var table = Table("TASK", "CHANGE", "NOW ON", "WOULD GO TO", "NOTE")
                for task in plan.tasks where task.change != "unchanged" {
                    var note = task.reason
                    if !task.changedFields.isEmpty { note = "changed: " + task.changedFields.joined(separator: ", ") }
                    table.add(task.taskID, task.change, task.currentNode.isEmpty ? "-" : task.currentNode,
                              task.plannedNode.isEmpty ? "-" : task.plannedNode, note)
                }
                print(table.rendered)
                let unchanged = plan.tasks.filter { $0.change == "unchanged" }.count
                if unchanged > 0 { print("\(unchanged) task instance(s) unchanged") }
            }
        }
    }
}

/// The exit code for a finished job's state.
func jobExitCode(_ state: String) -> Int32 {
    switch state {
    case "succeeded": return 0
    case "cancelled": return 7
    default: return 1
    }
}

struct RunJob: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Submit FILE and wait for it to finish (exit 0 succeeded, 1 failed, 7 cancelled).")
    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "Return as soon as the job is submitted.") var detach = false
    @Argument var file: String

    func run() async throws {
        try await runReporting {
            // Validate locally first: the same parser, so errors come without a round trip.
            _ = try JobCommand.load(file)
            let yaml = try String(contentsOfFile: file, encoding: .utf8)
            let request = Specola_V1_SubmitJobRequest.with { $0.yaml = yaml; $0.fileName = file }
            let submitted = try await connection.withJobs { try await $0.submit(request) }
            if detach {
                if connection.json { return try JSONOutput.print(submitted) }
                print("submitted job \(submitted.id) (\(submitted.tasks.count) tasks); follow it with `specola job status \(submitted.id)`")
                return
            }
            if !connection.json { print("submitted job \(submitted.id) (\(submitted.tasks.count) tasks)") }
            let final = try await JobWatch(connection: connection, quiet: connection.json).follow(submitted.id)
            if connection.json { try JSONOutput.print(final) } else { print(JobStatusCommand.render(final)) }
            let code = jobExitCode(final.state)
            if code != 0 { throw ExitCode(code) }
        }
    }
}

/// Polls a job until it finishes, printing each task's state changes.
struct JobWatch {
    let connection: ConnectionOptions
    let quiet: Bool

    func follow(_ id: String) async throws -> Specola_V1_JobStatus {
        let quiet = self.quiet
        // One connection for the whole wait; each call is a long poll that returns on the next change.
        return try await connection.withJobs { jobs in
            var seen: [String: String] = [:]
            var revision: UInt64 = 0
            while true {
                let request = Specola_V1_GetJobRequest.with {
                    $0.id = id
                    $0.waitMs = 10_000
                    $0.afterRevision = revision
                }
                let status = try await jobs.get(request)
                if !quiet {
                    for task in status.tasks where seen[task.id] != task.state {
                        seen[task.id] = task.state
                        var line = "  \(task.id): \(task.state)"
                        if !task.node.isEmpty, task.state == "placed" || task.state == "running" { line += " on \(task.node)" }
                        if task.state == "failed" || task.state == "cancelled", !task.message.isEmpty { line += " (\(task.message))" }
                        print(line)
                    }
                }
                if status.finishedAtUnixMs != 0 { return status }
                revision = status.revision
            }
        }
    }
}

/// Which job a verb addresses: `PROJECT/NAME`, or NAME within `--project` (else within the
/// caller's only project that has a job of that name).
struct JobReference: ParsableArguments {
    @Option(help: "The project of a job given by NAME alone.") var project: String?

    /// `reference` (NAME, NAME/TASK, or already PROJECT/...) with `--project` in front when given.
    func scoped(_ reference: String) -> String {
        guard let project, !project.isEmpty else { return reference }
        return project + "/" + reference
    }
}

struct JobStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show a job and its tasks (PROJECT/NAME, or NAME).")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var job: JobReference
    @Argument var id: String

    func run() async throws {
        try await runReporting {
            let request = Specola_V1_GetJobRequest.with { $0.id = job.scoped(id) }
            let status = try await connection.withJobs { try await $0.get(request) }
            if connection.json { return try JSONOutput.print(status) }
            print(Self.render(status))
        }
    }

    static func render(_ job: Specola_V1_JobStatus) -> String {
        var out = """
            Job       \(job.id) (\(job.kind), owner \(job.owner), project \(job.project), priority \(job.priority))
            State     \(job.state)\(job.finishedAtUnixMs == 0 && job.state == "failed" ? " (other tasks still running)" : "")
            Submitted \(Format.time(job.submittedAtUnixMs)) by \(job.submittedBy)\(job.finishedAtUnixMs == 0 ? "" : ", finished \(Format.time(job.finishedAtUnixMs))")

            """
        var table = Table("TASK", "STATE", "NODE", "EXIT", "TRIES", "NOTE")
        for task in job.tasks {
            let note = task.waitingReason.isEmpty ? task.message : "waiting: \(task.waitingReason)"
            table.add(task.id, task.state, task.node.isEmpty ? "-" : task.node,
                      task.exitCodeKnown ? "\(task.exitCode)" : "-", "\(task.failures + 1)", note)
        }
        out += table.rendered
        return out
    }
}

struct CancelJob: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel", abstract: "Cancel a job (PROJECT/NAME, or NAME): pending tasks never start, running ones are stopped.")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var job: JobReference
    @Argument var id: String

    func run() async throws {
        try await runReporting {
            let request = Specola_V1_CancelJobRequest.with { $0.id = job.scoped(id) }
            let status = try await connection.withJobs { try await $0.cancel(request) }
            if connection.json { return try JSONOutput.print(status) }
            print("job \(status.id) is \(status.state)")
        }
    }
}

/// `specola jobs`: one line per job.
struct JobsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "jobs", abstract: "List jobs that are queued or running (--all: finished ones too).")
    @OptionGroup var connection: ConnectionOptions
    @Flag(help: "Include finished jobs.") var all = false

    func run() async throws {
        try await runReporting {
            let request = Specola_V1_ListJobsRequest.with { $0.all = all }
            let list = try await connection.withJobs { try await $0.list(request) }
            if connection.json { return try JSONOutput.print(list) }
            if list.jobs.isEmpty {
                print(all ? "No jobs." : "No queued or running jobs (`specola jobs --all` shows finished ones).")
                return
            }
            var table = Table("ID", "KIND", "STATE", "OWNER", "PROJECT", "PRIORITY", "SUBMITTED")
            for job in list.jobs {
                table.add(job.id, job.kind, job.state, job.owner, job.project, "\(job.priority)", Format.time(job.submittedAtUnixMs))
            }
            print(table.rendered)
        }
    }
}

/// `specola logs JOB[/TASK]`: what tasks printed (the last 64 KiB of each stream).
struct LogsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logs", abstract: "Print the output of a job's tasks (JOB or JOB/TASK; JOB is PROJECT/NAME or NAME).")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var job: JobReference
    @Argument(help: "JOB, or JOB/TASK where TASK may be a step name (all its instances) or an instance id.")
    var target: String

    func run() async throws {
        try await runReporting {
            // The coordinator tells PROJECT/NAME from NAME/TASK: it knows which jobs exist.
            var request = Specola_V1_JobLogsRequest.with { $0.jobID = job.scoped(target) }
            // The coordinator answers in pages; the CLI prints them all.
            var logs = Specola_V1_JobLogsResponse()
            repeat {
                let page = try await connection.withJobs { [request] in try await $0.logs(request) }
                logs.tasks += page.tasks
                request.pageToken = page.nextPageToken
            } while !request.pageToken.isEmpty
            if connection.json { return try JSONOutput.print(logs) }
            for task in logs.tasks {
                if logs.tasks.count > 1 { print("==> \(task.taskID)\(task.node.isEmpty ? "" : " on \(task.node)") <==") }
                if task.allocationID.isEmpty { print("(no output yet: the task has not ended)"); continue }
                print(task.stdout, terminator: task.stdout.hasSuffix("\n") || task.stdout.isEmpty ? "" : "\n")
                if !task.stderr.isEmpty {
                    FileHandle.standardError.write(Data(task.stderr.utf8))
                }
            }
        }
    }
}
