import Foundation
import SpecolaWire

/// A replicated message that does not hold a value of this build: an enum it does not know, or a
/// field it requires. Apply rejects the command and restore refuses the snapshot, the same way on
/// every replica.
public struct ReplicatedFormError: Error, CustomStringConvertible {
    public var description: String

    public init(_ description: String) { self.description = description }

    /// Refuses an enum value this build does not know (written by a newer build, or unset).
    static func unknown<Value>(_ what: String, _ value: Value) -> Self {
        Self("\(what) \(value) is not known to this build; upgrade this replica to the build that wrote it")
    }
}

/// String maps in replicated messages: entries sorted by key.
extension [Specola_V1_StringEntry] {
    init(_ map: [String: String]) {
        self = map.sorted { $0.key < $1.key }.map { entry in .with { $0.key = entry.key; $0.value = entry.value } }
    }

    var dictionary: [String: String] {
        Dictionary(map { ($0.key, $0.value) }, uniquingKeysWith: { _, last in last })
    }
}
