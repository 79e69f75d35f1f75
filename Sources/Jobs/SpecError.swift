/// One problem found in a spec, pointing at the file, line, column and field a person must edit.
public struct SpecError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of problem, so tools can react without parsing messages; grows without breaking callers.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        /// The stable identifier, e.g. `unknown-field`.
        public let rawValue: String
        private init(_ rawValue: String) { self.rawValue = rawValue }
        /// The text is not YAML.
        public static let syntax = Code("syntax")
        /// A field that the schema does not have, usually a typo.
        public static let unknownField = Code("unknown-field")
        /// A required field is absent.
        public static let missingField = Code("missing-field")
        /// A field has the wrong YAML type (a list where a mapping belongs, say).
        public static let wrongType = Code("wrong-type")
        /// A value that can never be satisfied or makes no sense (negative CPU, zero count).
        public static let invalidValue = Code("invalid-value")
        /// Two tasks or steps with one name, or one key twice.
        public static let duplicate = Code("duplicate")
        /// A `depends` or input names a step that does not exist or is not upstream.
        public static let unknownReference = Code("unknown-reference")
        /// Steps that depend on each other in a loop.
        public static let cycle = Code("cycle")
        /// The text of the identifier.
        public var description: String { rawValue }
    }

    /// The file name as the user gave it.
    public var file: String
    /// 1-based line.
    public var line: Int
    /// 1-based column.
    public var column: Int
    /// The field path, e.g. `tasks[0].resources.memory`; empty for the whole document.
    public var field: String
    /// What is wrong and, where possible, how to fix it.
    public var message: String
    /// The kind of problem.
    public var code: Code

    /// Creates an error.
    public init(file: String, line: Int, column: Int, field: String, message: String, code: Code) {
        self.file = file
        self.line = line
        self.column = column
        self.field = field
        self.message = message
        self.code = code
    }

    /// `reduce.yaml:12:7: field 'tasks[0].resources.memory': '4 gigs' is not a size; write e.g. 4GiB`.
    public var description: String {
        let location = "\(file):\(line):\(column)"
        return field.isEmpty ? "\(location): \(message)" : "\(location): field '\(field)': \(message)"
    }
}

/// Every problem found in one spec, in file order; the parser reports them all, not just the first.
public struct SpecErrors: Error, Sendable, Hashable, CustomStringConvertible {
    /// The problems, sorted by line and column.
    public var errors: [SpecError]

    /// Creates the list.
    public init(_ errors: [SpecError]) { self.errors = errors }

    /// One problem per line.
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}
