import Foundation
import Yams

/// Loads a YAML config file into a `Decodable` type and turns every failure
/// into a `ConfigError` naming the file, field, line and column.
public enum ConfigFile {
    public static func load<T: Decodable>(_ type: T.Type, path: String) throws -> T {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(file: path, field: nil, line: nil, column: nil,
                              problem: "cannot read the file (\(error.localizedDescription)); check the path and permissions")
        }
        return try decode(type, yaml: text, file: path)
    }

    public static func decode<T: Decodable>(_ type: T.Type, yaml: String, file: String) throws -> T {
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: yaml) else {
                throw ConfigError(file: file, field: nil, line: 1, column: 1, problem: "the file is empty")
            }
            root = node
        } catch let error as ConfigError {
            throw error
        } catch let error as YamlError {
            throw ConfigError(yamlError: error, file: file)
        }
        do {
            return try YAMLDecoder().decode(type, from: root)
        } catch let error as DecodingError {
            throw ConfigError(decodingError: error, root: root, file: file)
        }
    }
}

/// A config problem, pointing at the exact place in the file.
public struct ConfigError: Error, CustomStringConvertible, Sendable {
    public var file: String
    public var field: String?
    public var line: Int?
    public var column: Int?
    public var problem: String

    public init(file: String, field: String?, line: Int?, column: Int?, problem: String) {
        self.file = file
        self.field = field
        self.line = line
        self.column = column
        self.problem = problem
    }

    public var description: String {
        var place = file
        if let line { place += ":\(line)" }
        if let column { place += ":\(column)" }
        if let field, !field.isEmpty { return "\(place): field '\(field)': \(problem)" }
        return "\(place): \(problem)"
    }

    init(yamlError: YamlError, file: String) {
        switch yamlError {
        case let .scanner(_, problem, mark, _), let .parser(_, problem, mark, _),
            let .composer(_, problem, mark, _):
            self.init(file: file, field: nil, line: mark.line, column: mark.column,
                      problem: "invalid YAML: \(problem)")
        default:
            self.init(file: file, field: nil, line: nil, column: nil, problem: "invalid YAML: \(yamlError)")
        }
    }

    init(decodingError: DecodingError, root: Node, file: String) {
        let path: [any CodingKey]
        let problem: String
        switch decodingError {
        case let .keyNotFound(key, context):
            path = context.codingPath
            problem = "required field '\(key.stringValue)' is missing"
        case let .typeMismatch(type, context):
            path = context.codingPath
            problem = "expected \(Self.describe(type))"
        case let .valueNotFound(type, context):
            path = context.codingPath
            problem = "expected \(Self.describe(type)), found nothing"
        case let .dataCorrupted(context):
            path = context.codingPath
            problem = context.debugDescription
        @unknown default:
            path = []
            problem = "\(decodingError)"
        }
        let mark = Self.locate(path, in: root)
        self.init(file: file, field: Self.dotted(path), line: mark?.line, column: mark?.column, problem: problem)
    }

    static func dotted(_ path: [any CodingKey]) -> String {
        path.map { key in key.intValue.map { "[\($0)]" } ?? key.stringValue }
            .joined(separator: ".")
            .replacingOccurrences(of: ".[", with: "[")
    }

    static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Int.Type, is UInt16.Type, is UInt32.Type, is Int64.Type, is UInt64.Type: return "a whole number"
        case is Double.Type: return "a number"
        case is Bool.Type: return "true or false"
        default:
            let name = "\(type)"
            if name.hasPrefix("Array") { return "a list" }
            if name.hasPrefix("Dictionary") { return "a mapping" }
            return "a \(name)"
        }
    }

    /// Walks the coding path to the deepest node that exists, preferring the key's own mark.
    static func locate(_ path: [any CodingKey], in root: Node) -> Mark? {
        var node = root
        var mark = root.mark
        for key in path {
            if let index = key.intValue, let sequence = node.sequence, index < sequence.count {
                node = sequence[index]
                mark = node.mark
            } else if let mapping = node.mapping,
                let pair = mapping.first(where: { $0.key.string == key.stringValue })
            {
                mark = pair.key.mark
                node = pair.value
            } else {
                break
            }
        }
        return mark
    }
}
