import Foundation

/// One task as the agent runs it: what to start, with which limits, for which allocation.
public struct TaskLaunch: Sendable, Equatable {
    /// The allocation this run belongs to; also the instruction's idempotency key.
    public var allocationID: String
    public var image: String
    public var command: [String]
    public var environment: [String: String] = [:]
    public var mounts: [Mount] = []
    /// Cores, fractional allowed; nil means unlimited.
    public var cpus: Double?
    public var memoryBytes: UInt64?
    public var pidsLimit: Int? = 4096
    public var timeout: Duration?
    /// podman network mode; "none" keeps batch work off the network unless a task asks.
    public var network = "none"
    /// podman's --pull policy: "missing" for a site registry, "never" for local images only.
    public var pull = "missing"

    public init(allocationID: String, image: String, command: [String]) {
        self.allocationID = allocationID
        self.image = image
        self.command = command
    }

    /// A bind mount into the task, e.g. the archive volume.
    public struct Mount: Sendable, Equatable {
        public var source: String
        public var target: String
        public var readOnly: Bool

        public init(source: String, target: String, readOnly: Bool = true) {
            self.source = source
            self.target = target
            self.readOnly = readOnly
        }
    }
}

/// How a task ended.
public struct TaskOutcome: Sendable, Equatable {
    public enum Ending: String, Sendable { case exited, timedOut, failedToStart }
    public var ending: Ending
    public var exitCode: Int32
    /// The last bytes of each stream (bounded), kept for `specola logs`.
    public var stdout: String
    public var stderr: String
    public var message: String

    public var succeeded: Bool { ending == .exited && exitCode == 0 }

    /// Output kept per stream.
    public static let outputLimit = 64 * 1024
    /// What a driver reads into memory per stream: a rolling tail one byte longer than
    /// `outputLimit`, so `tail` still sees that the output was cut.
    public static let retainedOutput = outputLimit + 1

    /// The last `outputLimit` bytes of a stream, marked when cut.
    static func tail(_ text: String) -> String {
        let bytes = Array(text.utf8)
        guard bytes.count > outputLimit else { return text }
        return "…" + String(decoding: bytes.suffix(outputLimit), as: UTF8.self)
    }
}
