import Foundation
import SpecolaProtocol

/// What a runtime says about one workload on this node.
public enum WorkloadObservation: Equatable, Sendable {
    case running
    /// Not running; the text says what the runtime shows (e.g. "shutoff", "exited", "gone").
    case stopped(String)
}

/// Starts, watches and stops HA workloads of one kind on this node. The
/// runtime knows a workload by its name (domain name, pod name), so a start
/// of a name that already runs adopts it instead of starting a second one.
public protocol WorkloadDriver: Sendable {
    /// Starts `definition` under `name`; returns once the runtime reports it started.
    func start(name: String, generation: UInt64, definition: String) async throws
    /// The state of each named workload. Throws when the runtime cannot be asked,
    /// which is never taken to mean "stopped".
    func observe(_ names: [String]) async throws -> [String: WorkloadObservation]
    /// Stops and removes the workload; succeeds when it does not exist.
    /// `immediately` (the self-fence) kills without a grace period.
    func stop(name: String, immediately: Bool) async throws
    /// The processes that run the workload on this host, for a self-fence that must kill it
    /// without asking the runtime; empty when the runtime's own stop needs no process to start.
    func processes(of name: String) async -> [ProcessIdentity]
}

extension WorkloadDriver {
    public func processes(of name: String) async -> [ProcessIdentity] { [] }
}
