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
            change = try command.decodedChange()
        } catch {
            return .rejected(reason: "undecodable alert change: \(error)")
        }
        switch book.apply(change) {
        case .applied, .unchanged: return .done
        case .rejected(let reason): return .rejected(reason: reason)
        }
    }
}

extension Specola_V1_Command {
    /// The command that commits `change`, stamped with the proposer's clock.
    public static func alert(_ change: AlertChange, atUnixMs: Int64) -> Self {
        .with {
            $0.proposedAtUnixMs = atUnixMs
            $0.alert.change = .init(change)
        }
    }
}
