/// The ids of the instructions the coordinator sends agents (`Instruction.id`), which agents echo
/// in their reports and keep in their outboxes. Built and parsed here only.
public enum InstructionID: Hashable, Sendable {
    /// Run one allocation of a job's task: the id is the allocation id itself.
    case runTask(allocation: String)
    /// Stop that allocation: `stop/ALLOCATION`.
    case stopTask(allocation: String)
    /// Start one instance of an HA workload: `wl/NAME/GENERATION`.
    case startWorkload(name: String, generation: UInt64)
    /// Stop that instance: `wl/NAME/GENERATION/stop`.
    case stopWorkload(name: String, generation: UInt64)
    /// One storage action: `st/NUMBER`.
    case storageAction(number: UInt64)

    static let stopTaskPrefix = "stop/"
    static let workloadPrefix = "wl/"
    static let workloadStopSuffix = "/stop"
    static let storagePrefix = "st/"

    /// The id as it travels.
    public var text: String {
        switch self {
        case .runTask(let allocation): allocation
        case .stopTask(let allocation): Self.stopTaskPrefix + allocation
        case .startWorkload(let name, let generation): Self.workloadInstance(name, generation)
        case .stopWorkload(let name, let generation): Self.workloadInstance(name, generation) + Self.workloadStopSuffix
        case .storageAction(let number): Self.storagePrefix + "\(number)"
        }
    }

    /// Which instruction an id names. Anything that is not a workload, storage or stop id is an
    /// allocation id (they are a job name and hex digits, see `JobController.newAllocationID`).
    public init(parsing id: String) {
        if id.hasPrefix(Self.storagePrefix), let number = UInt64(id.dropFirst(Self.storagePrefix.count)) {
            self = .storageAction(number: number)
        } else if id.hasPrefix(Self.workloadPrefix) {
            var rest = Substring(id.dropFirst(Self.workloadPrefix.count))
            let stop = rest.hasSuffix(Self.workloadStopSuffix)
            if stop { rest = rest.dropLast(Self.workloadStopSuffix.count) }
            let slash = rest.lastIndex(of: "/")
            let name = slash.map { String(rest[..<$0]) } ?? String(rest)
            let generation = slash.flatMap { UInt64(rest[rest.index(after: $0)...]) } ?? 0
            self = stop ? .stopWorkload(name: name, generation: generation) : .startWorkload(name: name, generation: generation)
        } else if id.hasPrefix(Self.stopTaskPrefix) {
            self = .stopTask(allocation: String(id.dropFirst(Self.stopTaskPrefix.count)))
        } else {
            self = .runTask(allocation: id)
        }
    }

    /// The key of one workload instance (its start instruction's id), as the books and the agent's
    /// workload runner know it.
    public static func workloadInstance(_ name: String, _ generation: UInt64) -> String {
        workloadPrefix + name + "/" + "\(generation)"
    }

    /// Whether an id belongs to an HA workload's start or stop.
    public static func isWorkload(_ id: String) -> Bool { id.hasPrefix(workloadPrefix) }

    /// Whether an id belongs to a storage action.
    public static func isStorageAction(_ id: String) -> Bool { id.hasPrefix(storagePrefix) }

    /// The number of a storage action id (0 for an id that is none).
    public static func storageActionNumber(_ id: String) -> UInt64 {
        if case .storageAction(let number) = InstructionID(parsing: id) { return number }
        return 0
    }
}
