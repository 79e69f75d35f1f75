import SpecolaWire

/// How long silence turns a node from ready to suspect to down.
public struct LivenessThresholds: Sendable {
    public var suspectAfterMs: Int64
    public var downAfterMs: Int64

    public init(suspectAfterMs: Int64 = 3_000, downAfterMs: Int64 = 10_000) {
        self.suspectAfterMs = suspectAfterMs
        self.downAfterMs = downAfterMs
    }

    /// Ready, suspect or down.
    public func status(sinceLastContactMs silence: Int64) -> NodeStatus {
        if silence >= downAfterMs { return .down }
        if silence >= suspectAfterMs { return .suspect }
        return .ready
    }
}
