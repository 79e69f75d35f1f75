/// A soft preference on node labels: matching nodes score higher (positive weight) or lower (negative weight).
public struct Affinity: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The label test, with the same operators as a constraint.
    public var constraint: Constraint
    /// -100...100, never 0; Nomad's scale, so weights read the same to people who know it.
    public var weight: Int

    /// Creates an affinity.
    public init(_ constraint: Constraint, weight: Int) {
        self.constraint = constraint
        self.weight = weight
    }

    /// `gpu=a100 (weight 50)`.
    public var description: String { "\(constraint) (weight \(weight))" }

    /// The normalized affinity of a node, in -1...1: matched weights over the total absolute weight.
    public static func score(_ affinities: [Affinity], labels: [String: String]) -> Double {
        var matched = 0
        var total = 0
        for affinity in affinities {
            total += abs(affinity.weight)
            if affinity.constraint.isSatisfied(by: labels) { matched += affinity.weight }
        }
        return total == 0 ? 0 : Double(matched) / Double(total)
    }
}
