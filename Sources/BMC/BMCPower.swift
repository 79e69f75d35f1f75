import CFreeIPMI
import SpecolaWire

#if canImport(Glibc)
import Glibc
#endif

/// A failed IPMI operation; `description` never contains credentials.
public struct BMCError: Error, CustomStringConvertible, Sendable {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}

/// Chassis power control of one BMC over IPMI-over-LAN 2.0 (libfreeipmi).
///
/// Uses ADMIN privilege, cipher suite 3 and the open-session-privilege workaround.
/// It is independent of the collector so that fencing can reuse it.
public struct BMCPower: Sendable, CustomStringConvertible {
    public let host: String
    public let port: Int
    public let user: String
    let password: String
    /// Session timeout; retransmissions happen every quarter of it.
    public let timeout: Duration

    public init(host: String, port: Int = 623, user: String, password: String, timeout: Duration = .seconds(5)) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.timeout = timeout
    }

    /// "HOST:PORT", without credentials.
    public var description: String { "\(host):\(port)" }

    /// Reads the chassis power state.
    public func powerStatus() throws -> Specola_V1_PowerState {
        try withSession { try $0.chassisPowerIsOn() ? .on : .off }
    }

    /// Sends chassis control POWER-DOWN (never a cycle). It returns once the BMC accepted
    /// the command; fencing confirms the result with `powerStatus()`.
    public func powerOff() throws {
        try withSession { try $0.chassisControl(UInt8(IPMI_CHASSIS_CONTROL_POWER_DOWN)) }
    }

    /// Sends chassis control POWER-UP, for `specola node unfence`.
    public func powerOn() throws {
        try withSession { try $0.chassisControl(UInt8(IPMI_CHASSIS_CONTROL_POWER_UP)) }
    }

    func withSession<T>(_ body: (FreeIPMISession) throws -> T) throws -> T {
        let session = try FreeIPMISession.openLAN(
            hostname: port == 623 ? host : "\(host):\(port)", user: user, password: password, timeout: timeout)
        defer { session.close() }
        return try body(session)
    }
}

/// SEL bookkeeping from Get SEL Info, used to skip SEL reads when nothing changed.
package struct SELInfo: Equatable {
    package var entries: UInt64
    package var lastAddition: UInt64
    package var lastErase: UInt64
}

/// One open libfreeipmi session; not thread-safe, closed by its owner.
package final class FreeIPMISession {
    private let ctx: OpaquePointer

    private init(ctx: OpaquePointer) {
        self.ctx = ctx
    }

    package static func openLAN(hostname: String, user: String, password: String, timeout: Duration) throws -> FreeIPMISession {
        guard let ctx = ipmi_ctx_create() else { throw BMCError("cannot create libfreeipmi context") }
        let timeoutMs = UInt32(clamping: timeout.ipmiMilliseconds)
        let rc = ipmi_ctx_open_outofband_2_0(
            ctx, hostname, user, password, nil, 0,
            UInt8(IPMI_PRIVILEGE_LEVEL_ADMIN), 3,
            timeoutMs, max(timeoutMs / 4, 100),
            UInt32(IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_OPEN_SESSION_PRIVILEGE), UInt32(IPMI_FLAGS_DEFAULT))
        if rc < 0 {
            let message = String(cString: ipmi_ctx_errormsg(ctx))
            ipmi_ctx_destroy(ctx)
            throw BMCError(message)
        }
        return FreeIPMISession(ctx: ctx)
    }

    /// Probes the local in-band drivers (KCS, SSIF, OpenIPMI, ...).
    package static func openInBand() throws -> FreeIPMISession {
        guard let ctx = ipmi_ctx_create() else { throw BMCError("cannot create libfreeipmi context") }
        var driver = ipmi_driver_type_t(rawValue: 0)
        let rc = ipmi_ctx_find_inband(ctx, &driver, 0, 0, 0, nil, 0, UInt32(IPMI_FLAGS_DEFAULT))
        if rc <= 0 {
            let message = rc == 0 ? "no in-band IPMI driver found" : String(cString: ipmi_ctx_errormsg(ctx))
            ipmi_ctx_destroy(ctx)
            throw BMCError(message)
        }
        return FreeIPMISession(ctx: ctx)
    }

    package func close() {
        ipmi_ctx_close(ctx)
        ipmi_ctx_destroy(ctx)
    }

    package func chassisPowerIsOn() throws -> Bool {
        try command("tmpl_cmd_get_chassis_status_rs", { ipmi_cmd_get_chassis_status(ctx, $0) }) { response in
            try response.value("current_power_state.power_is_on") != 0
        }
    }

    package func chassisControl(_ control: UInt8) throws {
        try command("tmpl_cmd_chassis_control_rs", { ipmi_cmd_chassis_control(ctx, control, $0) }) { _ in }
    }

    package func selInfo() throws -> SELInfo {
        try command("tmpl_cmd_get_sel_info_rs", { ipmi_cmd_get_sel_info(ctx, $0) }) { response in
            SELInfo(
                entries: try response.value("entries"),
                lastAddition: try response.value("most_recent_addition_timestamp"),
                lastErase: try response.value("most_recent_erase_timestamp"))
        }
    }

    /// Runs one IPMI command whose response layout is the named fiid template.
    private func command<T>(
        _ templateName: String, _ send: (fiid_obj_t) -> Int32, parse: (FiidResponse) throws -> T
    ) throws -> T {
        guard let template = FiidTemplates.lookup(templateName), let obj = fiid_obj_create(template) else {
            throw BMCError("cannot create fiid object \(templateName)")
        }
        defer { fiid_obj_destroy(obj) }
        if send(obj) < 0 {
            throw BMCError(String(cString: ipmi_ctx_errormsg(ctx)))
        }
        return try parse(FiidResponse(obj: obj))
    }
}

struct FiidResponse {
    let obj: fiid_obj_t

    func value(_ field: String) throws -> UInt64 {
        var value: UInt64 = 0
        guard fiid_obj_get(obj, field, &value) >= 0 else {
            throw BMCError("response field \(field): \(String(cString: fiid_obj_errormsg(obj)))")
        }
        return value
    }
}

/// libfreeipmi's fiid templates are `extern fiid_field_t x[]`, which Swift does not import,
/// so they are looked up by symbol name in the already linked library.
enum FiidTemplates {
    static func lookup(_ name: String) -> UnsafeMutablePointer<fiid_field_t>? {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else { return nil }
        return symbol.assumingMemoryBound(to: fiid_field_t.self)
    }
}

extension Duration {
    package var ipmiMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
