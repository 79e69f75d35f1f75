import SpecolaClusterCore
import SpecolaProtocol

/// `access:` in the coordinator config: bootstrap admins, what token groups map to, and the audit log's retention.
public struct AccessConfig: Decodable, Sendable {
    public var policy = AccessPolicy()
    /// Seconds an audit record is kept; default 90 days.
    public var auditRetention: Double = 90 * 86_400
    /// At most this many audit records are kept (the oldest go first).
    public var auditMaxRecords = 100_000
    /// Refusal records per principal per minute before identical ones are folded into one.
    public var refusalBurst = 20

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case bootstrapAdmins, groupRoles, groupProjects, auditRetention, auditMaxRecords, refusalBurst, enforce
    }

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        policy.bootstrapAdmins = Set(try c.decodeIfPresent([String].self, forKey: .bootstrapAdmins) ?? [])
        for (group, name) in try c.decodeIfPresent([String: String].self, forKey: .groupRoles) ?? [:] {
            guard let role = AccessRole(name: name), name != "member" else {
                throw DecodingError.dataCorruptedError(forKey: .groupRoles, in: c, debugDescription:
                    "group '\(group)' maps to '\(name)'; use admin, operator or viewer (project membership goes in groupProjects)")
            }
            policy.groupRoles[group] = role
        }
        policy.groupProjects = try c.decodeIfPresent([String: [String]].self, forKey: .groupProjects) ?? [:]
        // Only for the benchmark's baseline: every user call allowed.
        policy.enforced = try c.decodeIfPresent(Bool.self, forKey: .enforce) ?? true
        auditRetention = try c.decodeIfPresent(Double.self, forKey: .auditRetention) ?? auditRetention
        guard auditRetention > 0, auditRetention.isFinite else {
            throw DecodingError.dataCorruptedError(forKey: .auditRetention, in: c, debugDescription: "must be a positive number of seconds")
        }
        auditMaxRecords = try c.decodeIfPresent(Int.self, forKey: .auditMaxRecords) ?? auditMaxRecords
        refusalBurst = try c.decodeIfPresent(Int.self, forKey: .refusalBurst) ?? refusalBurst
        guard auditMaxRecords > 0, refusalBurst > 0 else {
            throw DecodingError.dataCorruptedError(forKey: .auditMaxRecords, in: c, debugDescription: "auditMaxRecords and refusalBurst must be positive")
        }
    }
}
