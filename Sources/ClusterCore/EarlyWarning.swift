import SpecolaWire

/// Early warning: a node whose BMC reports trouble is taken out of service
/// before it fails, by policy: a critical sensor, or a critical power-supply
/// SEL event, cordons it (no new work) or drains it (its work moves now).
public struct EarlyWarning: Sendable {
    public enum Action: String, Sendable {
        case none, cordon, drain
    }

    public var onCriticalSensor: Action = .drain
    public var onPowerSupplyEvent: Action = .drain

    public init(onCriticalSensor: Action = .drain, onPowerSupplyEvent: Action = .drain) {
        self.onCriticalSensor = onCriticalSensor
        self.onPowerSupplyEvent = onPowerSupplyEvent
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
