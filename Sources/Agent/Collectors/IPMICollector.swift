import CFreeIPMI
import SpecolaBMC
import CIPMIMonitoring
import Foundation
import Logging
import SpecolaProtocol

/// Where the node's BMC is reached.
public enum BMCTarget: Sendable {
    /// The node has no BMC to monitor.
    case none
    /// The local BMC through the kernel driver (/dev/ipmi0, KCS, SSIF).
    case inBand
    /// IPMI-over-LAN 2.0; the password is read from `passwordFile` on every cycle.
    case lan(host: String, port: Int, user: String, passwordFile: String)
}

/// Reads sensors, new SEL entries and chassis power state from a BMC.
///
/// Sensors and SEL come from libipmimonitoring, with the SDR cached in `sdrCacheDirectory`;
/// power and SEL bookkeeping from libfreeipmi. Calls are serialized by a lock.
/// The first `collect()` returns the whole SEL (unless `resumeSELAfter` is given);
/// later calls return only entries with a higher record id. After the SEL is cleared
/// every remaining entry counts as new again.
public final class IPMICollector: @unchecked Sendable {
    private let target: BMCTarget
    private let sdrCacheDirectory: String
    private let logger: Logger
    private let timeout: Duration
    private let lock = NSLock()

    // Guarded by `lock`.
    private var monitoringCtx: OpaquePointer?
    private var highestSELRecordID: UInt32?
    private var lastSELInfo: SELInfo?
    private var reportedAvailable: Bool?
    private var selFailing = false

    /// - Parameters:
    ///   - timeout: IPMI session timeout per cycle; an unreachable LAN BMC costs about this long.
    ///   - resumeSELAfter: highest SEL record id already reported, e.g. restored after a restart.
    public init(
        target: BMCTarget, sdrCacheDirectory: String, logger: Logger,
        timeout: Duration = .seconds(5), resumeSELAfter: UInt32? = nil
    ) {
        self.target = target
        self.sdrCacheDirectory = sdrCacheDirectory
        self.logger = logger
        self.timeout = timeout
        self.highestSELRecordID = resumeSELAfter
    }

    deinit {
        if let monitoringCtx { ipmi_monitoring_ctx_destroy(monitoringCtx) }
    }

    /// Highest SEL record id returned so far, for persisting across restarts.
    public var selCursor: UInt32? {
        lock.withLock { highestSELRecordID }
    }

    /// One collection cycle. Never throws: an unusable BMC yields `present == false` with a reason.
    public func collect() -> (bmc: Specola_V1_BmcSection, newSEL: [Specola_V1_SelEntry]) {
        lock.withLock { collectLocked() }
    }

    private func collectLocked() -> (bmc: Specola_V1_BmcSection, newSEL: [Specola_V1_SelEntry]) {
        var section = Specola_V1_BmcSection()
        switch target {
        case .none:
            section.present = false
            section.reason = "no BMC configured"
            return (section, [])
        case .inBand:
            section.source = "in-band"
            do {
                let result = try collectFromBMC(hostname: nil, config: .inBand) {
                    try FreeIPMISession.openInBand()
                }
                markAvailable(source: section.source)
                section.present = true
                section.power = result.power
                section.sensors = result.sensors
                return (section, result.newSEL)
            } catch {
                return (unavailable(section, reason: "no local BMC (in-band IPMI unavailable: \(error))"), [])
            }
        case .lan(let host, let port, let user, let passwordFile):
            section.source = "lan:\(host):\(port)"
            let password: String
            do {
                password = try Self.readPassword(passwordFile)
            } catch {
                return (unavailable(section, reason: "BMC \(host):\(port): cannot read password file \(passwordFile): \(error)"), [])
            }
            let hostname = port == 623 ? host : "\(host):\(port)"
            do {
                let result = try collectFromBMC(
                    hostname: hostname, config: .lan(user: user, password: password, timeout: timeout)
                ) {
                    try FreeIPMISession.openLAN(hostname: hostname, user: user, password: password, timeout: timeout)
                }
                markAvailable(source: section.source)
                section.present = true
                section.power = result.power
                section.sensors = result.sensors
                return (section, result.newSEL)
            } catch {
                return (unavailable(section, reason: "BMC \(host):\(port): \(error)"), [])
            }
        }
    }

    private struct Reading {
        var power: Specola_V1_PowerState
        var sensors: [Specola_V1_Sensor]
        var newSEL: [Specola_V1_SelEntry]
    }

    /// Power and SEL info first (one short freeipmi session, fails fast), then sensors and SEL.
    private func collectFromBMC(
        hostname: String?, config: MonitoringConfig, openSession: () throws -> FreeIPMISession
    ) throws -> Reading {
        let session = try openSession()
        let powerIsOn: Bool
        let selInfo: SELInfo?
        do {
            defer { session.close() }
            powerIsOn = try session.chassisPowerIsOn()
            selInfo = try? session.selInfo()
        }
        let ctx = try monitoringContext()
        let sensors = try config.withCConfig { try readSensors(ctx: ctx, hostname: hostname, config: $0) }
        var newSEL: [Specola_V1_SelEntry] = []
        if selInfo == nil || selInfo != lastSELInfo {
            if let selInfo, let lastSELInfo, selInfo.lastErase != lastSELInfo.lastErase {
                logger.info("BMC SEL was cleared; reporting its entries from the start")
                highestSELRecordID = nil
            }
            do {
                let entries = try config.withCConfig { try readSEL(ctx: ctx, hostname: hostname, config: $0) }
                newSEL = takeNewEntries(entries)
                lastSELInfo = selInfo
                selFailing = false
            } catch {
                // Sensors and power are still worth reporting; the SEL is retried next cycle.
                if !selFailing { logger.warning("cannot read BMC SEL", metadata: ["error": "\(error)"]) }
                selFailing = true
            }
        }
        return Reading(power: powerIsOn ? .on : .off, sensors: sensors, newSEL: newSEL)
    }

    /// Keeps entries above the high-water mark; ids lower than everything seen mean the SEL restarted.
    private func takeNewEntries(_ entries: [Specola_V1_SelEntry]) -> [Specola_V1_SelEntry] {
        let maxID = entries.map(\.recordID).max()
        if let highest = highestSELRecordID, let maxID, maxID < highest {
            logger.info("BMC SEL record ids went back (\(maxID) < \(highest)); assuming it was cleared")
            highestSELRecordID = nil
        }
        let fresh = entries.filter { entry in highestSELRecordID.map { entry.recordID > $0 } ?? true }
        if let maxID { highestSELRecordID = max(highestSELRecordID ?? 0, maxID) }
        return fresh.sorted { $0.recordID < $1.recordID }
    }

    private func monitoringContext() throws -> OpaquePointer {
        if let monitoringCtx { return monitoringCtx }
        guard Self.libraryInitialized else { throw BMCError("libipmimonitoring initialization failed") }
        guard let ctx = ipmi_monitoring_ctx_create() else { throw BMCError("cannot create libipmimonitoring context") }
        try? FileManager.default.createDirectory(
            atPath: sdrCacheDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        if ipmi_monitoring_ctx_sdr_cache_directory(ctx, sdrCacheDirectory) < 0 {
            let message = Self.errorMessage(ctx)
            ipmi_monitoring_ctx_destroy(ctx)
            throw BMCError("SDR cache directory \(sdrCacheDirectory): \(message)")
        }
        monitoringCtx = ctx
        return ctx
    }

    private static let libraryInitialized: Bool = {
        var errnum: Int32 = 0
        return ipmi_monitoring_init(0, &errnum) == 0
    }()

    private static func errorMessage(_ ctx: OpaquePointer) -> String {
        String(cString: ipmi_monitoring_ctx_errormsg(ctx))
    }

    private func readSensors(
        ctx: OpaquePointer, hostname: String?, config: UnsafeMutablePointer<ipmi_monitoring_ipmi_config>
    ) throws -> [Specola_V1_Sensor] {
        let flags = IPMI_MONITORING_SENSOR_READING_FLAGS_IGNORE_NON_INTERPRETABLE_SENSORS.rawValue
        let count = ipmi_monitoring_sensor_readings_by_record_id(ctx, hostname, config, flags, nil, 0, nil, nil)
        if count < 0 { throw BMCError("sensor readings: \(Self.errorMessage(ctx))") }
        defer { ipmi_monitoring_sensor_iterator_destroy(ctx) }
        var sensors: [Specola_V1_Sensor] = []
        sensors.reserveCapacity(Int(count))
        for _ in 0..<count {
            var sensor = Specola_V1_Sensor()
            sensor.recordID = UInt32(clamping: ipmi_monitoring_sensor_read_record_id(ctx))
            sensor.name = ipmi_monitoring_sensor_read_sensor_name(ctx).map { String(cString: $0) } ?? ""
            sensor.type = Self.sensorTypeName(ipmi_monitoring_sensor_read_sensor_type(ctx))
            sensor.units = Self.unitsName(ipmi_monitoring_sensor_read_sensor_units(ctx))
            sensor.state = Self.state(ipmi_monitoring_sensor_read_sensor_state(ctx))
            if let value = Self.readingValue(ctx) {
                sensor.hasReading_p = true
                sensor.reading = value
            }
            sensors.append(sensor)
            if ipmi_monitoring_sensor_iterator_next(ctx) != 1 { break }
        }
        return sensors
    }

    private static func readingValue(_ ctx: OpaquePointer) -> Double? {
        guard let raw = ipmi_monitoring_sensor_read_sensor_reading(ctx) else { return nil }
        switch UInt32(bitPattern: ipmi_monitoring_sensor_read_sensor_reading_type(ctx)) {
        case IPMI_MONITORING_SENSOR_READING_TYPE_UNSIGNED_INTEGER8_BOOL.rawValue:
            return Double(raw.load(as: UInt8.self))
        case IPMI_MONITORING_SENSOR_READING_TYPE_UNSIGNED_INTEGER32.rawValue:
            return Double(raw.load(as: UInt32.self))
        case IPMI_MONITORING_SENSOR_READING_TYPE_DOUBLE.rawValue:
            return raw.load(as: Double.self)
        default:
            return nil
        }
    }

    private func readSEL(
        ctx: OpaquePointer, hostname: String?, config: UnsafeMutablePointer<ipmi_monitoring_ipmi_config>
    ) throws -> [Specola_V1_SelEntry] {
        let count = ipmi_monitoring_sel_by_record_id(ctx, hostname, config, 0, nil, 0, nil, nil)
        if count < 0 {
            if ipmi_monitoring_ctx_errnum(ctx) == Int32(IPMI_MONITORING_ERR_NO_SEL_RECORDS.rawValue) { return [] }
            throw BMCError("SEL: \(Self.errorMessage(ctx))")
        }
        defer { ipmi_monitoring_sel_iterator_destroy(ctx) }
        var entries: [Specola_V1_SelEntry] = []
        for _ in 0..<count {
            var entry = Specola_V1_SelEntry()
            entry.recordID = UInt32(clamping: ipmi_monitoring_sel_read_record_id(ctx))
            var timestamp: UInt32 = 0
            if ipmi_monitoring_sel_read_timestamp(ctx, &timestamp) >= 0 {
                entry.timestampUnix = Int64(timestamp)
            }
            let recordClass = UInt32(bitPattern: ipmi_monitoring_sel_read_record_type_class(ctx))
            if recordClass == IPMI_MONITORING_SEL_RECORD_TYPE_CLASS_SYSTEM_EVENT_RECORD.rawValue {
                entry.sensorName = ipmi_monitoring_sel_read_sensor_name(ctx).map { String(cString: $0) } ?? ""
                entry.sensorType = Self.sensorTypeName(ipmi_monitoring_sel_read_sensor_type(ctx))
                entry.state = Self.state(ipmi_monitoring_sel_read_sel_state(ctx))
                var event = ipmi_monitoring_sel_read_event_offset_string(ctx).map { String(cString: $0) } ?? ""
                if ipmi_monitoring_sel_read_event_direction(ctx)
                    == Int32(IPMI_MONITORING_SEL_EVENT_DIRECTION_DEASSERTION.rawValue)
                {
                    event += " (deasserted)"
                }
                entry.event = event
            } else {
                entry.state = Self.state(ipmi_monitoring_sel_read_sel_state(ctx))
                entry.event = "OEM record type 0x\(String(ipmi_monitoring_sel_read_record_type(ctx), radix: 16))"
            }
            entries.append(entry)
            if ipmi_monitoring_sel_iterator_next(ctx) != 1 { break }
        }
        return entries
    }

    /// freeipmi's names, as ipmi_exporter reports them: "Temperature", "Fan", "Voltage", ...
    private static func sensorTypeName(_ type: Int32) -> String {
        guard (0...0xFF).contains(type), let name = ipmi_get_sensor_type_string(UInt8(type)) else {
            return "Unknown"
        }
        return String(cString: name)
    }

    private static func unitsName(_ units: Int32) -> String {
        switch UInt32(bitPattern: units) {
        case IPMI_MONITORING_SENSOR_UNITS_CELSIUS.rawValue: "C"
        case IPMI_MONITORING_SENSOR_UNITS_FAHRENHEIT.rawValue: "F"
        case IPMI_MONITORING_SENSOR_UNITS_VOLTS.rawValue: "V"
        case IPMI_MONITORING_SENSOR_UNITS_AMPS.rawValue: "A"
        case IPMI_MONITORING_SENSOR_UNITS_RPM.rawValue: "RPM"
        case IPMI_MONITORING_SENSOR_UNITS_WATTS.rawValue: "W"
        case IPMI_MONITORING_SENSOR_UNITS_PERCENT.rawValue: "%"
        default: ""
        }
    }

    private static func state(_ state: Int32) -> Specola_V1_SensorState {
        switch UInt32(bitPattern: state) {
        case IPMI_MONITORING_STATE_NOMINAL.rawValue: .nominal
        case IPMI_MONITORING_STATE_WARNING.rawValue: .warning
        case IPMI_MONITORING_STATE_CRITICAL.rawValue: .critical
        default: .unknown
        }
    }

    static func readPassword(_ path: String) throws -> String {
        var password = try String(contentsOfFile: path, encoding: .utf8)
        while password.last?.isNewline == true { password.removeLast() }
        return password
    }

    /// Logs a lost BMC once per state change, not every cycle.
    private func unavailable(_ section: Specola_V1_BmcSection, reason: String) -> Specola_V1_BmcSection {
        var section = section
        section.present = false
        section.reason = reason
        section.power = .unknown
        if reportedAvailable != false {
            logger.warning("BMC unavailable; collection continues without it", metadata: ["reason": "\(reason)"])
        }
        reportedAvailable = false
        return section
    }

    private func markAvailable(source: String) {
        if reportedAvailable == false {
            logger.info("BMC reachable again", metadata: ["source": "\(source)"])
        }
        reportedAvailable = true
    }
}

/// libipmimonitoring connection settings, turned into its C struct for the duration of a call.
private enum MonitoringConfig {
    case inBand
    case lan(user: String, password: String, timeout: Duration)

    func withCConfig<T>(_ body: (UnsafeMutablePointer<ipmi_monitoring_ipmi_config>) throws -> T) rethrows -> T {
        var config = ipmi_monitoring_ipmi_config()
        config.driver_type = -1
        config.protocol_version = -1
        config.privilege_level = -1
        config.authentication_type = -1
        config.cipher_suite_id = -1
        switch self {
        case .inBand:
            return try body(&config)
        case .lan(let user, let password, let timeout):
            let userC = strdup(user)
            let passwordC = strdup(password)
            defer {
                free(userC)
                if let passwordC {
                    memset(passwordC, 0, strlen(passwordC))
                    free(passwordC)
                }
            }
            let timeoutMs = Int32(clamping: timeout.ipmiMilliseconds)
            config.protocol_version = Int32(IPMI_MONITORING_PROTOCOL_VERSION_2_0.rawValue)
            config.username = userC
            config.password = passwordC
            config.privilege_level = Int32(IPMI_MONITORING_PRIVILEGE_LEVEL_ADMIN.rawValue)
            config.cipher_suite_id = 3
            config.session_timeout_len = timeoutMs
            config.retransmission_timeout_len = max(timeoutMs / 4, 100)
            config.workaround_flags =
                IPMI_MONITORING_WORKAROUND_FLAGS_PROTOCOL_VERSION_2_0_OPEN_SESSION_PRIVILEGE.rawValue
            return try body(&config)
        }
    }
}
