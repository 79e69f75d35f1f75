import SpecolaJobs
import SpecolaWire

/// Whether a principal may submit a spec, and the spec as it is kept: the owner is the caller
/// (whatever the spec says) and the project must be one of the caller's, within its limits.
public enum JobAdmission {
    public struct Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        public var verb: Verb
        public var message: String
        public var description: String { message }
    }

    /// The drivers a project allows when it names none.
    public static let defaultDrivers: Set<String> = ["podman"]

    public static func admit(_ spec: JobSpec, by principal: Principal, roles: Set<AccessRole>,
                             projects: [String: Specola_V1_Project]) -> Result<JobSpec, Refusal> {
        var spec = spec
        // Coordinators submit on behalf of no one in particular; keep what the spec says.
        guard principal.kind == .user else { return .success(spec) }
        spec.metadata.owner = principal.name
        let projectName = spec.metadata.project
        let resource = Resource.job(spec.metadata.jobID, project: projectName)
        if roles.contains(.admin) { return .success(spec) }
        guard roles.contains(.member(project: projectName)), let project = projects[projectName] else {
            let mine = roles.projects
            let hint = mine.isEmpty ? "\(principal) is a member of no project" : "\(principal) is a member of \(mine.joined(separator: ", "))"
            return .failure(Refusal(verb: .jobSubmit, message:
                "\(principal) may not job.submit on \(resource): it needs admin or member of \(projectName); \(hint) (set metadata.project to one of them)"))
        }
        let bound = project.maxPriority > 0 ? Int(project.maxPriority) : JobMetadata.defaultPriority
        if spec.metadata.priority > bound {
            return .failure(Refusal(verb: .jobSubmit, message:
                "\(principal) may not job.submit on \(resource): priority \(spec.metadata.priority) is above project \(projectName)'s bound \(bound); lower metadata.priority or ask an admin (`specola project set \(projectName) --max-priority N`)"))
        }
        let drivers = project.drivers.isEmpty ? defaultDrivers : Set(project.drivers)
        for task in spec.tasks {
            let driver = task.driver.name
            if !drivers.contains(driver) {
                return .failure(Refusal(verb: driver == "exec" ? .jobExec : .jobSubmit, message:
                    "\(principal) may not \(driver == "exec" ? Verb.jobExec.rawValue : Verb.jobSubmit.rawValue) on \(resource): task '\(task.name)' uses the \(driver) driver, which project \(projectName) does not allow (allowed: \(drivers.sorted().joined(separator: ", "))); it needs admin, or an admin adds it with `specola project set \(projectName) --drivers ...`"))
            }
            if case .podman(let image, _, _) = task.driver, !project.imagePrefixes.isEmpty,
               !project.imagePrefixes.contains(where: { image.hasPrefix($0) }) {
                return .failure(Refusal(verb: .jobSubmit, message:
                    "\(principal) may not job.submit on \(resource): task '\(task.name)' uses image \(image), outside project \(projectName)'s image prefixes (\(project.imagePrefixes.joined(separator: ", ")))"))
            }
            for mount in task.mounts {
                let allowed = mount.readOnly
                    ? (project.archiveMounts + project.writableMounts).contains { isUnder(mount.source, $0) }
                    : project.writableMounts.contains { isUnder(mount.source, $0) }
                if !allowed {
                    let listed = mount.readOnly ? project.archiveMounts + project.writableMounts : project.writableMounts
                    return .failure(Refusal(verb: .jobMount, message:
                        "\(principal) may not job.mount on \(resource): task '\(task.name)' mounts \(mount.source)\(mount.readOnly ? "" : " read-write"), outside project \(projectName)'s \(mount.readOnly ? "archive" : "writable") mounts (\(listed.isEmpty ? "none" : listed.joined(separator: ", "))); it needs admin, or an admin adds the path with `specola project set \(projectName) --mounts ...`"))
                }
            }
        }
        return .success(spec)
    }

    /// `path` is `prefix` or lies below it.
    static func isUnder(_ path: String, _ prefix: String) -> Bool {
        let base = prefix.count > 1 && prefix.hasSuffix("/") ? String(prefix.dropLast()) : prefix
        return path == base || path.hasPrefix(base == "/" ? "/" : base + "/")
    }
}
