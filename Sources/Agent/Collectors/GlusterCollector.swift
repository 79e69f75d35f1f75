import Foundation
import Logging
import SpecolaProtocol
import SpecolaProcesses

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Reports this node's view of GlusterFS: the trusted pool, every volume with its bricks,
/// the heal backlog, and for the bricks hosted here their process, space and disks.
///
/// Everything is read through the gluster CLI's `--xml` output (`pool list`, `volume info`,
/// `volume status VOL`, `volume heal VOL info summary`, `volume get VOL all`), each call on a
/// thread of its own with a time limit, because the CLI hangs while glusterd is wedged.
/// Collections never overlap: a caller that arrives while one runs waits for its result.
///
/// The CLI is read at most every `interval` (each call is a process, and `volume status` takes
/// glusterd's cluster-wide lock, which a brick restart needs too); in between, the last section
/// is reported again. Two things make it read at once: a brick of this node whose process is
/// gone from /proc (a dead brick is seen within one report), and `refresh()` (a storage action
/// ended here, so its outcome must be in the next report).
///
/// A node without gluster (no CLI, glusterd not answering) reports `available = false`
/// with the reason, logged once per change. A volume that cannot be read is named in
/// `errors` and the others are still reported.
public final class GlusterCollector: @unchecked Sendable {
    /// How the collector reaches glusterd and which bricks are this node's.
    public struct Settings: Sendable {
        /// The gluster CLI and any prefix before it, e.g. `["gluster"]` or
        /// `["nsenter", "-t", "PID", "-m", "-n", "gluster"]`.
        public var command: [String] = ["gluster"]
        /// Bricks whose host is this name are this node's. Empty: those whose peer UUID
        /// is the UUID of the glusterd that answers.
        public var brickHost = ""
        /// The limit for one CLI call.
        public var timeout: Duration = .seconds(15)
        /// Heal summaries crawl every brick's index, so they are refreshed at most this often.
        public var healInfoInterval: Duration = .seconds(30)
        /// Pool, volumes and brick processes are read from the CLI at most this often.
        public var interval: Duration = .seconds(10)
        public var procRoot = "/proc"
        public var sysRoot = "/sys"

        public init() {}
    }

    /// The options of a volume that healing and quorum depend on, reported with their effective values.
    public static let reportedOptions = [
        "cluster.quorum-type", "cluster.server-quorum-type", "cluster.favorite-child-policy",
        "cluster.shd-max-threads", "cluster.self-heal-daemon", "performance.enable-least-priority",
    ]

    private let settings: Settings
    private let logger: Logger
    private let lock = NSLock()
    /// Callers waiting for the collection in flight; nil when none runs.
    private var waiters: [CheckedContinuation<Specola_V1_GlusterSection?, Never>]?
    // Touched only by the collection in flight (never two at once).
    private var lastUnavailableReason: String?
    private var hasReported = false
    private var lastErrors: [String] = []
    private var healCache: [String: (at: ContinuousClock.Instant, counts: [String: GlusterXML.HealCounts])] = [:]
    private var optionsCache: [String: (key: String, options: [String: String])] = [:]
    // Under `lock`: the last read, with the pids of this node's bricks it saw online and running
    // in /proc, and whether `refresh()` asked for the next collection to read the CLI.
    private var lastRead: (at: ContinuousClock.Instant, section: Specola_V1_GlusterSection, watched: Set<Int32>)?
    private var refreshRequested = false

    public init(settings: Settings = Settings(), logger: Logger) {
        self.settings = settings
        self.logger = logger
    }

    /// One collection, or the result of the one already running.
    public func collect() async -> Specola_V1_GlusterSection {
        let joined: Specola_V1_GlusterSection? = await withCheckedContinuation { continuation in
            let running = lock.withLock {
                guard waiters == nil else {
                    waiters!.append(continuation)
                    return true
                }
                waiters = []
                return false
            }
            if !running { continuation.resume(returning: nil) }
        }
        if let joined { return joined }
        let section = await onDedicatedThread("specola-gluster") { self.collectNow() }
        let waiting = lock.withLock {
            defer { waiters = nil }
            return waiters ?? []
        }
        waiting.forEach { $0.resume(returning: section) }
        return section
    }

    /// The next collection reads the CLI, however recent the last read.
    public func refresh() {
        lock.withLock { refreshRequested = true }
    }

    /// Whether the next collection would read the CLI at once: a refresh was asked, or a brick
    /// of this node died. Cheap (a few /proc reads), so the agent can ask it between reports.
    public func readIsDue() -> Bool {
        let (requested, last) = lock.withLock { (refreshRequested, lastRead) }
        guard !requested, let last else { return true }
        return !died(last.watched).isEmpty
    }

    /// One collection on the calling thread, which it blocks. Callers must not overlap.
    /// Within `interval` of the last read it returns that read, unless a refresh is due.
    func collectNow() -> Specola_V1_GlusterSection {
        let (requested, last) = lock.withLock {
            defer { refreshRequested = false }
            return (refreshRequested, lastRead)
        }
        if !requested, let last, ContinuousClock.now - last.at < settings.interval {
            let dead = died(last.watched)
            if dead.isEmpty { return last.section }
            // A brick of this node died: report it now, from /proc, for its restart waits on this
            // report; gluster's own view follows at once, in the next collection.
            let section = Self.showingOffline(dead, in: last.section)
            lock.withLock {
                lastRead = (last.at, section, last.watched.subtracting(dead))
                refreshRequested = true
            }
            return section
        }
        let section = readNow()
        let watched = Self.localBrickPIDs(section).filter { ProcessIdentity.isRunning($0, procRoot: settings.procRoot) }
        lock.withLock { lastRead = (ContinuousClock.now, section, watched) }
        return section
    }

    /// Which of the watched brick processes are gone: a bare /proc lookup, so a dead brick is
    /// noticed between reports without the CLI. Only pids seen running are watched, so a brick
    /// whose pid /proc cannot show (gluster in another pid namespace) is left to the CLI.
    private func died(_ watched: Set<Int32>) -> Set<Int32> {
        watched.filter { !ProcessIdentity.isRunning($0, procRoot: settings.procRoot) }
    }

    static func localBrickPIDs(_ section: Specola_V1_GlusterSection) -> Set<Int32> {
        guard section.available else { return [] }
        return Set(section.volumes.flatMap { $0.bricks.filter { $0.local && $0.online && $0.pid > 0 }.map(\.pid) })
    }

    /// `section` with the local bricks of these dead pids shown offline (each pid kept, so a
    /// restart can wait for that process to be reaped).
    static func showingOffline(_ dead: Set<Int32>, in section: Specola_V1_GlusterSection) -> Specola_V1_GlusterSection {
        var section = section
        for v in section.volumes.indices {
            for b in section.volumes[v].bricks.indices where section.volumes[v].bricks[b].local && dead.contains(section.volumes[v].bricks[b].pid) {
                section.volumes[v].bricks[b].online = false
            }
        }
        return section
    }

    private func readNow() -> Specola_V1_GlusterSection {
        var section = Specola_V1_GlusterSection()
        do {
            try read(into: &section)
            section.available = true
            noteAvailability(reason: nil, cause: .none)
        } catch let error as GlusterCLIError {
            section = Specola_V1_GlusterSection()
            section.available = false
            section.reason = error.message
            section.unavailableCause = error.cause
            noteAvailability(reason: error.message, cause: error.cause)
        } catch {
            section = Specola_V1_GlusterSection()
            section.available = false
            section.reason = "\(error)"
            section.unavailableCause = .cliFailed
            noteAvailability(reason: section.reason, cause: .cliFailed)
        }
        noteErrors(section.errors)
        return section
    }

    // MARK: reading

    private func read(into section: inout Specola_V1_GlusterSection) throws {
        let pool = try GlusterXML.peers(try run(["pool", "list"]))
        section.localPeerUuid = pool.localUUID
        section.peers = pool.peers
        let info = try GlusterXML.volumes(try run(["volume", "info"]))
        section.errors = info.errors
        let mountInfo = BrickFilesystem.parseMountInfo(
            (try? String(contentsOfFile: "\(settings.procRoot)/self/mountinfo", encoding: .utf8)) ?? "")
        for var volume in info.volumes {
            for index in volume.bricks.indices {
                let brick = volume.bricks[index]
                volume.bricks[index].local = settings.brickHost.isEmpty
                    ? brick.peerUuid == pool.localUUID : brick.host == settings.brickHost
            }
            volume.options = effectiveOptions(of: volume, errors: &section.errors)
            if volume.status == "Started" {
                try addStatus(to: &volume, localUUID: pool.localUUID, errors: &section.errors)
                // Only the nodes holding a brick count a volume's heals (each summary crawls every
                // brick): a few reporters per volume rather than the whole pool.
                if volume.bricks.contains(where: \.local) { addHealCounts(to: &volume, errors: &section.errors) }
            }
            for index in volume.bricks.indices where volume.bricks[index].local {
                addFilesystem(to: &volume.bricks[index], mountInfo: mountInfo, volume: volume.name, errors: &section.errors)
            }
            section.volumes.append(volume)
        }
        let known = Set(healCache.keys).subtracting(info.volumes.map(\.name))
        known.forEach { healCache[$0] = nil; optionsCache[$0] = nil }
    }

    /// Brick processes and this node's self-heal daemon. A timeout ends the whole
    /// collection (glusterd is wedged); any other failure is this volume's error.
    private func addStatus(to volume: inout Specola_V1_GlusterVolume, localUUID: String, errors: inout [String]) throws {
        let status: GlusterXML.VolumeStatus
        do {
            status = try GlusterXML.status(try run(["volume", "status", volume.name]))
        } catch let error as GlusterCLIError where error.cause == .timedOut {
            throw error
        } catch {
            errors.append("volume \(volume.name): status: \(error)")
            volume.statusUnreadable = true
            return
        }
        for index in volume.bricks.indices {
            let brick = volume.bricks[index]
            guard let process = status.bricks["\(brick.host):\(brick.path)"] else { continue }
            volume.bricks[index].online = process.online
            if brick.local {
                volume.bricks[index].pid = process.pid
                volume.bricks[index].port = process.port
            }
        }
        if Self.heals(volume) {
            var daemon = Specola_V1_GlusterSelfHealDaemon()
            daemon.expected = volume.options["cluster.self-heal-daemon"] != "off"
            if let process = status.selfHealDaemons[localUUID] {
                daemon.online = process.online
                daemon.pid = process.pid
            }
            volume.selfHealDaemon = daemon
        }
    }

    private static func heals(_ volume: Specola_V1_GlusterVolume) -> Bool {
        volume.replicaCount > 1 || volume.disperseCount > 0
    }

    /// Heal counters, refreshed at most every `healInfoInterval`. A slow summary (large
    /// backlogs take a while to crawl) is this volume's error, not the node's.
    private func addHealCounts(to volume: inout Specola_V1_GlusterVolume, errors: inout [String]) {
        guard Self.heals(volume) else { return }
        var counts: [String: GlusterXML.HealCounts]
        if let cached = healCache[volume.name], ContinuousClock.now - cached.at < settings.healInfoInterval {
            counts = cached.counts
        } else {
            do {
                counts = try GlusterXML.healSummary(try run(["volume", "heal", volume.name, "info", "summary"]))
                healCache[volume.name] = (ContinuousClock.now, counts)
            } catch {
                errors.append("volume \(volume.name): heal summary: \(error)")
                healCache[volume.name] = nil
                return
            }
        }
        for index in volume.bricks.indices {
            let brick = volume.bricks[index]
            guard let heal = counts["\(brick.host):\(brick.path)"] else {
                if brick.online {
                    errors.append("volume \(volume.name): heal summary does not list online brick \(brick.host):\(brick.path)")
                }
                continue
            }
            volume.bricks[index].healStatus = heal.status
            if let value = heal.pending { volume.bricks[index].healPending = value }
            if let value = heal.splitBrain { volume.bricks[index].splitBrain = value }
            if let value = heal.possiblyHealing { volume.bricks[index].possiblyHealing = value }
            if let value = heal.total { volume.bricks[index].healTotal = value }
            if brick.online, heal.status == "Connected", heal.pending == nil {
                errors.append("volume \(volume.name): heal summary has no counters for online brick \(brick.host):\(brick.path)")
            }
        }
        // Which files, so a policy can resolve them or an alert can name them; read only when some exist.
        guard volume.bricks.contains(where: { $0.splitBrain > 0 }) else { return }
        do {
            volume.splitBrainFiles = Array(try GlusterXML.splitBrainFiles(try run(["volume", "heal", volume.name, "info", "split-brain"])).prefix(100))
        } catch {
            errors.append("volume \(volume.name): split-brain files: \(error)")
        }
    }

    /// The reported options' effective values. `volume get VOL all` is long, so it runs
    /// again only when the volume's explicitly set options change.
    private func effectiveOptions(of volume: Specola_V1_GlusterVolume, errors: inout [String]) -> [String: String] {
        let key = volume.id + "|" + volume.options.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        if let cached = optionsCache[volume.name], cached.key == key { return cached.options }
        do {
            let all = try GlusterXML.options(try run(["volume", "get", volume.name, "all"]))
            let options = all.filter { Self.reportedOptions.contains($0.key) }
            optionsCache[volume.name] = (key, options)
            return options
        } catch {
            errors.append("volume \(volume.name): options: \(error); reporting only those set explicitly")
            return volume.options.filter { Self.reportedOptions.contains($0.key) }
        }
    }

    private func addFilesystem(
        to brick: inout Specola_V1_GlusterBrick, mountInfo: [BrickFilesystem.MountInfoEntry], volume: String,
        errors: inout [String]
    ) {
        if let filesystem = BrickFilesystem.containing(brick.path, mountInfo: mountInfo, sysRoot: settings.sysRoot) {
            brick.device = filesystem.device
            brick.fsType = filesystem.fsType
            brick.mountPoint = filesystem.mountPoint
            brick.disks = filesystem.disks
            brick.readOnly = filesystem.readOnly
        }
        var stats = statvfs()
        if statvfs(brick.path, &stats) == 0 {
            let fragment = UInt64(stats.f_frsize)
            brick.sizeBytes = UInt64(stats.f_blocks) * fragment
            brick.freeBytes = UInt64(stats.f_bavail) * fragment
        } else {
            errors.append("volume \(volume): brick \(brick.path): statvfs: \(String(cString: strerror(errno)))")
        }
    }

    // MARK: the CLI

    /// Runs `COMMAND --mode=script ARGS --xml` and returns its standard output.
    private func run(_ args: [String]) throws -> Data {
        guard let program = settings.command.first else {
            throw GlusterCLIError(cause: .notInstalled, message: "gluster.command is empty")
        }
        let arguments = Array(settings.command.dropFirst()) + ["--mode=script"] + args + ["--xml"]
        let shown = "gluster \(args.joined(separator: " "))"
        let result: (status: Int32, stdout: Data, stderr: Data)
        do {
            result = try runProcessBlocking(program, arguments, timeout: settings.timeout, ownProcessGroup: true)
        } catch ProcessRunnerError.notFound {
            throw GlusterCLIError(cause: .notInstalled, message: "no GlusterFS: \(program) not found")
        } catch ProcessRunnerError.timedOut {
            throw GlusterCLIError(
                cause: .timedOut,
                message: "`\(shown)` did not finish within \(settings.timeout): glusterd may be wedged (check `systemctl status glusterd` and its log)")
        }
        if result.status != 0 {
            let output = (String(decoding: result.stdout, as: UTF8.self) + " " + String(decoding: result.stderr, as: UTF8.self))
                .trimmingCharacters(in: .whitespacesAndNewlines)
            if output.contains("Connection failed") {
                throw GlusterCLIError(
                    cause: .glusterdNotRunning,
                    message: "glusterd is not answering (`\(shown)`: \(output)); start it with `systemctl start glusterd`")
            }
            // With --xml, glusterd's refusals are XML with opRet != 0: the parser reports its opErrstr.
            if result.stdout.starts(with: Data("<?xml".utf8)) { return result.stdout }
            throw GlusterCLIError(cause: .cliFailed, message: "`\(shown)` exited \(result.status): \(output.prefix(400))")
        }
        return result.stdout
    }

    // MARK: logging

    private func noteAvailability(reason: String?, cause: Specola_V1_GlusterUnavailableCause) {
        defer {
            lastUnavailableReason = reason
            hasReported = true
        }
        if hasReported && reason == lastUnavailableReason { return }
        if let reason {
            if cause == .notInstalled {
                logger.info("no GlusterFS on this node", metadata: ["reason": "\(reason)"])
            } else {
                logger.warning("GlusterFS unavailable", metadata: ["reason": "\(reason)"])
            }
        } else if hasReported {
            logger.info("GlusterFS available again")
        }
    }

    private func noteErrors(_ errors: [String]) {
        defer { lastErrors = errors }
        for error in errors where !lastErrors.contains(error) {
            logger.warning("GlusterFS partly unreadable", metadata: ["error": "\(error)"])
        }
    }
}

/// A gluster CLI call that failed in a way that makes the whole section unavailable.
struct GlusterCLIError: Error, CustomStringConvertible {
    let cause: Specola_V1_GlusterUnavailableCause
    let message: String
    var description: String { message }
}
