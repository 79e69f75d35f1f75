import CLibvirt
import Foundation
import Logging
import SpecolaProtocol

/// Reports the virtual machines of one libvirt connection.
///
/// The connection stays open between collects (and is reopened when it drops), so a
/// daemon that keeps state per connection sees one long-lived client.
/// When libvirt cannot be reached the section says `available = false` with the reason;
/// the change is logged once, not on every cycle.
public final class VMCollector: @unchecked Sendable {
    private let uri: String
    private let logger: Logger
    // Guards `connection` and `lastReason`; libvirt calls for one collect run under it.
    private let lock = NSLock()
    private let connection: LibvirtConnection
    // nil while available; the reason of the last unavailable report otherwise.
    private var lastReason: String?
    private var hasReported = false

    public init(uri: String, logger: Logger) {
        self.uri = uri
        self.logger = logger
        connection = LibvirtConnection(uri: uri, readOnly: true, logger: logger)
    }

    public func collect() -> Specola_V1_VmSection {
        lock.withLock {
            var section = Specola_V1_VmSection()
            section.uri = uri
            switch listDomains() {
            case .success(let vms):
                section.available = true
                section.vms = vms
                noteAvailability(reason: nil)
            case .failure(let error):
                section.available = false
                section.reason = error.message
                noteAvailability(reason: error.message)
            }
            return section
        }
    }

    private func listDomains() -> Result<[Specola_V1_VirtualMachine], LibvirtError> {
        // One retry covers a connection that died since the previous collect.
        var lastError = LibvirtError(message: "libvirt: not connected")
        for _ in 0..<2 {
            let conn: virConnectPtr
            switch connection.opened() {
            case .success(let open): conn = open
            case .failure(let error): return .failure(error)
            }
            var domains: UnsafeMutablePointer<virDomainPtr?>?
            let count = virConnectListAllDomains(conn, &domains, 0)
            if count >= 0 {
                defer { free(domains) }
                var vms: [Specola_V1_VirtualMachine] = []
                for index in 0..<Int(count) {
                    guard let domain = domains?[index] else { continue }
                    defer { virDomainFree(domain) }
                    if let vm = describe(domain) { vms.append(vm) }
                }
                return .success(vms.sorted { $0.name < $1.name })
            }
            lastError = LibvirtError.last(context: "listing domains")
            connection.drop()
        }
        return .failure(lastError)
    }

    /// nil when the domain vanished between listing and reading it.
    private func describe(_ domain: virDomainPtr) -> Specola_V1_VirtualMachine? {
        var info = virDomainInfo()
        guard virDomainGetInfo(domain, &info) == 0 else { return nil }
        var vm = Specola_V1_VirtualMachine()
        if let name = virDomainGetName(domain) { vm.name = String(cString: name) }
        var uuid = [CChar](repeating: 0, count: Int(VIR_UUID_STRING_BUFLEN))
        if virDomainGetUUIDString(domain, &uuid) == 0 {
            vm.uuid = uuid.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        }
        vm.state = Self.stateName(Int32(info.state))
        vm.vcpus = UInt32(info.nrVirtCpu)
        vm.memoryKib = UInt64(info.maxMem)
        return vm
    }

    static func stateName(_ state: Int32) -> String {
        switch UInt32(bitPattern: state) {
        case VIR_DOMAIN_NOSTATE.rawValue: return "nostate"
        case VIR_DOMAIN_RUNNING.rawValue: return "running"
        case VIR_DOMAIN_BLOCKED.rawValue: return "blocked"
        case VIR_DOMAIN_PAUSED.rawValue: return "paused"
        case VIR_DOMAIN_SHUTDOWN.rawValue: return "shutdown"
        case VIR_DOMAIN_SHUTOFF.rawValue: return "shutoff"
        case VIR_DOMAIN_CRASHED.rawValue: return "crashed"
        case VIR_DOMAIN_PMSUSPENDED.rawValue: return "pmsuspended"
        default: return "unknown"
        }
    }

    private func noteAvailability(reason: String?) {
        defer {
            lastReason = reason
            hasReported = true
        }
        if hasReported && reason == lastReason { return }
        if let reason {
            logger.warning("libvirt unavailable", metadata: ["uri": "\(uri)", "reason": "\(reason)"])
        } else if hasReported {
            logger.info("libvirt available again", metadata: ["uri": "\(uri)"])
        }
    }
}

/// One libvirt connection, kept open between uses (a daemon that keeps state per
/// connection sees one long-lived client) and reopened when it died. Not
/// thread-safe: its owner serializes the calls (a lock, a serial queue).
final class LibvirtConnection: @unchecked Sendable {
    let uri: String
    let readOnly: Bool
    private let logger: Logger
    private var pointer: virConnectPtr?

    init(uri: String, readOnly: Bool, logger: Logger) {
        self.uri = uri
        self.readOnly = readOnly
        self.logger = logger
        LibvirtErrors.installQuietHandler()
    }

    deinit { drop() }

    /// The open connection, reconnecting when the previous one died.
    func opened() -> Result<virConnectPtr, LibvirtError> {
        if let pointer {
            if virConnectIsAlive(pointer) == 1 { return .success(pointer) }
            logger.info("libvirt connection lost, reconnecting", metadata: ["uri": "\(uri)"])
            drop()
        }
        guard let opened = readOnly ? virConnectOpenReadOnly(uri) : virConnectOpen(uri) else {
            return .failure(LibvirtError.last(context: "connecting to \(uri)\(readOnly ? "" : " read-write")"))
        }
        pointer = opened
        return .success(opened)
    }

    func drop() {
        if let pointer { virConnectClose(pointer) }
        pointer = nil
    }
}

struct LibvirtError: Error {
    let message: String

    /// The calling thread's last libvirt error, prefixed with what was being done.
    static func last(context: String) -> LibvirtError {
        if let error = virGetLastError(), let text = error.pointee.message {
            let message = String(cString: text)
            virResetLastError()
            return LibvirtError(message: "\(context): \(message)")
        }
        return LibvirtError(message: "\(context): unknown libvirt error")
    }
}

enum LibvirtErrors {
    /// Replaces libvirt's default handler, which prints every error to stderr.
    /// Errors are read back with `virGetLastError` instead.
    /// Also ignores SIGPIPE: libvirt's remote client writes to a daemon socket that may
    /// have closed, and the default action would kill the agent.
    static func installQuietHandler() { _ = installed }

    private static let installed: Bool = {
        _ = virInitialize()
        virSetErrorFunc(nil) { _, _ in }
        signal(SIGPIPE, SIG_IGN)
        return true
    }()
}
