import Foundation
import SpecolaProcesses

/// A tiny container image made from the host's static busybox, with every
/// applet linked into /bin: enough for samples and tests, and no registry needed.
public enum BusyboxImage {
    public struct BuildError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Imports `image` into podman unless it exists already.
    public static func ensure(_ image: String, podmanEnvironment: [String: String], busybox: String = "/bin/busybox") async throws {
        if try await runProcess("podman", ["image", "exists", image], environment: podmanEnvironment).status == 0 { return }
        guard FileManager.default.isExecutableFile(atPath: busybox) else {
            throw BuildError(description: "\(busybox) not found; install it with `apt-get install busybox-static`")
        }
        let listed = try await runProcess(busybox, ["--list"])
        let applets = String(decoding: listed.stdout, as: UTF8.self).split(separator: "\n").map(String.init)
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("specola-image-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let bin = root + "/bin"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        for dir in ["tmp", "proc", "sys", "dev", "etc"] {
            try FileManager.default.createDirectory(atPath: root + "/" + dir, withIntermediateDirectories: true)
        }
        try FileManager.default.copyItem(atPath: busybox, toPath: bin + "/busybox")
        for applet in applets where applet != "busybox" && !applet.contains("/") {
            try? FileManager.default.createSymbolicLink(atPath: bin + "/" + applet, withDestinationPath: "busybox")
        }
        let imported = try await runProcess(
            "/bin/sh", ["-c", "tar -C \"$0\" -c . | podman import --change 'ENV PATH=/bin' - \"$1\"", root, image],
            environment: podmanEnvironment, timeout: .seconds(120))
        guard imported.status == 0 else {
            throw BuildError(description: "podman import of \(image) failed: \(String(decoding: imported.stderr, as: UTF8.self))")
        }
    }
}
