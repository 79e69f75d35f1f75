import SpecolaProtocol

/// Early warning: a node whose BMC reports trouble is taken out of service
/// before it fails, by policy: a critical sensor, or a critical power-supply
/// SEL event, cordons it (no new work) or drains it (its work moves now).
public struct EarlyWarning: Sendable, Decodable {
    public enum Action: String, Sendable, Decodable {
        case none, cordon, drain
    }

    public var onCriticalSensor: Action = .drain
    public var onPowerSupplyEvent: Action = .drain

    public init(onCriticalSensor: Action = .drain, onPowerSupplyEvent: Action = .drain) {
        self.onCriticalSensor = onCriticalSensor
        self.onPowerSupplyEvent = onPowerSupplyEvent
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case onCriticalSensor, onPowerSupplyEvent }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        onCriticalSensor = try c.decodeIfPresent(Action.self, forKey: .onCriticalSensor) ?? .drain
        onPowerSupplyEvent = try c.decodeIfPresent(Action.self, forKey: .onPowerSupplyEvent) ?? .drain
    }

    /// SEL events older than this no longer take a node out of service (so an uncordon sticks).
    public static let selEventWindowSeconds: Int64 = 600

    /// The step to take for this node now, or nil when it is healthy or already out of service as far as the policy goes.
    public func step(for node: Specola_V1_Node, nowUnixMs: Int64) -> (action: Action, reason: String)? {
        var wanted: (action: Action, reason: String)?
        func consider(_ action: Action, _ reason: String) {
            guard action != .none else { return }
            if wanted == nil || (action == .drain && wanted?.action == .cordon) { wanted = (action, reason) }
        }
        if let sensor = node.facts.bmc.sensors.first(where: { $0.state == .critical }) {
            consider(onCriticalSensor, "BMC sensor '\(sensor.name)' is critical")
        }
        let recent = nowUnixMs / 1000 - Self.selEventWindowSeconds
        if let event = node.recentSel.last(where: {
            $0.state == .critical && $0.sensorType.lowercased().contains("power supply") && $0.timestampUnix >= recent
        }) {
            consider(onPowerSupplyEvent, "power supply event in the SEL: \(event.sensorName) \(event.event)")
        }
        guard let wanted else { return nil }
        switch wanted.action {
        case .drain where !node.draining: return wanted
        case .cordon where !node.cordoned && !node.draining: return wanted
        default: return nil
        }
    }
}
