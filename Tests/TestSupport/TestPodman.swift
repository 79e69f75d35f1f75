import Foundation
import SpecolaProtocol
#if canImport(Glibc)
import Glibc
import SpecolaProcesses
import SpecolaDevSupport
#endif

/// Real podman with the project's fixture configuration (runc, safe ulimits)
/// and a tiny local busybox image, since no registry is reachable.
public enum TestPodman {
    public static let image = "localhost/specola-test-mini:latest"
    static let containersConf = BuiltProducts.repositoryRoot + "/Tests/Fixtures/podman/containers.conf"
    static let storageConf = BuiltProducts.repositoryRoot + "/Tests/Fixtures/podman/storage.conf"
    /// The tests' podman: its own configuration and its own store, never the host's.
    public static let environment = ["CONTAINERS_CONF": containersConf, "CONTAINERS_STORAGE_CONF": storageConf]
    /// The `podman:` and `tasks:` lines of an agent's configuration that uses the tests' podman; tasks
    /// may mount what the tests create under the temporary directory, and exec tasks are enabled.
    public static let agentConfig = """
        podman: {enabled: true, containersConf: \(containersConf), storageConf: \(storageConf)}
        tasks: {mountPrefixes: [\(temporaryDirectory)], exec: {enabled: true}}
        """
    static let temporaryDirectory = URL(fileURLWithPath: NSTemporaryDirectory()).standardizedFileURL.path
    /// The same settings as shell variables, for a script that runs podman itself.
    public static let shellEnvironment = "CONTAINERS_CONF='\(containersConf)' CONTAINERS_STORAGE_CONF='\(storageConf)'"

    /// Runs podman; returns trimmed stdout, throws on a non-zero exit.
    @discardableResult
    public static func run(_ args: [String]) async throws -> String {
        let result = try await runProcess("podman", args, environment: environment)
        let stdout = String(decoding: result.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard result.status == 0 else {
            throw TimedOut(what: "podman \(args.joined(separator: " ")) to succeed: \(String(decoding: result.stderr, as: UTF8.self))")
        }
        return stdout
    }

    /// Empties the tests' store and imports the image, once per test process, so every run
    /// starts from the same cold podman and parallel tests do not import it twice.
    private static let imageImport = Task {
        try await emptyStore()
        try await importImageIfMissing()
    }

    /// Removes what an earlier run left in the tests' store (never the host's): pods,
    /// containers and images, the pause image included, which podman then builds anew.
    private static func emptyStore() async throws {
        for args in [["pod", "rm", "--all", "--force", "--time", "0"], ["rm", "--all", "--force", "--time", "0"],
                     ["rmi", "--all", "--force"]] {
            let result = try await runProcess("podman", args, environment: environment, timeout: .seconds(120))
            guard result.status == 0 else {
                throw TimedOut(what: "podman \(args.joined(separator: " ")) to empty the tests' store: \(String(decoding: result.stderr, as: UTF8.self))")
            }
        }
        await removeOrphanedRuntimeState()
    }

    public static func ensureImage() async throws {
        try await imageImport.value
    }

    private static func importImageIfMissing() async throws {
        do {
            try await BusyboxImage.ensure(image, podmanEnvironment: environment)
        } catch {
            throw TimedOut(what: "the test image to be imported: \(error)")
        }
    }

    /// Agents leave their tasks running when they die; the test removes them itself. A container
    /// caught mid-stop when its agent was killed can lose its podman record while its conmon and
    /// process live on, so those are found by name in /proc and killed by pid as well.
    public static func removeContainers(job: String) async {
        let listed = (try? await run(["ps", "-a", "--filter", "name=\(containerPattern(job: job))", "--format", "{{.Names}}"])) ?? ""
        let names = listed.split(separator: "\n").map(String.init)
        if !names.isEmpty { _ = try? await run(["rm", "--force", "--time", "0"] + names) }
        for monitor in conmons(of: job) {
            for child in children(of: monitor) { kill(child, SIGKILL) }
            kill(monitor, SIGKILL)
        }
        await removeOrphanedRuntimeState()
    }

    /// A container whose conmon was killed keeps runc's state after podman removed it; the
    /// script deletes those of the tests' store, and touches nothing else.
    static func removeOrphanedRuntimeState() async {
        _ = try? await runProcess(BuiltProducts.repositoryRoot + "/scripts/remove-orphaned-runc-state.sh", [])
    }

    /// Task containers are `specola-ALLOCATION`, the allocation id being `PROJECT_NAME-` and 12 hex
    /// digits; this matches those of job NAME in any project (or of an id without a project).
    public static func containerPattern(job: String) -> String {
        "^specola-([A-Za-z0-9-]+_)?\(job)-[0-9a-f]{12}$"
    }

    static func conmons(of job: String) -> [pid_t] {
        guard let name = try? Regex("-n specola-([A-Za-z0-9-]+_)?\(job)-[0-9a-f]{12}") else { return [] }
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.compactMap { pid_t($0) } ?? []
        return pids.filter { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            let commandLine = String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
            return commandLine.hasPrefix("/usr/bin/conmon") && commandLine.contains(name)
        }
    }

    static func children(of parent: pid_t) -> [pid_t] {
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.compactMap { pid_t($0) } ?? []
        return pids.filter { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && pid_t(fields[1]) == parent
        }
    }
}
