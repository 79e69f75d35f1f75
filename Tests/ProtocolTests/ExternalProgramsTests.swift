import CooperativePoolWatch
import Foundation
import SpecolaProtocol
import Testing
#if canImport(Glibc)
import Glibc
import SpecolaProcesses
#endif

/// Every program that Specola or its tests start, the Debian package it comes from, and
/// whether `scripts/install-deps.sh` must install that package: a program found on a warm
/// machine but missing on a fresh one fails CI only there (catatonit did).
@Suite(.watchesCooperativePool) struct ExternalProgramsTests {
    struct Program {
        var name: String
        var package: String
        /// The package install-deps.sh names that brings `package` in (itself, or one that depends on it).
        var installedBy: String? = nil
        /// False for programs the code uses only where present (smartctl).
        var required = true
    }

    static let programs: [Program] = [
        // Containers: podman runs conmon and runc; `kube play` builds its pause image with catatonit.
        .init(name: "podman", package: "podman"), .init(name: "conmon", package: "conmon", installedBy: "podman"),
        .init(name: "runc", package: "runc"), .init(name: "catatonit", package: "catatonit"),
        .init(name: "busybox", package: "busybox-static"),
        // BMCs and VMs.
        .init(name: "ipmi_sim", package: "openipmi"), .init(name: "ipmi-sel", package: "freeipmi-tools"),
        .init(name: "ipmi-chassis", package: "freeipmi-tools"),
        .init(name: "virsh", package: "libvirt-clients"), .init(name: "libvirtd", package: "libvirt-daemon"),
        // GlusterFS: the agent's collector runs the CLI; the pool tests run glusterd and FUSE mounts.
        .init(name: "gluster", package: "glusterfs-cli", installedBy: "glusterfs-server"),
        .init(name: "glusterd", package: "glusterfs-server"),
        .init(name: "mount.glusterfs", package: "glusterfs-client"),
        .init(name: "mount", package: "mount"), .init(name: "umount", package: "mount"),
        // The disk-failure test puts a brick on an ext4 loop device.
        .init(name: "losetup", package: "mount"), .init(name: "mkfs.ext4", package: "e2fsprogs"),
        .init(name: "truncate", package: "coreutils"),
        // Partitions, namespaces, certificates, receivers, units.
        .init(name: "iptables", package: "iptables"), .init(name: "ip", package: "iproute2"),
        .init(name: "openssl", package: "openssl"), .init(name: "curl", package: "curl"),
        .init(name: "python3", package: "python3-minimal", installedBy: "python3"),
        .init(name: "systemd-analyze", package: "systemd"),
        // Essential packages, present on every Debian system.
        .init(name: "sh", package: "dash"), .init(name: "bash", package: "bash"),
        .init(name: "env", package: "coreutils"), .init(name: "sleep", package: "coreutils"),
        .init(name: "ls", package: "coreutils"), .init(name: "true", package: "coreutils"), .init(name: "nice", package: "coreutils"),
        .init(name: "dd", package: "coreutils"), .init(name: "rm", package: "coreutils"), .init(name: "dpkg-query", package: "dpkg"),
        .init(name: "setpriv", package: "util-linux"), .init(name: "prlimit", package: "util-linux"),
        .init(name: "unshare", package: "util-linux"), .init(name: "nsenter", package: "util-linux"),
        // Optional: the disk collector reads SMART only where smartctl is installed.
        .init(name: "smartctl", package: "smartmontools", required: false),
        // Optional: the pool watchdog dumps stacks with gdb when SPECOLA_POOL_STALL_DUMP is set.
        .init(name: "gdb", package: "gdb", required: false),
    ]

    /// Python modules the tests import, with their Debian packages.
    static let pythonModules = ["aiosmtpd": "python3-aiosmtpd", "jsonschema": "python3-jsonschema"]

    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    /// Program names written literally where Sources/ and Tests/ start a process.
    static func programsStartedInCode() throws -> Set<String> {
        let patterns = [
            #"(?:runProcess|runProcessBlocking|spawnProcess|runBlocking|run|which|resolveExecutable)\("([^"\\]+)""#,
            #"executable: "([^"\\]+)""#,
            #""/(?:usr/)?s?bin/([A-Za-z0-9_.-]+)""#,
            #"(?:smartctlPath|podmanPath): String = "([^"\\]+)""#,
        ].map { try! NSRegularExpression(pattern: $0) }
        var found = Set<String>()
        for directory in ["Sources", "Tests", "scripts"] {
            let base = root + "/" + directory
            guard let walker = FileManager.default.enumerator(atPath: base) else { continue }
            for case let path as String in walker where path.hasSuffix(".swift") || path.hasSuffix(".sh") {
                // LegacyJobScenario.swift rebuilds recorded job specs (their commands never run here).
                guard !path.hasSuffix("ExternalProgramsTests.swift"), !path.hasSuffix("LegacyJobScenario.swift"), !path.contains("Generated/"),
                      let text = try? String(contentsOfFile: base + "/" + path, encoding: .utf8) else { continue }
                let range = NSRange(text.startIndex..., in: text)
                for pattern in patterns {
                    for match in pattern.matches(in: text, range: range) {
                        guard let group = Range(match.range(at: 1), in: text) else { continue }
                        let name = (String(text[group]) as NSString).lastPathComponent
                        // Our own binaries and paths into the build are not external programs.
                        if name.hasPrefix("specola") || name.isEmpty { continue }
                        found.insert(name)
                    }
                }
            }
        }
        return found
    }

    /// The `core` package group of scripts/install-deps.sh.
    static func corePackages() throws -> Set<String> {
        let script = try String(contentsOfFile: root + "/scripts/install-deps.sh", encoding: .utf8)
        guard let start = script.range(of: "\ncore=("), let end = script[start.upperBound...].range(of: "\n)") else {
            throw TestFailure("scripts/install-deps.sh has no core=( ... ) list")
        }
        let body = script[start.upperBound..<end.lowerBound]
        return Set(body.split(separator: "\n").flatMap { line in
            line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first!.split(separator: " ").map(String.init)
        })
    }

    struct TestFailure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    @Test func everyProgramStartedInTheCodeIsListed() throws {
        let listed = Set(Self.programs.map(\.name))
        let unlisted = try Self.programsStartedInCode().subtracting(listed)
        #expect(unlisted.isEmpty, "started in the code but not listed in ExternalProgramsTests.programs with its package: \(unlisted.sorted())")
    }

    @Test func everyRequiredProgramComesFromAPackageThatInstallDepsInstalls() async throws {
        let core = try Self.corePackages()
        for program in Self.programs where program.required {
            let essential = try await Self.run("dpkg-query", ["-W", "-f=${Essential}", program.package])
            let isEssential = essential.status == 0 && essential.stdout == "yes"
            let installer = program.installedBy ?? program.package
            #expect(isEssential || core.contains(installer),
                    "\(program.name) comes from \(program.package), which scripts/install-deps.sh (core) does not install")
            // Debian's programs, as the agent and CI find them (not a pyenv or /usr/local shim).
            let systemPath = "/usr/sbin:/usr/bin:/sbin:/bin:/usr/libexec/podman"
            guard let path = resolveExecutable(program.name, environment: ["PATH": systemPath]) else {
                Issue.record("\(program.name) is not installed: run scripts/install-deps.sh (package \(program.package))")
                continue
            }
            let owner = try await Self.owningPackage(of: path)
            #expect(owner == program.package, "\(path) belongs to package \(owner ?? "none"), not \(program.package)")
        }
        for (module, package) in Self.pythonModules {
            #expect(core.contains(package), "python3 module \(module) comes from \(package), which install-deps.sh (core) does not install")
            let imported = try await Self.run("/usr/bin/python3", ["-c", "import \(module)"])
            #expect(imported.status == 0, "/usr/bin/python3 cannot import \(module): run scripts/install-deps.sh (package \(package))")
        }
    }

    /// The package that installed `path`, trying the /usr-merged and unmerged spellings.
    static func owningPackage(of path: String) async throws -> String? {
        // Through every symlink (iptables goes through /etc/alternatives).
        let real = realpath(path, nil).map { resolved in
            defer { free(resolved) }
            return String(cString: resolved)
        } ?? path
        var candidates = [path, real]
        for candidate in [path, real] {
            if candidate.hasPrefix("/usr/") { candidates.append(String(candidate.dropFirst(4))) }
            else { candidates.append("/usr" + candidate) }
        }
        for candidate in candidates {
            let result = try await run("dpkg-query", ["-S", candidate])
            // Skip "diversion by dash from: /bin/sh" lines.
            guard result.status == 0,
                  let line = result.stdout.split(separator: "\n").first(where: { !$0.hasPrefix("diversion by") }),
                  let colon = line.firstIndex(of: ":") else { continue }
            // "package:arch: path" or "package: path"
            let owner = line[..<colon]
            return String(owner)
        }
        return nil
    }

    private static func run(_ program: String, _ arguments: [String]) async throws -> (status: Int32, stdout: String) {
        let result = try await runProcess(program, arguments)
        return (result.status, String(decoding: result.stdout, as: UTF8.self))
    }
}
