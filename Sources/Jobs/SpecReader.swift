import Yams

/// The fields of one YAML mapping, looked up by name, with the path used in error messages.
struct SpecFields {
    /// The mapping node itself; its mark locates errors about missing fields.
    let node: Node
    /// Path of the mapping, e.g. `tasks[0].resources`.
    let path: String
    /// Each known field's value node.
    let values: [String: Node]

    subscript(name: String) -> Node? { values[name] }

    /// Path of one field of this mapping.
    func path(_ name: String) -> String { path.isEmpty ? name : "\(path).\(name)" }
}

/// Reads typed values out of composed YAML nodes and collects every problem instead of stopping at the first.
struct SpecReader {
    let file: String
    private(set) var errors: [SpecError] = []

    init(file: String) { self.file = file }

    mutating func report(_ node: Node?, _ field: String, _ message: String, _ code: SpecError.Code) {
        let mark = node?.mark
        errors.append(
            SpecError(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1, field: field, message: message, code: code))
    }

    /// Reports YAML that libyaml could not read, at the position libyaml gives.
    mutating func reportSyntax(_ error: any Error) {
        var line = 1
        var column = 1
        var problem = "\(error)"
        if let yamlError = error as? YamlError {
            switch yamlError {
            case .scanner(let context, let text, let mark, _), .parser(let context, let text, let mark, _),
                .composer(let context, let text, let mark, _):
                line = mark.line
                column = mark.column
                problem = [context?.text, text].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: " ")
            default: break
            }
        }
        errors.append(SpecError(file: file, line: line, column: column, field: "", message: "not valid YAML: \(problem)", code: .syntax))
    }

    /// The mapping's fields; reports a non-mapping, unknown fields (with a suggestion) and repeated keys.
    /// `misplaced` maps a field that exists elsewhere (e.g. `depends` outside a pipeline) to the explanation.
    mutating func fields(
        _ node: Node, at path: String, allowed: [String], misplaced: [String: String] = [:]
    ) -> SpecFields? {
        guard let mapping = node.mapping else {
            report(node, path, "expected a mapping of fields (key: value), found \(describe(node))", .wrongType)
            return nil
        }
        var values: [String: Node] = [:]
        for (keyNode, valueNode) in mapping {
            guard let key = keyNode.scalar?.string else {
                report(keyNode, path, "field names must be plain strings", .wrongType)
                continue
            }
            let fieldPath = path.isEmpty ? key : "\(path).\(key)"
            if let why = misplaced[key] {
                report(keyNode, fieldPath, why, .unknownField)
            } else if !allowed.contains(key) {
                let hint = Self.closest(to: key, in: allowed).map { "; did you mean '\($0)'?" } ?? "; allowed here: \(allowed.joined(separator: ", "))"
                report(keyNode, fieldPath, "unknown field\(hint)", .unknownField)
            } else if values[key] != nil {
                report(keyNode, fieldPath, "field given twice", .duplicate)
            } else {
                values[key] = valueNode
            }
        }
        return SpecFields(node: node, path: path, values: values)
    }

    /// A non-empty scalar string, or nil after reporting.
    mutating func string(_ node: Node, _ path: String) -> String? {
        guard let scalar = node.scalar else {
            report(node, path, "expected a single value, found \(describe(node))", .wrongType)
            return nil
        }
        guard node.null == nil, !scalar.string.isEmpty else {
            report(node, path, "is empty", .invalidValue)
            return nil
        }
        return scalar.string
    }

    /// A required string field: reports a missing field at the enclosing mapping.
    mutating func required(_ fields: SpecFields, _ name: String) -> String? {
        guard let node = fields[name] else {
            report(fields.node, fields.path(name), "is required", .missingField)
            return nil
        }
        return string(node, fields.path(name))
    }

    /// An integer within `range`.
    mutating func int(_ node: Node, _ path: String, in range: ClosedRange<Int>, what: String = "a whole number") -> Int? {
        guard let text = string(node, path) else { return nil }
        guard let value = Int(text) else {
            report(node, path, "'\(text)' is not \(what)", .wrongType)
            return nil
        }
        guard range.contains(value) else {
            report(node, path, "\(value) is out of range; allowed \(range.lowerBound)...\(range.upperBound)", .invalidValue)
            return nil
        }
        return value
    }

    /// `true` or `false`.
    mutating func bool(_ node: Node, _ path: String) -> Bool? {
        guard let text = string(node, path) else { return nil }
        switch text {
        case "true", "True", "yes": return true
        case "false", "False", "no": return false
        default:
            report(node, path, "'\(text)' is not true or false", .wrongType)
            return nil
        }
    }

    /// A list of non-empty strings; reports repeated entries when `unique`.
    mutating func strings(_ node: Node, _ path: String, unique: Bool = true) -> [(value: String, node: Node)]? {
        guard let sequence = node.sequence else {
            report(node, path, "expected a list, found \(describe(node)); write e.g. [a, b]", .wrongType)
            return nil
        }
        var result: [(value: String, node: Node)] = []
        var seen: Set<String> = []
        for (index, element) in sequence.enumerated() {
            guard let value = string(element, "\(path)[\(index)]") else { continue }
            if unique, !seen.insert(value).inserted {
                report(element, "\(path)[\(index)]", "'\(value)' is listed twice", .duplicate)
                continue
            }
            result.append((value, element))
        }
        return result
    }

    /// The elements of a list.
    mutating func list(_ node: Node, _ path: String) -> [Node]? {
        guard let sequence = node.sequence else {
            report(node, path, "expected a list, found \(describe(node))", .wrongType)
            return nil
        }
        return Array(sequence)
    }

    /// A byte size; zero allowed only when `allowZero`.
    mutating func bytes(_ node: Node, _ path: String, allowZero: Bool) -> Int64? {
        guard let text = string(node, path) else { return nil }
        if text.hasPrefix("-") {
            report(node, path, "'\(text)' is negative; a size must be positive", .invalidValue)
            return nil
        }
        guard let value = Quantity.bytes(text) else {
            report(node, path, "'\(text)' is not a size; write e.g. 4GiB", .invalidValue)
            return nil
        }
        if value == 0 && !allowZero {
            report(node, path, "must be more than 0; write e.g. 512MiB", .invalidValue)
            return nil
        }
        return value
    }

    /// A duration in seconds, more than zero.
    mutating func seconds(_ node: Node, _ path: String) -> Int64? {
        guard let text = string(node, path) else { return nil }
        guard let value = Quantity.seconds(text), value > 0 else {
            report(node, path, "'\(text)' is not a positive duration; write e.g. 90, 90s, 30m or 1h30m", .invalidValue)
            return nil
        }
        return value
    }

    /// CPU in millicores, more than zero.
    mutating func millicores(_ node: Node, _ path: String) -> Int64? {
        guard let text = string(node, path) else { return nil }
        if text.hasPrefix("-") {
            report(node, path, "'\(text)' is negative; cpu is a number of cores, e.g. 2 or 0.5", .invalidValue)
            return nil
        }
        guard let value = Quantity.millicores(text) else {
            report(node, path, "'\(text)' is not a number of cores; write e.g. 2, 0.5 or 500m", .invalidValue)
            return nil
        }
        guard value > 0 else {
            report(node, path, "must be more than 0 cores; write e.g. 0.1", .invalidValue)
            return nil
        }
        return value
    }

    /// Whether `text` uses only letters, digits, '-' and '_': safe in instance IDs, references and KV keys.
    func nameOK(_ text: String) -> Bool {
        !text.isEmpty && text.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "_"
        }
    }

    /// A name usable in instance IDs and `steps.NAME` references.
    mutating func name(_ node: Node, _ path: String) -> String? {
        guard let text = string(node, path) else { return nil }
        guard nameOK(text), text.count <= 63, text.first != "-" else {
            report(node, path, "'\(text)' is not a valid name; use letters, digits, '-' and '_' (at most 63)", .invalidValue)
            return nil
        }
        return text
    }

    private func describe(_ node: Node) -> String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .scalar(let scalar): return "'\(scalar.string)'"
        case .alias: return "an alias"
        }
    }

    /// The allowed name within edit distance 2 of a typo, if any.
    static func closest(to word: String, in candidates: [String]) -> String? {
        func distance(_ a: [Character], _ b: [Character]) -> Int {
            var previous = Array(0...b.count)
            for (i, ca) in a.enumerated() {
                var current = [i + 1]
                for (j, cb) in b.enumerated() {
                    current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (ca == cb ? 0 : 1)))
                }
                previous = current
            }
            return previous[b.count]
        }
        let lowered = Array(word.lowercased())
        return candidates.map { ($0, distance(lowered, Array($0.lowercased()))) }
            .filter { $0.1 <= 2 }.min { $0.1 < $1.1 }?.0
    }
}
