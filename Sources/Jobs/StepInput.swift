/// A small result read from an earlier pipeline step, through the KV, into an environment variable.
///
/// Written in a spec as `inputs: {ENV_NAME: steps.STEP.outputs.KEY}`.
public struct StepInput: Sendable, Hashable, Codable {
    /// The environment variable the value arrives in.
    public var variable: String
    /// The step that produces the value.
    public var step: String
    /// The output key that step declares.
    public var key: String

    /// Creates an input reference.
    public init(variable: String, step: String, key: String) {
        self.variable = variable
        self.step = step
        self.key = key
    }

    /// `steps.STEP.outputs.KEY`, or nil when `reference` is not of that shape.
    public static func parseReference(_ reference: String) -> (step: String, key: String)? {
        let parts = reference.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "steps", parts[2] == "outputs", !parts[1].isEmpty, !parts[3].isEmpty
        else { return nil }
        return (String(parts[1]), String(parts[3]))
    }

    /// The spec spelling.
    public var reference: String { "steps.\(step).outputs.\(key)" }
}
