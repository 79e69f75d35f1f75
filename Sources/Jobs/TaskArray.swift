/// An array task: one instance per index, each told its index through `SPECOLA_ARRAY_INDEX` (Slurm's `--array`).
public struct TaskArray: Sendable, Hashable, Codable {
    /// The indices, inclusive; `size: N` means `0...N-1`.
    public var indices: ClosedRange<Int>

    /// Creates an array over `indices`.
    public init(indices: ClosedRange<Int>) { self.indices = indices }

    /// The environment variable that carries the index.
    public static let environmentKey = "SPECOLA_ARRAY_INDEX"
}
