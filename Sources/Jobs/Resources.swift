/// An amount of the four schedulable resources: what a task asks for, what a node has, or what is allocated on it.
///
/// Integers throughout so that sums are exact and a plan can never drift into over-commit through rounding.
public struct Resources: Sendable, Hashable, Codable {
    /// CPU in millicores (1000 = one core).
    public var cpuMillicores: Int64
    /// Memory in bytes.
    public var memoryBytes: Int64
    /// Whole GPUs.
    public var gpus: Int64
    /// Local scratch disk in bytes.
    public var scratchBytes: Int64

    /// Creates an amount; every field defaults to zero.
    public init(cpuMillicores: Int64 = 0, memoryBytes: Int64 = 0, gpus: Int64 = 0, scratchBytes: Int64 = 0) {
        self.cpuMillicores = cpuMillicores
        self.memoryBytes = memoryBytes
        self.gpus = gpus
        self.scratchBytes = scratchBytes
    }

    /// Nothing at all.
    public static let zero = Resources()

    /// True when every dimension of `self` is at most the same dimension of `other`.
    public func fits(in other: Resources) -> Bool {
        cpuMillicores <= other.cpuMillicores && memoryBytes <= other.memoryBytes
            && gpus <= other.gpus && scratchBytes <= other.scratchBytes
    }

    /// The largest fraction of `total` that this amount takes in any one dimension (Dominant Resource Fairness).
    public func dominantShare(of total: Resources) -> Double {
        func share(_ part: Int64, _ whole: Int64) -> Double { whole > 0 ? Double(part) / Double(whole) : 0 }
        return max(
            share(cpuMillicores, total.cpuMillicores), share(memoryBytes, total.memoryBytes),
            share(gpus, total.gpus), share(scratchBytes, total.scratchBytes))
    }

    /// Dimension-wise sum.
    public static func + (lhs: Resources, rhs: Resources) -> Resources {
        Resources(
            cpuMillicores: lhs.cpuMillicores + rhs.cpuMillicores, memoryBytes: lhs.memoryBytes + rhs.memoryBytes,
            gpus: lhs.gpus + rhs.gpus, scratchBytes: lhs.scratchBytes + rhs.scratchBytes)
    }

    /// Dimension-wise difference; may go negative when a snapshot is already over-committed.
    public static func - (lhs: Resources, rhs: Resources) -> Resources {
        Resources(
            cpuMillicores: lhs.cpuMillicores - rhs.cpuMillicores, memoryBytes: lhs.memoryBytes - rhs.memoryBytes,
            gpus: lhs.gpus - rhs.gpus, scratchBytes: lhs.scratchBytes - rhs.scratchBytes)
    }

    /// Dimension-wise sum in place.
    public static func += (lhs: inout Resources, rhs: Resources) { lhs = lhs + rhs }
}
