/// A hard requirement on a node's labels; a node that fails it is never considered for the task.
public struct Constraint: Sendable, Hashable, Codable, CustomStringConvertible {
    /// How the label's value is compared.
    public enum Operator: String, Sendable, Hashable, Codable, CaseIterable {
        /// The label equals the single value.
        case equal = "="
        /// The label is absent or differs from the single value.
        case notEqual = "!="
        /// The label is one of the values.
        case `in`
        /// The label is absent or none of the values.
        case notIn = "notin"
        /// The label is present, whatever its value.
        case exists
    }

    /// The node label the constraint reads, e.g. `gpu` or `site`.
    public var label: String
    /// The comparison.
    public var op: Operator
    /// One value for `=`/`!=`, one or more for `in`/`notin`, none for `exists`.
    public var values: [String]

    /// Creates a constraint; the parser guarantees the value count matches the operator.
    public init(label: String, op: Operator, values: [String] = []) {
        self.label = label
        self.op = op
        self.values = values
    }

    /// Whether a node with these labels satisfies the constraint.
    public func isSatisfied(by labels: [String: String]) -> Bool {
        let actual = labels[label]
        switch op {
        case .equal: return actual != nil && actual == values.first
        case .notEqual: return actual == nil || actual != values.first
        case .in: return actual.map(values.contains) ?? false
        case .notIn: return actual.map { !values.contains($0) } ?? true
        case .exists: return actual != nil
        }
    }

    /// The spec spelling, used in messages: `gpu=a100`, `site in (a, b)`, `exists(ssd)`.
    public var description: String {
        switch op {
        case .equal, .notEqual: return "\(label)\(op.rawValue)\(values.first ?? "")"
        case .in, .notIn: return "\(label) \(op.rawValue) (\(values.joined(separator: ", ")))"
        case .exists: return "exists(\(label))"
        }
    }
}
