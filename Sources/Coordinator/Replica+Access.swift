import SpecolaClusterCore
import Synchronization

extension Replica {
    /// Projects, role bindings and the audit log as this replica has applied them.
    var accessBook: AccessBook { state.access }
}

/// This replica's projects and role bindings (no audit records), readable from any thread: the
/// authorization decision of every call reads it without waiting on the replica actor.
final class AccessView: Sendable {
    private let book = Mutex(AccessBook())

    func replace(with book: AccessBook) {
        let trimmed = book.withoutAudit()
        self.book.withLock { $0 = trimmed }
    }

    var current: AccessBook { book.withLock { $0 } }
}
