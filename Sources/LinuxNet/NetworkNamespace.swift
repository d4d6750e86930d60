import Diagnostics
import Glibc

/// A failed namespace operation: what was attempted and the errno.
public struct NetworkNamespaceError: Error, Sendable, Equatable, CustomStringConvertible {
    public var operation: String
    public var code: Int32

    public init(operation: String, code: Int32) {
        self.operation = operation
        self.code = code
    }

    public var description: String { "\(operation): \(errnoText(code))" }
}

/// A network namespace, identified by a file that refers to it: /run/netns/NAME for named ones
/// (the `ip netns` convention), or e.g. /proc/PID/ns/net or a CNI runtime's netns path.
///
/// Nothing here changes the namespace of a caller's thread: work inside a namespace runs on a
/// dedicated pthread that enters it and ends afterwards.
public struct NetworkNamespace: Sendable, Hashable, CustomStringConvertible {
    public static let directory = "/run/netns"

    public let path: String

    public init(path: String) { self.path = path }

    /// The namespace `ip netns` knows as `name`; throws EINVAL for names that are not a plain file name.
    public init(named name: String) throws {
        guard NetworkNamespace.isValidName(name) else {
            throw NetworkNamespaceError(operation: "invalid netns name \"\(name)\"", code: EINVAL)
        }
        path = "\(NetworkNamespace.directory)/\(name)"
    }

    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && name.utf8.count <= Int(NAME_MAX)
            && !name.utf8.contains(UInt8(ascii: "/")) && !name.utf8.contains(0)
    }

    /// The name for namespaces under /run/netns.
    public var name: String? {
        let prefix = NetworkNamespace.directory + "/"
        return path.hasPrefix(prefix) ? String(path.dropFirst(prefix.count)) : nil
    }

    public var description: String { name ?? path }

    // MARK: Lifecycle of named namespaces

    /// Creates a persistent namespace like `ip netns add NAME`: a new namespace bind-mounted onto
    /// /run/netns/NAME, which keeps it alive without any process in it. EEXIST if the name is taken.
    public static func create(named name: String) throws -> NetworkNamespace {
        let namespace = try NetworkNamespace(named: name)
        let operation = "create netns \(name)"
        try prepareDirectory(operation)
        // The mount point; O_EXCL makes a taken name fail instead of replacing a live namespace.
        let fd = Glibc.open(namespace.path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0)
        guard fd >= 0 else { throw NetworkNamespaceError(operation: operation, code: errno) }
        close(fd)
        do {
            try runOnDedicatedThread {
                let original = Glibc.open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
                guard original >= 0 else { throw NetworkNamespaceError(operation: operation, code: errno) }
                defer { close(original) }
                guard LinuxNamespaceCalls.unshare(LinuxNamespaceCalls.cloneNewNet) == 0 else {
                    throw NetworkNamespaceError(operation: "\(operation): unshare", code: errno)
                }
                defer { _ = LinuxNamespaceCalls.setns(original, LinuxNamespaceCalls.cloneNewNet) }
                // thread-self, not self: only this thread is in the new namespace.
                guard mount("/proc/thread-self/ns/net", namespace.path, "none", UInt(MS_BIND), nil) == 0 else {
                    throw NetworkNamespaceError(operation: "\(operation): bind mount", code: errno)
                }
            }
        } catch {
            unlink(namespace.path)
            throw error
        }
        return namespace
    }

    /// Makes /run/netns a shared mount point of its own, as `ip netns add` does, before the first
    /// namespace is mounted there. Otherwise the next tool that does it (iproute2, podman's CNI
    /// plugins) bind-mounts the directory over itself and covers our namespace mounts: they can then
    /// be neither unmounted nor unlinked ("Device or resource busy") until the machine reboots.
    static func prepareDirectory(_ operation: String) throws {
        if mkdir(directory, 0o755) != 0 && errno != EEXIST {
            throw NetworkNamespaceError(operation: "\(operation): create \(directory)", code: errno)
        }
        let shared = UInt(MS_SHARED) | UInt(MS_REC)
        if mount("", directory, "none", shared, nil) == 0 { return }
        // EINVAL: not a mount point yet.
        guard errno == EINVAL, mount(directory, directory, "none", UInt(MS_BIND) | UInt(MS_REC), nil) == 0,
              mount("", directory, "none", shared, nil) == 0 else {
            throw NetworkNamespaceError(operation: "\(operation): make \(directory) a shared mount", code: errno)
        }
    }

    /// Removes a namespace created by `create(named:)` (like `ip netns delete`). The namespace itself
    /// goes away once no process, socket or mount uses it any more.
    public func delete() throws {
        let operation = "delete netns \(self)"
        // MNT_DETACH: do not fail while something still has the mount open. EINVAL means the file is
        // not a mount point (left over from a crash); it is still removed.
        if umount2(path, Int32(MNT_DETACH)) != 0 && errno != EINVAL {
            throw NetworkNamespaceError(operation: operation, code: errno)
        }
        if unlink(path) != 0 { throw NetworkNamespaceError(operation: operation, code: errno) }
    }

    /// Whether the path refers to a namespace. A leftover /run/netns file with nothing mounted on it does not.
    public var exists: Bool {
        var file = stat(), parent = stat()
        guard stat(path, &file) == 0 else { return false }
        // A namespace file lives on nsfs, a different device than the directory holding it.
        let directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        guard stat(directory.isEmpty ? "/" : directory, &parent) == 0 else { return true }
        return file.st_dev != parent.st_dev
    }

    /// The namespace's inode number: two paths refer to the same namespace iff their inodes are equal.
    public func inode() throws -> UInt64 {
        var file = stat()
        guard stat(path, &file) == 0 else { throw NetworkNamespaceError(operation: "stat netns \(self)", code: errno) }
        return UInt64(file.st_ino)
    }

    // MARK: File descriptors

    /// Opens the namespace (O_RDONLY | O_CLOEXEC), for setns, IFLA_NET_NS_FD and the like. The caller closes it.
    public func open() throws -> Int32 {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw NetworkNamespaceError(operation: "open netns \(self)", code: errno) }
        return fd
    }

    /// Runs `body` with an open fd of the namespace, closed afterwards.
    public func withFD<T>(_ body: (Int32) throws -> T) throws -> T {
        let fd = try open()
        defer { close(fd) }
        return try body(fd)
    }

    // MARK: Running code inside

    /// Runs `body` on a dedicated thread inside the namespace and returns its result; the calling
    /// thread waits. Sockets opened in `body` stay in the namespace after it returns.
    public func run<T>(_ body: () throws -> T) throws -> T {
        try withFD { fd in try NetworkNamespace.run(inNamespaceFD: fd, body) }
    }

    /// Like `run(_:)`, but suspends instead of blocking the caller's thread. (A separate name: an async
    /// overload of `run` would be picked over the blocking one in every async context.)
    public func runAsync<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        let path = path
        return try await runOnDedicatedThread {
            try NetworkNamespace(path: path).withFD { fd in try enteringNetworkNamespace(fd: fd, body) }
        }
    }

    /// Runs `body` on a dedicated thread inside the namespace `fd` refers to.
    public static func run<T>(inNamespaceFD fd: Int32, _ body: () throws -> T) throws -> T {
        try runOnDedicatedThread { try enteringNetworkNamespace(fd: fd, body) }
    }
}
