import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A subprocess could not be started or did not finish in time.
public enum ProcessRunnerError: Error, CustomStringConvertible {
    case notFound(String)
    case launchFailed(String, Int32)
    case timedOut(String, Duration)
    case noWorkingDirectory(String, String)

    public var description: String {
        switch self {
        case .notFound(let name): return "\(name) not found"
        case .launchFailed(let path, let code): return "cannot start \(path): \(String(cString: strerror(code)))"
        case .timedOut(let path, let limit): return "\(path) did not finish within \(limit)"
        case .noWorkingDirectory(let path, let directory):
            return "cannot start \(path) in \(directory): this C library has no posix_spawn_file_actions_addchdir_np (glibc 2.29 or later has it)"
        }
    }
}

/// glibc's `posix_spawn_file_actions_addchdir_np` (2.29 and later), which the Glibc module does not import.
private typealias SpawnAddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
private let spawnAddChdir: SpawnAddChdir? = dlsym(nil, "posix_spawn_file_actions_addchdir_np")
    .map { unsafeBitCast($0, to: SpawnAddChdir.self) }

/// Resolves `name` to an executable path: taken as is when it contains a slash,
/// otherwise searched in `PATH` (from `environment`, else the process environment).
public func resolveExecutable(_ name: String, environment: [String: String] = [:]) -> String? {
    let fileManager = FileManager.default
    if name.contains("/") {
        return fileManager.isExecutableFile(atPath: name) ? name : nil
    }
    let path =
        environment["PATH"] ?? ProcessInfo.processInfo.environment["PATH"]
        ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    for directory in path.split(separator: ":") {
        let candidate = "\(directory)/\(name)"
        if fileManager.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
}

/// Starts a program with stdin from /dev/null and stdout/stderr on the given descriptors.
///
/// The child gets an empty signal mask and default signal handlers. Threads of the
/// concurrency pool block most signals, and a child started from one with
/// Foundation's `Process` inherits that mask and then ignores SIGTERM.
/// `environment` is added to (and overrides) the inherited environment, or is the whole
/// environment when `inheritEnvironment` is false.
/// `ownProcessGroup` starts the child in a new process group (its pgid is its pid), so
/// that it and everything it starts can be signalled at once with `kill(-pid, ...)`.
/// The caller reaps the child with `waitpid`.
public func spawnProcess(
    _ path: String, _ args: [String], environment: [String: String] = [:],
    stdout: Int32, stderr: Int32, ownProcessGroup: Bool = false, inheritEnvironment: Bool = true, workingDirectory: String? = nil
) throws -> pid_t {
    guard let executable = resolveExecutable(path, environment: environment) else {
        throw ProcessRunnerError.notFound(path)
    }
    let fullEnvironment = inheritEnvironment ? ProcessInfo.processInfo.environment.merging(environment) { $1 } : environment
    let argv = ([executable] + args).map { strdup($0) } + [nil]
    let envp = fullEnvironment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer {
        argv.forEach { free($0) }
        envp.forEach { free($0) }
    }

    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_adddup2(&actions, stdout, 1)
    posix_spawn_file_actions_adddup2(&actions, stderr, 2)
    // Inherit nothing else: a descriptor leaked from another thread (say, a file being
    // written) would stay open in a long-lived child and make that file unexecutable (ETXTBSY).
    closeInheritedDescriptors(&actions)
    if let workingDirectory {
        guard let addChdir = spawnAddChdir else { throw ProcessRunnerError.noWorkingDirectory(path, workingDirectory) }
        _ = addChdir(&actions, workingDirectory)
    }

    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var emptyMask = sigset_t()
    sigemptyset(&emptyMask)
    posix_spawnattr_setsigmask(&attributes, &emptyMask)
    var allSignals = sigset_t()
    sigfillset(&allSignals)
    sigdelset(&allSignals, SIGKILL)
    sigdelset(&allSignals, SIGSTOP)
    posix_spawnattr_setsigdefault(&attributes, &allSignals)
    var flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
    if ownProcessGroup {
        posix_spawnattr_setpgroup(&attributes, 0)
        flags |= POSIX_SPAWN_SETPGROUP
    }
    posix_spawnattr_setflags(&attributes, Int16(flags))

    var pid: pid_t = 0
    var code = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
    // ETXTBSY: another thread's child briefly holds the file open for writing; it passes.
    var retries = 0
    while code == ETXTBSY && retries < 20 {
        usleep(10_000)
        retries += 1
        code = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
    }
    guard code == 0 else { throw ProcessRunnerError.launchFailed(executable, code) }
    return pid
}

/// glibc's posix_spawn_file_actions_addclosefrom_np (2.34+), looked up at run time
/// because Swift's Glibc module does not export it.
private func closeInheritedDescriptors(_ actions: inout posix_spawn_file_actions_t) {
    typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else { return }
    _ = unsafeBitCast(symbol, to: CloseFrom.self)(&actions, 3)
}

/// Waits for `pid` and returns its exit status, or 128 + signal number when it was killed.
public func waitForExit(_ pid: pid_t) -> Int32 {
    var status: Int32 = 0
    while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
    let signal = status & 0x7f
    return signal == 0 ? (status >> 8) & 0xff : 128 + signal
}

/// Runs a program to completion and returns its exit status and output, blocking the caller.
/// `environment` is added to (and overrides) the inherited environment.
/// The child is killed (SIGKILL) when it outlives `timeout`, with its whole process
/// group when `ownProcessGroup` (see `spawnProcess`). `onSpawn` learns the child's pid,
/// for a caller that may have to signal it. With `keepingLast`, only that many final bytes
/// of each stream are kept (memory stays bounded whatever the child prints).
public func runProcessBlocking(
    _ path: String, _ args: [String], environment: [String: String] = [:],
    timeout: Duration = .seconds(60), ownProcessGroup: Bool = false, inheritEnvironment: Bool = true, keepingLast: Int? = nil,
    workingDirectory: String? = nil, onSpawn: (@Sendable (pid_t) -> Void)? = nil
) throws -> (status: Int32, stdout: Data, stderr: Data) {
    let stdoutPipe = try makePipe()
    let stderrPipe = try makePipe()
    let pid: pid_t
    do {
        pid = try spawnProcess(path, args, environment: environment, stdout: stdoutPipe.write, stderr: stderrPipe.write,
                               ownProcessGroup: ownProcessGroup, inheritEnvironment: inheritEnvironment, workingDirectory: workingDirectory)
    } catch {
        [stdoutPipe.read, stdoutPipe.write, stderrPipe.read, stderrPipe.write].forEach { close($0) }
        throw error
    }
    close(stdoutPipe.write)
    close(stderrPipe.write)
    onSpawn?(pid)

    let state = ChildState()
    let watchdog = DispatchWorkItem {
        state.withLock { reaped, timedOut in
            guard !reaped else { return }
            timedOut = true
            kill(ownProcessGroup ? -pid : pid, SIGKILL)
        }
    }
    DispatchQueue.global().asyncAfter(deadline: .now() + timeout.seconds, execute: watchdog)

    // Drain stderr concurrently so that neither pipe can fill up and stall the child.
    let stderrOutput = ChildState()
    let stderrDone = DispatchSemaphore(value: 0)
    let stderrReader = Thread {
        stderrOutput.data = readToEnd(stderrPipe.read, keepingLast: keepingLast)
        stderrDone.signal()
    }
    stderrReader.name = "specola-stderr"
    stderrReader.start()
    let stdout = readToEnd(stdoutPipe.read, keepingLast: keepingLast)
    stderrDone.wait()

    let status = waitForExit(pid)
    var timedOut = false
    state.withLock { reaped, killed in
        reaped = true
        timedOut = killed
    }
    watchdog.cancel()
    if timedOut { throw ProcessRunnerError.timedOut(path, timeout) }
    return (status, stdout, stderrOutput.data)
}

/// Runs a program to completion on a thread of its own, never on the Swift concurrency pool.
/// `environment` is added to (and overrides) the inherited environment; `keepingLast` as in `runProcessBlocking`.
public func runProcess(
    _ path: String, _ args: [String], environment: [String: String] = [:],
    timeout: Duration = .seconds(60), ownProcessGroup: Bool = false, inheritEnvironment: Bool = true, keepingLast: Int? = nil,
    workingDirectory: String? = nil, onSpawn: (@Sendable (pid_t) -> Void)? = nil
) async throws -> (status: Int32, stdout: Data, stderr: Data) {
    try await onDedicatedThread("specola-process") {
        try runProcessBlocking(path, args, environment: environment, timeout: timeout, ownProcessGroup: ownProcessGroup,
                               inheritEnvironment: inheritEnvironment, keepingLast: keepingLast, workingDirectory: workingDirectory,
                               onSpawn: onSpawn)
    }
}

/// Reads `fd` to end-of-file and closes it; with `keepingLast`, a rolling tail of that many bytes.
func readToEnd(_ fd: Int32, keepingLast limit: Int?) -> Data {
    defer { close(fd) }
    var tail = RollingTail(limit: limit ?? Int.max)
    var chunk = [UInt8](repeating: 0, count: 64 * 1024)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { break }
        tail.append(chunk[0..<n])
    }
    return tail.bytes
}

/// The last `limit` bytes of a stream, kept in at most twice that much memory.
public struct RollingTail: Sendable {
    public let limit: Int
    private var buffer = Data()
    /// Bytes let go of the buffer so far (it holds up to twice `limit` between trims).
    private var discarded = 0
    /// Bytes before the kept tail: everything appended that `bytes` no longer shows.
    public var dropped: Int { discarded + max(0, buffer.count - limit) }

    public init(limit: Int) { self.limit = max(limit, 0) }

    public mutating func append(_ bytes: some Collection<UInt8>) {
        if limit < Int.max / 2 && bytes.count >= limit {
            discarded += buffer.count + bytes.count - limit
            buffer = Data(bytes.suffix(limit))
            return
        }
        buffer.append(contentsOf: bytes)
        if limit < Int.max / 2 && buffer.count > 2 * limit {
            discarded += buffer.count - limit
            buffer = Data(buffer.suffix(limit))
        }
    }

    /// The kept bytes: at most `limit`.
    public var bytes: Data { buffer.count > limit ? Data(buffer.suffix(limit)) : buffer }
}

/// A pipe whose ends are closed on exec, so other children started later do not
/// inherit them (which would keep the read end from seeing end-of-file).
/// Glibc's module does not export pipe2, so a child spawned by another thread between
/// pipe and fcntl can still inherit the ends; it only delays end-of-file until it exits.
private func makePipe() throws -> (read: Int32, write: Int32) {
    var fds: [Int32] = [0, 0]
    guard pipe(&fds) == 0 else { throw ProcessRunnerError.launchFailed("pipe", errno) }
    for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
    return (fds[0], fds[1])
}

/// State shared between the waiting thread, the watchdog and the stderr reader.
private final class ChildState: @unchecked Sendable {
    private let lock = NSLock()
    private var reaped = false
    private var timedOut = false
    private var storedData = Data()

    func withLock(_ body: (inout Bool, inout Bool) -> Void) {
        lock.withLock { body(&reaped, &timedOut) }
    }

    var data: Data {
        get { lock.withLock { storedData } }
        set { lock.withLock { storedData = newValue } }
    }
}

extension Duration {
    fileprivate var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
