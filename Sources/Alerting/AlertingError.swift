/// A rejected alerting input: a matcher, a silence, a route or a rule that cannot be used as written.
public struct AlertingError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of problem, so callers can react without parsing messages; grows without breaking them.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        public let rawValue: String
        private init(_ rawValue: String) { self.rawValue = rawValue }
        /// A label matcher that does not parse or whose regular expression does not compile.
        public static let invalidMatcher = Code("invalid-matcher")
        /// A silence without matchers, or one that ends before it starts.
        public static let invalidSilence = Code("invalid-silence")
        /// A routing, inhibition or threshold rule configuration that cannot work.
        public static let invalidConfig = Code("invalid-config")
        public var description: String { rawValue }
    }

    public var code: Code
    /// What is wrong and how to fix it.
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
