import SpecolaJobs
import SpecolaWire

/// A project's quotas during one scheduling pass: what it holds, plus what this pass already let
/// through. A task that would take its project over a quota waits, and says which quota.
public struct ProjectQuotas: Sendable {
    let projects: [String: Specola_V1_Project]
    var allocated: [String: Resources]
    var tasks: [String: Int]

    public init(projects: [String: Specola_V1_Project], allocated: [String: Resources], tasks: [String: Int]) {
        self.projects = projects
        self.allocated = allocated
        self.tasks = tasks
    }

    /// Nil when `request` fits its project's quotas (and counts it), else why it waits.
    /// A job whose project is not a project object (submitted by an admin) has no quota.
    public mutating func admit(_ request: TaskRequest) -> String? {
        guard let project = projects[request.project] else { return nil }
        let held = allocated[request.project] ?? .zero
        let after = held + request.resources
        let name = request.project
        if project.maxTasks > 0, (tasks[name] ?? 0) + 1 > Int(project.maxTasks) {
            return "waits on project \(name)'s quota of \(project.maxTasks) concurrent tasks (\(tasks[name] ?? 0) running)"
        }
        if project.maxCpuMillicores > 0, after.cpuMillicores > project.maxCpuMillicores {
            return "waits on project \(name)'s quota of \(Quantity.formatCoreNumber(project.maxCpuMillicores)) cores (\(Quantity.formatCoreNumber(held.cpuMillicores)) in use, the task asks \(Quantity.formatCoreNumber(request.resources.cpuMillicores)))"
        }
        if project.maxMemoryBytes > 0, after.memoryBytes > project.maxMemoryBytes {
            return "waits on project \(name)'s memory quota of \(Quantity.formatBytes(project.maxMemoryBytes)) (\(Quantity.formatBytes(held.memoryBytes)) in use, the task asks \(Quantity.formatBytes(request.resources.memoryBytes)))"
        }
        allocated[name] = after
        tasks[name, default: 0] += 1
        return nil
    }
}
