import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// Swift's cooperative pool has one thread per core (two on a 2-core server) and never
// grows: a call that blocks there (waitpid, fsync, a BMC round trip, a sleep) stalls every
// task of the process. Blocking calls go to threads of their own instead.

/// Runs `body` on a new thread of its own and resumes the caller with its result.
public func onDedicatedThread<T: Sendable>(
    _ name: String = "specola-blocking", _ body: @escaping @Sendable () throws -> T
) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.name = name
        thread.start()
    }
}

/// `onDedicatedThread` for a body that cannot throw.
public func onDedicatedThread<T: Sendable>(
    _ name: String = "specola-blocking", _ body: @escaping @Sendable () -> T
) async -> T {
    await withCheckedContinuation { continuation in
        let thread = Thread { continuation.resume(returning: body()) }
        thread.name = name
        thread.start()
    }
}

/// A serial executor with one thread of its own. An actor whose jobs block (a Raft replica
/// that fsyncs its log, an outbox that commits to SQLite) runs on one, so its waits hold
/// only its own thread. The thread ends when the executor is released.
/// It is also a task executor, so a task started from another thread (a storage thread's
/// report) runs its nonisolated part on this thread rather than hopping through the pool.
public final class DedicatedThreadExecutor: SerialExecutor, TaskExecutor, @unchecked Sendable {
    private let jobs: JobQueue

    public init(name: String) {
        let jobs = JobQueue()
        self.jobs = jobs
        let thread = Thread { [weak self] in
            jobs.setOwner()
            // Only a weak reference is kept between jobs, so the executor can be released.
            while let batch = jobs.nextBatch() {
                guard let executor = self else { return }
                for job in batch { job.runSynchronously(on: executor.asUnownedSerialExecutor()) }
            }
        }
        thread.name = String(name.prefix(15))
        thread.start()
    }

    deinit { jobs.close() }

    public func enqueue(_ job: consuming ExecutorJob) {
        jobs.append(UnownedJob(job))
    }

    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    public func checkIsolated() {
        precondition(jobs.isOwnerThread, "not on this actor's dedicated thread")
    }
}

/// The executor's queue: a mutex, a condition and the jobs waiting for the thread.
private final class JobQueue: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()
    private var pending: [UnownedJob] = []
    private var closed = false
    private var owner: pthread_t?

    init() {
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&condition, nil)
    }

    func setOwner() {
        pthread_mutex_lock(&mutex)
        owner = pthread_self()
        pthread_mutex_unlock(&mutex)
    }

    var isOwnerThread: Bool {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return owner.map { pthread_equal($0, pthread_self()) != 0 } ?? false
    }

    func append(_ job: UnownedJob) {
        pthread_mutex_lock(&mutex)
        pending.append(job)
        pthread_cond_signal(&condition)
        pthread_mutex_unlock(&mutex)
    }

    /// Every job waiting, in order, once there is one; nil once closed and drained.
    func nextBatch() -> [UnownedJob]? {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        while pending.isEmpty && !closed { pthread_cond_wait(&condition, &mutex) }
        if pending.isEmpty { return nil }
        defer { pending.removeAll(keepingCapacity: true) }
        return pending
    }

    func close() {
        pthread_mutex_lock(&mutex)
        closed = true
        pthread_cond_signal(&condition)
        pthread_mutex_unlock(&mutex)
    }
}
