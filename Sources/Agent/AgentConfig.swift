import Foundation
import SpecolaProtocol
import SpecolaDaemon

/// `/etc/specola/agent.yaml`. `packaging/agent.yaml` documents every field.
public struct AgentConfig: Decodable, Sendable {
    public var nodeName: String
    public var coordinators: [HostPort]
    public var tls: TLSFiles
    public var dataDir: String
    public var address: String
    public var heartbeatInterval: Double
    public var reportInterval: Double
    public var fullReportInterval: Double
    public var stopDrainTimeout: Double
    public var labels: [String: String]
    public var bmc: BMCConfig
    public var libvirt: LibvirtConfig
    public var podman: PodmanConfig
    /// What tasks may do here: container user and capabilities, host mounts, exec.
    public var tasks: TaskPolicy
    public var gluster: GlusterConfig
    /// How the disk collector reads SMART health.
    public var smart: SmartConfig
    public var logLevel: String

    enum CodingKeys: String, CodingKey, CaseIterable {
        case nodeName, coordinators, tls, dataDir, address, heartbeatInterval, reportInterval
        case fullReportInterval, stopDrainTimeout, labels, bmc, libvirt, podman, tasks, gluster, smart, logLevel
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        nodeName = try c.decode(String.self, forKey: .nodeName)
        let addresses = try c.decode([String].self, forKey: .coordinators)
        coordinators = try addresses.enumerated().map { index, text in
            guard let endpoint = HostPort(parsing: text, defaultPort: 7450) else {
                var nested = try c.nestedUnkeyedContainer(forKey: .coordinators)
                for _ in 0..<index { _ = try nested.decode(String.self) }
                throw DecodingError.dataCorruptedError(
                    in: nested, debugDescription: "'\(text)' is not an address; write HOST:PORT, e.g. 127.0.0.11:7450")
            }
            return endpoint
        }
        if coordinators.isEmpty {
            throw DecodingError.dataCorruptedError(forKey: .coordinators, in: c, debugDescription: "list at least one coordinator address")
        }
        tls = try c.decode(TLSFiles.self, forKey: .tls)
        dataDir = try c.decodeIfPresent(String.self, forKey: .dataDir) ?? "/var/lib/specola/agent"
        address = try c.decodeIfPresent(String.self, forKey: .address) ?? ""
        heartbeatInterval = try c.decodePositiveSeconds(.heartbeatInterval, default: 1)
        reportInterval = try c.decodePositiveSeconds(.reportInterval, default: 5)
        fullReportInterval = try c.decodePositiveSeconds(.fullReportInterval, default: 300)
        stopDrainTimeout = try c.decodePositiveSeconds(.stopDrainTimeout, default: 5)
        labels = try c.decodeIfPresent([String: String].self, forKey: .labels) ?? [:]
        bmc = try c.decodeIfPresent(BMCConfig.self, forKey: .bmc) ?? BMCConfig()
        libvirt = try c.decodeIfPresent(LibvirtConfig.self, forKey: .libvirt) ?? LibvirtConfig()
        podman = try c.decodeIfPresent(PodmanConfig.self, forKey: .podman) ?? PodmanConfig()
        tasks = try c.decodeIfPresent(TaskPolicy.self, forKey: .tasks) ?? TaskPolicy()
        gluster = try c.decodeIfPresent(GlusterConfig.self, forKey: .gluster) ?? GlusterConfig()
        smart = try c.decodeIfPresent(SmartConfig.self, forKey: .smart) ?? SmartConfig()
        logLevel = try c.decodeIfPresent(String.self, forKey: .logLevel) ?? "info"
    }
}

/// Where the node's BMC is: none, the local one (in-band), or over the LAN.
public struct BMCConfig: Decodable, Sendable {
    public enum Mode: String, Decodable, Sendable { case none, inBand = "in-band", lan }
    public var mode: Mode = .inBand
    public var host: String = ""
    public var port: Int = 623
    public var user: String = ""
    public var passwordFile: String = ""

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable { case mode, host, port, user, passwordFile }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let modeText = try c.decodeIfPresent(String.self, forKey: .mode) ?? "in-band"
        guard let parsed = Mode(rawValue: modeText) else {
            throw DecodingError.dataCorruptedError(forKey: .mode, in: c, debugDescription: "'\(modeText)' is not one of none, in-band, lan")
        }
        mode = parsed
        host = try c.decodeIfPresent(String.self, forKey: .host) ?? ""
        port = try c.decodeIfPresent(Int.self, forKey: .port) ?? 623
        user = try c.decodeIfPresent(String.self, forKey: .user) ?? ""
        passwordFile = try c.decodeIfPresent(String.self, forKey: .passwordFile) ?? ""
        if mode == .lan {
            if host.isEmpty { throw DecodingError.keyNotFound(CodingKeys.host, .init(codingPath: c.codingPath, debugDescription: "")) }
            if user.isEmpty { throw DecodingError.keyNotFound(CodingKeys.user, .init(codingPath: c.codingPath, debugDescription: "")) }
            if passwordFile.isEmpty {
                throw DecodingError.keyNotFound(CodingKeys.passwordFile, .init(codingPath: c.codingPath, debugDescription: ""))
            }
        }
    }

    var target: BMCTarget {
        switch mode {
        case .none: return .none
        case .inBand: return .inBand
        case .lan: return .lan(host: host, port: port, user: user, passwordFile: passwordFile)
        }
    }
}

/// The libvirt connection URI; an empty URI turns VM collection off.
public struct LibvirtConfig: Decodable, Sendable {
    public var uri: String = "qemu:///system"
    public init() {}
    enum CodingKeys: String, CodingKey, CaseIterable { case uri }
    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        uri = try decoder.container(keyedBy: CodingKeys.self).decodeIfPresent(String.self, forKey: .uri) ?? "qemu:///system"
    }
}

/// How to reach podman; `enabled: false` turns container collection off.
public struct PodmanConfig: Decodable, Sendable {
    public var enabled = true
    public var path = "podman"
    public var containersConf = ""
    /// A storage.conf (sets CONTAINERS_STORAGE_CONF): where images and containers live.
    public var storageConf = ""
    public init() {}
    enum CodingKeys: String, CodingKey, CaseIterable { case enabled, path, containersConf, storageConf }
    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? true
        path = try c.decodeIfPresent(String.self, forKey: .path) ?? "podman"
        containersConf = try c.decodeIfPresent(String.self, forKey: .containersConf) ?? ""
        storageConf = try c.decodeIfPresent(String.self, forKey: .storageConf) ?? ""
    }
}

/// The smartctl the disk collector runs (`COMMAND --json -H /dev/DISK`), and how often a
/// disk's "passed" or "failed" is checked again.
public struct SmartConfig: Decodable, Sendable {
    public var command = "smartctl"
    public var recheckInterval: Double = 600
    public init() {}
    enum CodingKeys: String, CodingKey, CaseIterable { case command, recheckInterval }
    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        command = try c.decodeIfPresent(String.self, forKey: .command) ?? "smartctl"
        if command.isEmpty {
            throw DecodingError.dataCorruptedError(
                forKey: .command, in: c, debugDescription: "give smartctl's path, e.g. smartctl or /usr/sbin/smartctl")
        }
        recheckInterval = try c.decodePositiveSeconds(.recheckInterval, default: 600)
    }
}

/// How to reach this node's glusterd; `enabled: false` turns GlusterFS collection off.
public struct GlusterConfig: Decodable, Sendable {
    public var enabled = true
    /// The gluster CLI and any prefix before it (a wrapper that enters glusterd's namespaces).
    public var command = ["gluster"]
    /// The host name bricks of this node carry in `volume info`; empty: matched by glusterd UUID.
    public var brickHost = ""
    public var timeout: Double = 15
    public var healInfoInterval: Double = 30
    /// How often pool, volumes and brick processes are read from the CLI; a brick of this
    /// node that dies is seen at the next report regardless (its process is checked in /proc).
    public var interval: Double = 10
    /// The limit for one gluster call of a storage action (replace-brick and heal can be slow).
    public var actionTimeout: Double = 120
    public init() {}
    enum CodingKeys: String, CodingKey, CaseIterable { case enabled, command, brickHost, timeout, interval, healInfoInterval, actionTimeout }
    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? true
        command = try c.decodeIfPresent([String].self, forKey: .command) ?? ["gluster"]
        if command.isEmpty || command[0].isEmpty {
            throw DecodingError.dataCorruptedError(
                forKey: .command, in: c, debugDescription: "give the gluster CLI, e.g. [gluster] or [/usr/sbin/gluster]")
        }
        brickHost = try c.decodeIfPresent(String.self, forKey: .brickHost) ?? ""
        timeout = try c.decodePositiveSeconds(.timeout, default: 15)
        interval = try c.decodePositiveSeconds(.interval, default: 10)
        healInfoInterval = try c.decodePositiveSeconds(.healInfoInterval, default: 30)
        actionTimeout = try c.decodePositiveSeconds(.actionTimeout, default: 120)
    }

    var actionSettings: StorageRunner.Settings {
        var settings = StorageRunner.Settings()
        settings.command = command
        settings.timeout = .milliseconds(Int64(actionTimeout * 1000))
        return settings
    }

    var settings: GlusterCollector.Settings {
        var settings = GlusterCollector.Settings()
        settings.command = command
        settings.brickHost = brickHost
        settings.timeout = .milliseconds(Int64(timeout * 1000))
        settings.healInfoInterval = .milliseconds(Int64(healInfoInterval * 1000))
        settings.interval = .milliseconds(Int64(interval * 1000))
        return settings
    }
}
