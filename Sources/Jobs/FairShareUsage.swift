/// Each project's entitlement and recent consumption, in dominant-resource terms, which the queue balances.
///
/// The caller owns history: it decays usage over time (say, a half-life of a day) and passes the result in,
/// so planning stays a pure function of its inputs.
public struct FairShareUsage: Sendable, Hashable {
    /// Relative entitlement per project; a project not listed has `defaultShare`.
    public var shares: [String: Double]
    /// Recent usage per project as a dominant share of the cluster (0.25 = a quarter of the scarcest resource),
    /// already decayed; a project not listed has used nothing.
    public var usage: [String: Double]
    /// Entitlement of unlisted projects.
    public var defaultShare: Double

    /// Creates usage figures.
    public init(shares: [String: Double] = [:], usage: [String: Double] = [:], defaultShare: Double = 1) {
        self.shares = shares
        self.usage = usage
        self.defaultShare = defaultShare
    }

    /// No history: projects are served round-robin within a priority.
    public static let none = FairShareUsage()

    /// Usage relative to entitlement; the project with the smallest value goes next.
    public func normalizedUsage(of project: String) -> Double {
        usage[project, default: 0] / share(of: project)
    }

    /// The project's entitlement, never zero so that division stays finite.
    public func share(of project: String) -> Double {
        max(shares[project] ?? defaultShare, 1e-9)
    }
}
