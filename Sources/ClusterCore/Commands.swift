import SpecolaJobs
import SpecolaWire

/// Commands the controllers propose, built in one place.
extension Specola_V1_Command {
    /// `autoAccept`: the leader's `nodes.autoAccept`; without it an unknown node waits for an operator.
    public static func registerNode(name: String, address: String, agentVersion: String, labels: [String: String],
                                    autoAccept: Bool, atUnixMs: Int64) -> Self {
        .with {
            $0.proposedAtUnixMs = atUnixMs
            $0.registerNode = .with {
                $0.name = name
                $0.address = address
                $0.agentVersion = agentVersion
                $0.labels = labels
                $0.autoAccept = autoAccept
            }
        }
    }

    /// `specola node accept NAME`: the pending node joins with `labels`, which are the operator's from now on.
    public static func acceptNode(name: String, labels: [String: String], by operatorIdentity: String,
                                  atUnixMs: Int64 = WallClock.nowUnixMs()) -> Self {
        .with {
            $0.proposedAtUnixMs = atUnixMs
            $0.acceptNode = .with {
                $0.name = name
                $0.labels = labels
                $0.acceptedBy = operatorIdentity
            }
        }
    }

    /// Submits a validated spec under its `PROJECT/NAME` id.
    public static func submitJob(_ spec: JobSpec, sourceFile: String = "", by submitter: String,
                                 atUnixMs: Int64 = WallClock.nowUnixMs()) -> Self {
        .with {
            $0.proposedAtUnixMs = atUnixMs
            $0.submitJob = .with {
                $0.jobID = spec.metadata.jobID
                $0.spec = .init(spec)
                $0.sourceFile = sourceFile
                $0.submittedBy = submitter
            }
        }
    }

    public static func cancelJob(_ id: String, by requester: String, atUnixMs: Int64 = WallClock.nowUnixMs()) -> Self {
        .with {
            $0.proposedAtUnixMs = atUnixMs
            $0.cancelJob = .with { $0.jobID = id; $0.requestedBy = requester }
        }
    }

    /// Removes jobs (and their step outputs) that finished before `cutoff`.
    public static func forgetJobs(finishedBefore cutoff: Int64, atUnixMs: Int64 = WallClock.nowUnixMs()) -> Self {
        .with {
            $0.proposedAtUnixMs = atUnixMs
            $0.forgetJobs.finishedBeforeUnixMs = cutoff
        }
    }

    /// `specola node label NAME k=v k-`.
    public static func nodeLabels(name: String, set: [String: String], remove: [String],
                                  atUnixMs: Int64 = WallClock.nowUnixMs()) -> Self {
        .with {
            $0.proposedAtUnixMs = atUnixMs
            $0.nodeLabels = .with {
                $0.name = name
                $0.set = set
                $0.remove = remove
            }
        }
    }

    /// `specola pki revoke`: `serial` empty revokes every certificate of `identity`.
    public static func revokeCertificate(serial: String, identity: String, reason: String, by operatorIdentity: String,
                                         atUnixMs: Int64 = WallClock.nowUnixMs()) -> Self {
        .with {
            $0.proposedAtUnixMs = atUnixMs
            $0.revokeCertificate.entry = .with {
                $0.serial = serial
                $0.identity = identity
                $0.reason = reason
                $0.revokedBy = operatorIdentity
                $0.revokedAtUnixMs = atUnixMs
            }
        }
    }

    public static func applyReport(node: String, report: Specola_V1_Report, receivedAtUnixMs: Int64) -> Self {
        .with {
            $0.proposedAtUnixMs = receivedAtUnixMs
            $0.applyReport = .with {
                $0.node = node
                $0.report = report
            }
        }
    }

    public static func nodeHealth(node: String, status: NodeStatus, reason: String, requestedBy: String = "",
                                  atUnixMs: Int64 = WallClock.nowUnixMs()) -> Self {
        .with {
            $0.proposedAtUnixMs = atUnixMs
            $0.nodeHealth = .with {
                $0.node = node
                $0.step = status
                $0.reason = reason
                $0.fenceRequestedBy = requestedBy
            }
        }
    }

    public static func nodeScheduling(node: String, cordoned: Bool, draining: Bool, atUnixMs: Int64 = WallClock.nowUnixMs()) -> Self {
        .with {
            $0.proposedAtUnixMs = atUnixMs
            $0.setNodeScheduling = .with {
                $0.node = node
                $0.cordoned = cordoned
                $0.draining = draining
            }
        }
    }

    /// Commits a new storage action (its id is given by the state).
    public static func storage(add action: Specola_V1_StorageAction, atUnixMs: Int64) -> Self {
        .with {
            $0.proposedAtUnixMs = atUnixMs
            $0.storage.add = action
        }
    }

    /// Closes a pending action of a fenced node.
    public static func storage(abandon id: String, reason: String, atUnixMs: Int64) -> Self {
        .with {
            $0.proposedAtUnixMs = atUnixMs
            $0.storage.abandon = .with { $0.id = id; $0.reason = reason }
        }
    }

    /// Sets an operator's policy for one volume.
    public static func storage(policy: Specola_V1_VolumeStoragePolicy, atUnixMs: Int64) -> Self {
        .with {
            $0.proposedAtUnixMs = atUnixMs
            $0.storage.setPolicy = policy
        }
    }
}
