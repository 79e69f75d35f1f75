import Foundation
import Logging
import SpecolaProtocol
import SpecolaProcesses

/// Carries out the storage actions the leader commits for this node (restart a brick, replace
/// one, heal, resolve split-brain) through the gluster CLI, and reports how each ended.
///
/// Each action's id is claimed in the outbox's ledger before anything runs (by the instruction
/// executor); its outcome closes the ledger entry and queues the report in one transaction. An
/// action that was running when the agent stopped is not run again after a restart: it is
/// reported failed with an unknown outcome, and the leader decides afresh from new facts.
public actor StorageRunner: ClaimedWorkRunner {
    public nonisolated var families: [WorkFamily] { [.storage] }

    /// Its outbox commits (fsync) block this thread, not the cooperative pool; gluster runs on threads of its own.
    private let executor = DedicatedThreadExecutor(name: "storage")
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    public struct Settings: Sendable {
        /// The gluster CLI and any prefix before it (`gluster.command`).
        public var command: [String] = ["gluster"]
        /// The limit for one CLI call.
        public var timeout: Duration = .seconds(60)
        /// How long a restarted brick may take to come online, and an old brick process to go.
        public var settleWithin: Duration = .seconds(30)
        public var procRoot = "/proc"

        public init() {}
    }

    let outbox: Outbox
    let settings: Settings
    let logger: Logger
    /// Called after an outcome is queued, to wake the link's sender.
    let onEvent: @Sendable () -> Void
    /// Called when an action ends, before its outcome is stamped: the facts must be read again.
    let onActionEnded: @Sendable () -> Void
    private var running: Set<String> = []

    public init(outbox: Outbox, settings: Settings, logger: Logger, onEvent: @escaping @Sendable () -> Void,
                onActionEnded: @escaping @Sendable () -> Void = {}) {
        self.outbox = outbox
        self.settings = settings
        self.logger = logger
        self.onEvent = onEvent
        self.onActionEnded = onActionEnded
    }

    /// Starts an action whose id was just claimed; returns at once.
    public func start(_ action: Specola_V1_StorageAction) -> String {
        guard running.insert(action.id).inserted else { return "already running" }
        logger.info("storage action starting", metadata: [
            "action.id": "\(action.id)", "action.kind": "\(action.kind)", "volume": "\(action.volume)", "brick": "\(action.brick)",
            "reason": "\(action.reason)",
        ])
        Task { await self.perform(action) }
        return "started"
    }

    /// After an agent restart: actions that were running are closed as failed, never run again.
    public func resume(_ entries: [LedgerEntry]) {
        for id in entries.map(\.id) {
            finish(id, ok: false, message: "the agent stopped while this action ran; its outcome is unknown and it is not run again (the leader decides from fresh facts)")
        }
    }

    private func perform(_ action: Specola_V1_StorageAction) async {
        let began = ContinuousClock.now
        let outcome: (ok: Bool, message: String)
        var spareUnusable = false
        do {
            outcome = (true, try await carryOut(action))
        } catch let error as StorageActionError {
            outcome = (false, error.description)
            spareUnusable = error.spareUnusable
        } catch {
            outcome = (false, "\(error)")
        }
        let level: Logger.Level = outcome.ok ? .info : .warning
        logger.log(level: level, "storage action ended", metadata: [
            "action.id": "\(action.id)", "ok": "\(outcome.ok)", "message": "\(outcome.message)",
            "took.s": "\(Self.seconds(ContinuousClock.now - began))",
        ])
        onActionEnded()
        finish(action.id, ok: outcome.ok, message: outcome.message, spareUnusable: spareUnusable)
        running.remove(action.id)
    }

    private func finish(_ id: String, ok: Bool, message: String, spareUnusable: Bool = false) {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let event = Specola_V1_StorageActionEvent.with {
            $0.actionID = id
            $0.ok = ok
            $0.message = message
            $0.atUnixMs = now
            $0.spareUnusable = spareUnusable
        }
        do {
            _ = try outbox.recordInstruction(.with { $0.instructionID = id; $0.ok = ok; $0.message = message }, reporting: [event], atUnixMs: now)
            onEvent()
        } catch {
            logger.error("cannot record how a storage action ended; the leader will not hear of it until the outbox works",
                         metadata: ["action.id": "\(id)", "error": "\(error)"])
        }
    }

    // MARK: - The actions

    private func carryOut(_ action: Specola_V1_StorageAction) async throws -> String {
        let gluster = GlusterCLI(settings: settings)
        switch action.kind {
        case .restartBrick:
            return try await restart(action, gluster)
        case .replaceBrick:
            return try await replace(action, gluster)
        case .heal:
            try await gluster.heal(action.volume, full: action.full)
            return action.full ? "full heal started" : "heal started"
        case .resolveSplitBrain:
            return try await resolveSplitBrain(action, gluster)
        case .setOption:
            try await gluster.run(["volume", "set", action.volume, action.optionName, action.optionValue])
            return "\(action.optionName) set to \(action.optionValue)"
        case .unspecified, .UNRECOGNIZED:
            throw StorageActionError("unknown storage action; this agent (\(SpecolaVersion.current)) may be older than the coordinator")
        }
    }

    /// `volume start force` only once the old brick process is gone (otherwise gluster reports
    /// success and leaves the brick offline), then wait until it is online, then heal.
    private func restart(_ action: Specola_V1_StorageAction, _ gluster: GlusterCLI) async throws -> String {
        guard let (_, path) = Self.split(action.brick) else { throw StorageActionError("'\(action.brick)' is not HOST:PATH") }
        let deadline = ContinuousClock.now + settings.settleWithin
        var leftovers = brickProcesses(path: path, oldPID: action.oldPid)
        while !leftovers.isEmpty && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
            leftovers = brickProcesses(path: path, oldPID: action.oldPid)
        }
        guard leftovers.isEmpty else {
            throw StorageActionError("brick process \(leftovers.map(String.init).joined(separator: ", ")) of \(action.brick) is still there \(settings.settleWithin) later, though gluster reports the brick offline; not restarting it over a live process — check it by hand")
        }
        // Right after a brick dies, glusterd may not have noticed yet and `start force` then does
        // nothing: first wait (briefly) until glusterd reports the old process gone; and `start
        // force` is given again (it is idempotent) every 2 s until the brick is online or time is up.
        let noticedBy = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < noticedBy, let listed = try await gluster.brickStatus(action.volume, action.brick),
              listed.online, listed.pid == action.oldPid {
            try await Task.sleep(for: .milliseconds(200))
        }
        let began = ContinuousClock.now
        let onlineBy = began + settings.settleWithin
        var online: GlusterXML.ProcessStatus?
        var starts = 0
        repeat {
            try await gluster.run(["volume", "start", action.volume, "force"])
            starts += 1
            let checkBy = min(onlineBy, ContinuousClock.now + .seconds(2))
            online = try await gluster.brickStatus(action.volume, action.brick)
            while online?.online != true && ContinuousClock.now < checkBy {
                try await Task.sleep(for: .milliseconds(300))
                online = try await gluster.brickStatus(action.volume, action.brick)
            }
        } while online?.online != true && ContinuousClock.now < onlineBy
        guard let status = online, status.online else {
            throw StorageActionError("`volume start \(action.volume) force` (\(starts) times) succeeded but brick \(action.brick) is still offline after \(settings.settleWithin); see the brick's log under /var/log/glusterfs/bricks")
        }
        let onlineAfter = ContinuousClock.now - began
        try await gluster.heal(action.volume, full: false)
        return "brick restarted (pid \(status.pid)\(starts > 1 ? ", after \(starts) starts" : ""), online \(Self.seconds(onlineAfter)) s after the first start; heal started \(Self.seconds(ContinuousClock.now - began - onlineAfter)) s later"
    }

    /// `replace-brick ... commit force` onto a spare that exists here, then a full heal.
    private func replace(_ action: Specola_V1_StorageAction, _ gluster: GlusterCLI) async throws -> String {
        guard let (_, path) = Self.split(action.newBrick) else { throw StorageActionError("'\(action.newBrick)' is not HOST:PATH") }
        if let problem = Self.spareProblem(path) { throw StorageActionError(problem, spareUnusable: true) }
        do {
            try await gluster.run(["volume", "replace-brick", action.volume, action.brick, action.newBrick, "commit", "force"])
        } catch {
            // A replacement that took effect before the agent could say so is not an error.
            let bricks = try? await gluster.brickNames(action.volume)
            guard let bricks, bricks.contains(action.newBrick), !bricks.contains(action.brick) else { throw error }
        }
        try await gluster.heal(action.volume, full: true)
        return "brick \(action.brick) replaced by \(action.newBrick); full heal started"
    }

    private func resolveSplitBrain(_ action: Specola_V1_StorageAction, _ gluster: GlusterCLI) async throws -> String {
        var resolved: [String] = []
        var failed: [String] = []
        var seen: Set<String> = []
        for file in action.files.map(Self.splitBrainArgument) where seen.insert(file).inserted {
            var args = ["volume", "heal", action.volume, "split-brain", action.splitBrainPolicy]
            if action.splitBrainPolicy == "source-brick" { args.append(action.sourceBrick) }
            args.append(file)
            do {
                try await gluster.run(args)
                resolved.append(file)
            } catch let error as StorageActionError where error.description.contains("not in split-brain") {
                // One brick lists the file by path, another by gfid: resolving one resolved both.
                resolved.append(file)
            } catch {
                failed.append("\(file): \(error)")
            }
        }
        guard failed.isEmpty else {
            throw StorageActionError("\(resolved.count) of \(action.files.count) resolved by \(action.splitBrainPolicy); failed: \(failed.joined(separator: "; "))")
        }
        return "\(resolved.count) file(s) resolved by \(action.splitBrainPolicy): \(resolved.joined(separator: ", "))"
    }

    /// heal info lists entries it cannot name as "<gfid:UUID>"; the split-brain CLI takes "gfid:UUID".
    static func splitBrainArgument(_ listed: String) -> String {
        guard listed.hasPrefix("<gfid:"), listed.hasSuffix(">") else { return listed }
        return String(listed.dropFirst().dropLast())
    }

    /// Why `path` cannot become a brick here, or nil: its parent must exist (the spare disk is
    /// mounted there) and the path itself must be absent or an empty directory.
    static func spareProblem(_ path: String) -> String? {
        let parent = (path as NSString).deletingLastPathComponent
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: parent, isDirectory: &isDirectory), isDirectory.boolValue else {
            return "spare brick directory \(parent) does not exist on this node; mount the spare disk there or fix storage.spareBricks. Nothing was changed"
        }
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue, (try? FileManager.default.contentsOfDirectory(atPath: path))?.isEmpty == true else {
                return "spare brick \(path) is not an empty directory; it may hold another brick's data. Nothing was changed"
            }
        }
        return nil
    }

    /// Processes of this host serving the brick at `path` (glusterfsd with `--brick-name PATH`), and `oldPID` while it lives.
    private func brickProcesses(path: String, oldPID: Int32) -> [Int32] {
        var found: Set<Int32> = []
        if ProcessIdentity.isRunning(oldPID, procRoot: settings.procRoot) { found.insert(oldPID) }
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: settings.procRoot)) ?? []
        for entry in entries {
            guard let pid = Int32(entry), let data = FileManager.default.contents(atPath: "\(settings.procRoot)/\(entry)/cmdline"),
                  ProcessIdentity.isRunning(pid, procRoot: settings.procRoot) else { continue }
            let args = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            guard let program = args.first, program.hasSuffix("glusterfsd"),
                  let flag = args.firstIndex(of: "--brick-name"), flag + 1 < args.count, args[flag + 1] == path else { continue }
            found.insert(pid)
        }
        return found.sorted()
    }

    static func seconds(_ duration: Duration) -> String {
        String(format: "%.1f", Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
    }

    static func split(_ brick: String) -> (host: String, path: String)? {
        guard let colon = brick.firstIndex(of: ":") else { return nil }
        let path = String(brick[brick.index(after: colon)...])
        return path.hasPrefix("/") ? (String(brick[..<colon]), path) : nil
    }
}

/// Why a storage action failed, in words for operators.
struct StorageActionError: Error, CustomStringConvertible {
    let description: String
    /// A replacement's spare cannot become a brick (the planner then picks another).
    var spareUnusable = false
    init(_ description: String, spareUnusable: Bool = false) {
        self.description = description
        self.spareUnusable = spareUnusable
    }
}

/// The gluster CLI for actions: `COMMAND --mode=script ARGS`, each call on a thread of its own with a time limit.
struct GlusterCLI: Sendable {
    let settings: StorageRunner.Settings

    /// glusterd's answers when another peer holds the cluster-wide lock (every `volume status`
    /// or heal info of any agent takes it for a moment); the call is tried again.
    static let lockContention = ["Locking failed", "Another transaction is in progress", "locking failed"]

    /// How long a call keeps being retried while other peers hold glusterd's lock (on a loaded
    /// node the status queries of every agent can hold it for tens of seconds in all).
    static let lockContentionPatience: Duration = .seconds(90)

    @discardableResult
    func run(_ args: [String], xml: Bool = false) async throws -> Data {
        try await retryingWhileLocked { try await runOnce(args, xml: xml) }
    }

    /// Runs `body` again while it fails on glusterd's lock: as a failed command, or (with
    /// `--xml`, which exits 0) as the error inside the XML answer that `body` parses.
    private func retryingWhileLocked<T>(_ body: () async throws -> T) async throws -> T {
        let giveUpAt = ContinuousClock.now + Self.lockContentionPatience
        var attempt = 0
        while true {
            do {
                return try await body()
            } catch where Self.lockContention.contains(where: "\(error)".contains) && ContinuousClock.now < giveUpAt {
                attempt += 1
                try await Task.sleep(for: .milliseconds(250 * min(attempt, 8)))
            }
        }
    }

    private func runOnce(_ args: [String], xml: Bool) async throws -> Data {
        guard let program = settings.command.first else { throw StorageActionError("gluster.command is empty") }
        let arguments = Array(settings.command.dropFirst()) + ["--mode=script"] + args + (xml ? ["--xml"] : [])
        let shown = "gluster \(args.joined(separator: " "))"
        let result: (status: Int32, stdout: Data, stderr: Data)
        do {
            result = try await runProcess(program, arguments, timeout: settings.timeout, ownProcessGroup: true)
        } catch ProcessRunnerError.timedOut {
            throw StorageActionError("`\(shown)` did not finish within \(settings.timeout); glusterd may be wedged, and the action may or may not have taken effect")
        }
        guard result.status == 0 else {
            let output = (String(decoding: result.stdout, as: UTF8.self) + " " + String(decoding: result.stderr, as: UTF8.self))
                .trimmingCharacters(in: .whitespacesAndNewlines)
            throw StorageActionError("`\(shown)` exited \(result.status): \(output.prefix(400))")
        }
        return result.stdout
    }

    /// `volume heal VOL [full]`. Right after a brick restart the first attempts can fail (the
    /// self-heal daemon has not reconnected yet); it is retried every 300 ms for 5 s.
    func heal(_ volume: String, full: Bool) async throws {
        let giveUpAt = ContinuousClock.now + .seconds(5)
        while true {
            do {
                try await run(["volume", "heal", volume] + (full ? ["full"] : []))
                return
            } catch where ContinuousClock.now < giveUpAt {
                try await Task.sleep(for: .milliseconds(300))
            }
        }
    }

    /// The brick's process as `volume status VOL --xml` reports it; nil when it is not listed.
    func brickStatus(_ volume: String, _ brick: String) async throws -> GlusterXML.ProcessStatus? {
        try await retryingWhileLocked { try GlusterXML.status(try await runOnce(["volume", "status", volume], xml: true)).bricks[brick] }
    }

    /// Every brick of the volume, "HOST:PATH".
    func brickNames(_ volume: String) async throws -> [String] {
        let info = try await retryingWhileLocked { try GlusterXML.volumes(try await runOnce(["volume", "info", volume], xml: true)) }
        return info.volumes.first { $0.name == volume }?.bricks.map { "\($0.host):\($0.path)" } ?? []
    }
}
