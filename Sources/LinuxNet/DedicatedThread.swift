import Glibc

// Namespace switches (setns/unshare) apply to the calling thread only. Doing them on a Swift concurrency
// or other shared thread would silently move whatever runs there next into the namespace, so every switch
// happens on a fresh pthread that exists only for that piece of work and then ends.

/// setns(2) and unshare(2) are GNU extensions that Glibc's Swift module does not import;
/// they are looked up once in the already-loaded libc.
enum LinuxNamespaceCalls {
    static let cloneNewNet: Int32 = 0x4000_0000     // CLONE_NEWNET

    private typealias SetNS = @convention(c) (Int32, Int32) -> Int32
    private typealias Unshare = @convention(c) (Int32) -> Int32

    nonisolated(unsafe) private static let setnsSymbol = dlsym(nil, "setns")      // nil handle = RTLD_DEFAULT
    nonisolated(unsafe) private static let unshareSymbol = dlsym(nil, "unshare")

    static func setns(_ fd: Int32, _ type: Int32) -> Int32 {
        guard let symbol = setnsSymbol else { errno = ENOSYS; return -1 }
        return unsafeBitCast(symbol, to: SetNS.self)(fd, type)
    }

    static func unshare(_ flags: Int32) -> Int32 {
        guard let symbol = unshareSymbol else { errno = ENOSYS; return -1 }
        return unsafeBitCast(symbol, to: Unshare.self)(flags)
    }
}

private final class ThreadWork {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}

/// Starts a pthread running `body`. Returns the thread for joining, or an errno on failure.
private func startThread(detached: Bool, _ body: @escaping () -> Void) -> Int32 {
    let work = Unmanaged.passRetained(ThreadWork(body)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(&thread, nil, { context in
        Unmanaged<ThreadWork>.fromOpaque(context!).takeRetainedValue().body()
        return nil
    }, work)
    if rc != 0 {
        Unmanaged<ThreadWork>.fromOpaque(work).release()
        return rc
    }
    if detached { pthread_detach(thread) } else { pthread_join(thread, nil) }
    return 0
}

/// Runs `body` on a new pthread and waits for it (like `DispatchQueue.sync`, the caller is blocked
/// meanwhile, so `body` may use the caller's state).
func runOnDedicatedThread<T>(_ body: () throws -> T) throws -> T {
    var result: Result<T, any Error>?
    let rc = withoutActuallyEscaping(body) { body in
        startThread(detached: false) { result = Result { try body() } }
    }
    guard rc == 0, let result else { throw NetworkNamespaceError(operation: "start thread", code: rc) }
    return try result.get()
}

/// Runs `body` on a new pthread without blocking the caller's (cooperative) thread.
func runOnDedicatedThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        let rc = startThread(detached: true) { continuation.resume(with: Result { try body() }) }
        if rc != 0 { continuation.resume(throwing: NetworkNamespaceError(operation: "start thread", code: rc)) }
    }
}

/// Enters the namespace `fd` refers to on the current (dedicated) thread, runs `body`, and switches back.
/// Switching back is belt and braces: the thread ends right after.
func enteringNetworkNamespace<T>(fd: Int32, _ body: () throws -> T) throws -> T {
    let original = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
    guard original >= 0 else { throw NetworkNamespaceError(operation: "open current netns", code: errno) }
    defer { close(original) }
    guard LinuxNamespaceCalls.setns(fd, LinuxNamespaceCalls.cloneNewNet) == 0 else {
        throw NetworkNamespaceError(operation: "enter netns (fd \(fd))", code: errno)
    }
    defer { _ = LinuxNamespaceCalls.setns(original, LinuxNamespaceCalls.cloneNewNet) }
    return try body()
}
