import Foundation
import SpecolaAlerting
import SpecolaWire

/// The alert book's place in the replicated state: its commands and its snapshot form.
extension ClusterState {
    /// Applies one committed `AlertChange`. A change that does not decode is rejected, not
    /// skipped silently; every replica rejects it the same way, so they stay equal.
    public static func applyAlert(_ command: Specola_V1_AlertCommand, to book: inout AlertBook) -> ApplyOutcome {
        let change: AlertChange
        do {
            change = try AlertBook.jsonDecoder.decode(AlertChange.self, from: command.changeJson)
        } catch {
            return .rejected(reason: "undecodable alert change: \(error)")
        }
        switch book.apply(change) {
        case .applied, .unchanged: return .done
        case .rejected(let reason): return .rejected(reason: reason)
        }
    }
}

extension AlertBook {
    public static let jsonDecoder = JSONDecoder()

    /// Sorted keys, so equal books serialize equally (snapshots are compared byte for byte).
    public static var jsonEncoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    /// The book as stored in `ClusterSnapshot.alert_book_json`; empty for an empty book.
    public func snapshotJSON() -> Data {
        guard !alerts.isEmpty || !silences.isEmpty else { return Data() }
        // Encoding plain Codable values cannot fail.
        return (try? Self.jsonEncoder.encode(self)) ?? Data()
    }

    /// Restores a book from a snapshot; no data (an older snapshot) is an empty book.
    public init(snapshotJSON data: Data) throws {
        self = data.isEmpty ? AlertBook() : try Self.jsonDecoder.decode(AlertBook.self, from: data)
    }
}

extension Specola_V1_Command {
    /// The command that commits `change`, stamped with the proposer's clock.
    public static func alert(_ change: AlertChange, atUnixMs: Int64) -> Self {
        .with {
            $0.proposedAtUnixMs = atUnixMs
            // Encoding plain Codable values cannot fail.
            $0.alert.changeJson = (try? AlertBook.jsonEncoder.encode(change)) ?? Data()
        }
    }
}
