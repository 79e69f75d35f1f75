import CLibvirt
import Foundation
import Logging
import SpecolaProtocol

/// HA VMs through libvirt's C API on a read-write connection. A VM is started
/// as a transient domain (`virDomainCreateXML`): the definition lives in the
/// replicated state, so a node that reboots never brings it back by itself,
/// which is what fencing relies on. Stopping is `virDomainDestroy` (power
/// off), as for any HA manager that must be sure the VM is gone.
public final class LibvirtWorkloadDriver: WatchedWorkloadDriver, @unchecked Sendable {
    private let logger: Logger
    /// Every libvirt call runs here, off the cooperative pool; it also serializes `connection`.
    private let queue = DispatchQueue(label: "specola.agent.libvirt-workloads")
    private let connection: LibvirtConnection

    public init(uri: String, logger: Logger) {
        self.logger = logger
        connection = LibvirtConnection(uri: uri, readOnly: false, logger: logger)
    }

    public func start(name: String, generation: UInt64, definition: String) async throws {
        try await onQueue { conn in
            if let existing = virDomainLookupByName(conn, name) {
                defer { virDomainFree(existing) }
                if virDomainIsActive(existing) == 1 {
                    self.logger.info("VM already runs here; adopting it", metadata: ["workload.name": "\(name)"])
                    return
                }
            }
            virResetLastError()
            guard let domain = virDomainCreateXML(conn, definition, 0) else {
                throw LibvirtError.last(context: "starting VM \(name)")
            }
            virDomainFree(domain)
        }
    }

    public func observe(_ names: [String]) async throws -> [String: WorkObservation] {
        try await onQueue { conn in
            var seen: [String: WorkObservation] = [:]
            for name in names {
                guard let domain = try Self.lookup(conn, name) else {
                    seen[name] = .stopped("gone (no such domain)")
                    continue
                }
                defer { virDomainFree(domain) }
                var state: Int32 = 0
                var reason: Int32 = 0
                guard virDomainGetState(domain, &state, &reason, 0) == 0 else {
                    throw LibvirtError.last(context: "reading the state of VM \(name)")
                }
                switch UInt32(bitPattern: state) {
                case VIR_DOMAIN_SHUTOFF.rawValue, VIR_DOMAIN_CRASHED.rawValue:
                    seen[name] = .stopped(VMCollector.stateName(state))
                default:
                    // Paused, blocked or shutting down: the VM still exists and holds its disks.
                    seen[name] = .running
                }
            }
            return seen
        }
    }

    public func stop(name: String, immediately: Bool = false) async throws {
        try await onQueue { conn in
            guard let domain = try Self.lookup(conn, name) else { return }
            defer { virDomainFree(domain) }
            guard virDomainIsActive(domain) == 1 else { return }
            if virDomainDestroy(domain) != 0 {
                let error = LibvirtError.last(context: "destroying VM \(name)")
                // It may have ended by itself meanwhile.
                if virDomainIsActive(domain) == 1 { throw error }
            }
        }
    }

    /// The domain, nil when libvirt says there is none; throws for any other failure.
    private static func lookup(_ conn: virConnectPtr, _ name: String) throws -> virDomainPtr? {
        virResetLastError()
        if let domain = virDomainLookupByName(conn, name) { return domain }
        if let error = virGetLastError(), error.pointee.code == Int32(VIR_ERR_NO_DOMAIN.rawValue) {
            virResetLastError()
            return nil
        }
        throw LibvirtError.last(context: "looking up VM \(name)")
    }

    /// Runs `body` on the libvirt queue with a live read-write connection.
    private func onQueue<T: Sendable>(_ body: @escaping @Sendable (virConnectPtr) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(with: Result { try body(self.connection.opened().get()) })
            }
        }
    }
}

extension LibvirtError: CustomStringConvertible {
    var description: String { message }
}
