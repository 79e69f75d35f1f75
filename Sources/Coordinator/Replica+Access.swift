import SpecolaClusterCore

extension Replica {
    /// Projects, role bindings and the audit log as this replica has applied them.
    var accessBook: AccessBook { state.access }
}
