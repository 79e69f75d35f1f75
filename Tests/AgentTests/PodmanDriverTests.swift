import Foundation
import Logging
import Synchronization
import SpecolaProtocol
import TestSupport
import Testing
@testable import SpecolaAgent
import CooperativePoolWatch
import SpecolaProcesses

/// The podman driver against real podman with runc: containers exist only for their task.
@Suite(.watchesCooperativePool) struct PodmanDriverTests {
    let driver = PodmanDriver(environment: TestPodman.environment, nodeName: "driver-test-\(UUID().uuidString.prefix(8))", logger: Logger(label: "test.driver"))

    func task(_ script: String, _ edit: (inout TaskLaunch) -> Void = { _ in }) -> TaskLaunch {
        var spec = TaskLaunch(allocationID: "t-\(UUID().uuidString.prefix(8).lowercased())", image: TestPodman.image, command: ["/bin/sh", "-c", script])
        spec.pull = "never"
        edit(&spec)
        return spec
    }

    func containerExists(_ allocationID: String) async -> Bool {
        (try? await TestPodman.run(["container", "exists", PodmanDriver.containerName(allocationID)])) != nil
    }

    @Test func aTaskRunsKeepsItsOutputAndExitCodeAndIsRemoved() async throws {
        try await TestPodman.ensureImage()
        let spec = task("echo out-$SPECOLA_ITEM; echo err >&2; exit 3") { $0.environment = ["SPECOLA_ITEM": "7"] }
        let outcome = try await driver.run(spec)
        #expect(outcome.ending == .exited)
        #expect(outcome.exitCode == 3)
        #expect(outcome.stdout.contains("out-7"))
        #expect(outcome.stderr.contains("err"))
        #expect(!outcome.succeeded)
        #expect(await !containerExists(spec.allocationID))
    }

    @Test func aTimeoutStopsTheTask() async throws {
        try await TestPodman.ensureImage()
        let spec = task("sleep 60") { $0.timeout = .seconds(2) }
        let started = ContinuousClock.now
        let outcome = try await driver.run(spec)
        #expect(outcome.ending == .timedOut)
        #expect(ContinuousClock.now - started < .seconds(30))
        #expect(await !containerExists(spec.allocationID))
    }

    @Test func theMemoryLimitIsEnforced() async throws {
        try await TestPodman.ensureImage()
        // Grows a shell variable past 16 MiB inside a 8 MiB container.
        let spec = task("x=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; while true; do x=$x$x; done") {
            $0.memoryBytes = 8 * 1024 * 1024
            $0.timeout = .seconds(60)
        }
        let started = Date().addingTimeInterval(-1)
        let outcome = try await driver.run(spec)
        #expect(outcome.exitCode == 137, "outcome: \(outcome)")
        // conmon marks the kill with an empty `oom` file in podman's working directory, never in ours.
        let stray = FileManager.default.currentDirectoryPath + "/oom"
        let written = (try? FileManager.default.attributesOfItem(atPath: stray))?[.modificationDate] as? Date
        #expect(written.map { $0 < started } ?? true, "\(stray) was written by this run")
    }

    @Test func aRestartedAgentReattachesInsteadOfRunningTwice() async throws {
        try await TestPodman.ensureImage()
        let spec = task("echo run; sleep 8; echo done")  // long enough to still run when listed on a loaded machine
        let name = PodmanDriver.containerName(spec.allocationID)
        // A previous agent process started the container and died.
        #expect(try await driver.create(spec, name: name).status == 0)
        try await TestPodman.run(["start", name])
        #expect(try await driver.managedAllocations()[spec.allocationID] == "running")

        let outcome = try await driver.run(spec)
        #expect(outcome.succeeded)
        // One start only: the output says "run" once.
        #expect(outcome.stdout.components(separatedBy: "run").count - 1 == 1, "stdout: \(outcome.stdout)")
        #expect(await !containerExists(spec.allocationID))
    }

    @Test func aMissingImageFailsToStartWithTheReason() async throws {
        try await TestPodman.ensureImage()  // the tests' store is emptied first, once per run
        var spec = TaskLaunch(allocationID: "t-missing-\(UUID().uuidString.prefix(6).lowercased())", image: "localhost/no-such-image:1", command: ["true"])
        spec.pull = "never"
        let outcome = try await driver.run(spec)
        #expect(outcome.ending == .failedToStart)
        #expect(outcome.message.contains("podman create failed"))
        #expect(await !containerExists(spec.allocationID))
    }

    @Test func containersRunWithoutCapabilitiesAsTheUnprivilegedUser() async throws {
        try await TestPodman.ensureImage()
        let outcome = try await driver.run(task("grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status; id -u"))
        #expect(outcome.stdout == "CapEff:\t0000000000000000\nCapBnd:\t0000000000000000\nNoNewPrivs:\t1\n65534\n", "\(outcome)")

        // The node's allow-list gives back exactly what it names (NET_BIND_SERVICE is bit 10).
        var policy = TaskPolicy()
        policy.capabilities = ["NET_BIND_SERVICE"]
        policy.containerUser = ""
        let allowing = PodmanDriver(environment: TestPodman.environment, nodeName: driver.nodeName, policy: policy, logger: driver.logger)
        let granted = try await allowing.run(task("grep -E '^(CapEff|CapBnd)' /proc/self/status; id -u"))
        #expect(granted.stdout == "CapEff:\t0000000000000400\nCapBnd:\t0000000000000400\n0\n", "\(granted)")
    }

    @Test func aMountOutsideTheAllowedPrefixesFailsTheTaskNamingThePathAndTheKey() async throws {
        try await TestPodman.ensureImage()
        let dir = try TempDir("specola-mounts")
        defer { dir.remove() }
        let allowed = dir.file("archive")
        try FileManager.default.createDirectory(atPath: allowed, withIntermediateDirectories: true)
        try dir.write("archive/frame.fits", "photons\n")
        try FileManager.default.createSymbolicLink(atPath: dir.file("archive/escape"), withDestinationPath: "/etc")
        var policy = TaskPolicy()
        policy.mountPrefixes = [allowed]
        let node = PodmanDriver(environment: TestPodman.environment, nodeName: driver.nodeName, policy: policy, logger: driver.logger)

        let outsideSpec = task("ls /host") { $0.mounts = [.init(source: "/etc", target: "/host")] }
        let outside = try await node.run(outsideSpec)
        #expect(outside.ending == .failedToStart)
        #expect(outside.message == "mount source '/etc' is not under a host path this node allows; add its directory to tasks.mountPrefixes in the agent's configuration (allowed now: \(allowed))")
        let viaLink = try await node.run(task("ls /host") { $0.mounts = [.init(source: allowed + "/escape", target: "/host")] })
        #expect(viaLink.message == "mount source '\(allowed)/escape' (a link to '/etc') is not under a host path this node allows; add its directory to tasks.mountPrefixes in the agent's configuration (allowed now: \(allowed))")
        #expect(await !containerExists(outsideSpec.allocationID))

        // Under the prefix it mounts, and read-only unless the spec says otherwise.
        let inside = try await node.run(task("cat /archive/frame.fits; touch /archive/new 2>&1; echo touched=$?") {
            $0.mounts = [.init(source: allowed, target: "/archive")]
        })
        #expect(inside.stdout.contains("photons\n") && inside.stdout.contains("Read-only file system") && inside.stdout.contains("touched=1"), "\(inside)")
    }

    /// Values go through a 0600 env file (single line) or a podman secret (line breaks), never argv.
    @Test func environmentValuesNeverAppearOnACommandLine() async throws {
        try await TestPodman.ensureImage()
        let marker = "s3cret-\(UUID().uuidString.prefix(8))"
        let spec = task("echo \"one=$ONE\"; echo \"$TWO\" | wc -l; echo \"$TWO\" | tail -1") {
            $0.environment = ["ONE": marker, "TWO": "\(marker)-a\n\(marker)-b"]
        }
        // Watches every process's command line on a thread of its own while the task is created and runs.
        let finished = StopFlag()
        let watch = Task {
            try await onDedicatedThread("cmdline-watch") { () -> (scans: Int, seen: [String]) in
                var scans = 0
                var seen: [String] = []
                while seen.isEmpty && !finished.isSet {
                    seen = Self.commandLines(containing: marker)
                    scans += 1
                    // A podman command lives for tens of milliseconds at least; spinning would
                    // take a whole core of this 2-core machine from every other test.
                    usleep(2_000)
                }
                return (scans, seen)
            }
        }
        let outcome = try await driver.run(spec)
        finished.set()
        let (scans, seen) = try await watch.value
        #expect(seen.isEmpty, "a command line showed an environment value: \(seen)")
        #expect(scans > 1)
        #expect(outcome.stdout == "one=\(marker)\n2\n\(marker)-b\n", "\(outcome)")
        let secrets = try await TestPodman.run(["secret", "ls", "--format", "{{.Name}}"])
        #expect(!secrets.contains(spec.allocationID), "the task's secret outlived it: \(secrets)")
    }

    static func commandLines(containing text: String) -> [String] {
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.filter { Int($0) != nil } ?? []
        return pids.compactMap { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
            let line = String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
            return line.contains(text) ? line : nil
        }
    }
}

/// Tells a watcher on another thread to stop.
final class StopFlag: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}
