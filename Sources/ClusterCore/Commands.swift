import SpecolaWire

/// Commands the controllers propose, built in one place.
extension Specola_V1_Command {
    public static func registerNode(name: String, address: String, agentVersion: String, labels: [String: String], atUnixMs: Int64) -> Self {
        .with {
            $0.proposedAtUnixMs = atUnixMs
            $0.registerNode = .with {
                $0.name = name
                $0.address = address
                $0.agentVersion = agentVersion
                $0.labels = labels
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

    public static func nodeHealth(node: String, status: NodeHealth.Status, reason: String, requestedBy: String = "",
                                  atUnixMs: Int64 = WallClock.nowUnixMs()) -> Self {
        .with {
            $0.proposedAtUnixMs = atUnixMs
            $0.nodeHealth = .with {
                $0.node = node
                $0.status = status.rawValue
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
}
