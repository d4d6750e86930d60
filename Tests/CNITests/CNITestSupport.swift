import HTTPServing
import HTTPTransport
import TestSupport
import API
import Datapath
import LinuxNet
import Foundation
import Glibc
import Synchronization

/// An in-memory stand-in for the agent's endpoint API (API/EndpointTypes.swift): /v1/ipam,
/// /v1/endpoint PUT/GET/DELETE and /v1/healthz. Failures can be switched on per test.
final class StubAgent: Sendable {
    static let podCIDR = "10.211.0.0/24"
    static let gateway = "10.211.0.1"

    struct State {
        var nextHost = 2
        /// owner (container id) -> address
        var addresses: [String: String] = [:]
        var endpoints: [String: EndpointModel] = [:]
        /// "METHOD target" of every request, in order.
        var requests: [String] = []
        var created: [EndpointCreateRequest] = []
        var ipamError: (status: Int, message: String)?
        var endpointError: (status: Int, message: String)?
    }

    let state = Mutex(State())

    func handle(_ request: HTTPRequest) -> HTTPResponse {
        state.withLock { s in
            s.requests.append("\(request.method) \(request.target)")
            switch (request.method, request.path) {
            case ("GET", "/v1/healthz"):
                return .json(["state": "ok"])
            case ("POST", "/v1/ipam"):
                guard let req = try? request.decode(IPAMRequest.self) else {
                    return .error(status: 400, message: "expected {\"owner\": ...}")
                }
                if let (status, message) = s.ipamError { return .error(status: status, message: message) }
                let address = s.addresses[req.owner] ?? {
                    defer { s.nextHost += 1 }
                    return "10.211.0.\(s.nextHost)"
                }()
                s.addresses[req.owner] = address
                return .json(IPAMResponse(address: address, podCIDR: Self.podCIDR, gateway: Self.gateway))
            case ("PUT", "/v1/endpoint"):
                guard let req = try? request.decode(EndpointCreateRequest.self) else {
                    return .error(status: 400, message: "expected an EndpointCreateRequest")
                }
                s.created.append(req)
                if let (status, message) = s.endpointError { return .error(status: status, message: message) }
                guard s.addresses[req.containerID] == req.address else {
                    return .error(status: 409, message: "address \(req.address) is not allocated to \(req.containerID)")
                }
                s.endpoints[req.containerID] = EndpointModel(
                    id: s.endpoints.count + 1, containerID: req.containerID, netns: req.netns, ifName: req.ifName,
                    hostIfName: req.hostIfName, hostIfIndex: 0, address: req.address, mac: req.mac, labels: req.labels,
                    identity: 1000, podNamespace: req.podNamespace, podName: req.podName, state: "ready")
                return .json(s.endpoints[req.containerID]!, status: 201)
            case ("GET", "/v1/endpoint"):
                guard let id = request.query["containerID"], let endpoint = s.endpoints[id] else {
                    return .error(status: 404, message: "no such endpoint")
                }
                return .json(endpoint)
            case ("DELETE", "/v1/endpoint"):
                guard let id = request.query["containerID"] else { return .error(status: 400, message: "containerID missing") }
                let endpoint = s.endpoints.removeValue(forKey: id)
                let released = s.addresses.removeValue(forKey: id)
                return .json(EndpointDeleteResponse(hostIfName: endpoint?.hostIfName, released: released))
            default:
                return .error(status: 404, message: "no API endpoint \(request.method) \(request.path)")
            }
        }
    }
}

/// One plugin invocation's outcome.
struct PluginRun: CustomStringConvertible {
    var status: Int32
    var stdout: Data
    var stderr: String

    /// stdout as a JSON object (the result or the error object).
    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: stdout)) as? [String: Any] ?? [:]
    }
    var code: Int? { json["code"] as? Int }
    var msg: String { json["msg"] as? String ?? "" }
    var details: String { json["details"] as? String ?? "" }
    var description: String { "exit \(status), stdout \(String(decoding: stdout, as: UTF8.self)), stderr \(stderr)" }
}

/// A node namespace where the plugin runs (as the runtime on a node would run it), a container
/// namespace, and a stub agent on a unix socket. `cleanup()` removes all of it.
final class Fixture {
    static let counterLock = Mutex(0)

    let node: NetworkNamespace
    let container: NetworkNamespace
    let directory: String
    let socket: String
    let agent = StubAgent()
    private(set) var server: HTTPServer?

    init(startAgent: Bool = true) throws {
        let n = Fixture.counterLock.withLock { c -> Int in c += 1; return c }
        let tag = "cnit\(getpid() % 100000)x\(n)"
        directory = "/tmp/\(tag)"
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        socket = directory + "/agent.sock"
        node = try NetworkNamespace.create(named: tag + "-node")
        do {
            container = try NetworkNamespace.create(named: tag + "-ctr")
        } catch {
            try? node.delete()
            throw error
        }
        // Loopback up in the node, as on a real one.
        try Netlink(namespace: node).setLinkUp(.name("lo"))
        if startAgent { try self.startAgent() }
    }

    func startAgent() throws {
        let agent = self.agent
        let server = HTTPServer(socketPath: socket) { request in agent.handle(request) }
        try server.start()
        self.server = server
    }

    func stopAgent() {
        server?.stop(drainTimeout: 1)
        server = nil
    }

    func cleanup() {
        stopAgent()
        if container.exists { try? container.delete() }
        if node.exists { try? node.delete() }
        try? FileManager.default.removeItem(atPath: directory)
    }

    static let containerID = "c0ffee0123456789abcdef"
    static var hostIfName: String { hostInterfaceName(containerID) }

    /// "lxc" + first 11 hex digits of SHA-256, computed with sha256sum as an independent check.
    static func hostInterfaceName(_ containerID: String) -> String {
        let (_, out) = (try? shell(["sh", "-c", "printf %s '\(containerID)' | sha256sum"])) ?? (1, "")
        return "lxc" + out.prefix(11)
    }

    func config(version: String = "1.0.0", extra: [String: Any] = [:]) -> [String: Any] {
        var c: [String: Any] = ["cniVersion": version, "name": "cilium", "type": "cilium-cni", "agentSocket": socket]
        for (k, v) in extra { c[k] = v }
        return c
    }

    /// Runs the built plugin inside the node namespace with a runtime's environment and stdin.
    func run(_ command: String, config: [String: Any]? = nil, stdin: Data? = nil, containerID: String? = Fixture.containerID,
             netns: String?? = .none, ifName: String? = "eth0",
             args: String? = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0") async throws -> PluginRun {
        var env = ["CNI_COMMAND": command, "CNI_PATH": "/opt/cni/bin", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]
        env["CNI_CONTAINERID"] = containerID
        switch netns {
        case .none: env["CNI_NETNS"] = container.path
        case .some(let value): env["CNI_NETNS"] = value
        }
        env["CNI_IFNAME"] = ifName
        env["CNI_ARGS"] = args
        let input = try stdin ?? JSONSerialization.data(withJSONObject: config ?? self.config())
        return try await runProcess(["/usr/bin/nsenter", "--net=\(node.path)", pluginBinary()], environment: env, stdin: input)
    }
}

/// The built cilium-cni, next to the test bundle.
func pluginBinary() -> String {
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    var url = URL(fileURLWithPath: exe).deletingLastPathComponent()
    while !FileManager.default.isExecutableFile(atPath: url.path + "/cilium-cni") && url.path != "/" {
        url = url.deletingLastPathComponent()
    }
    return url.path + "/cilium-cni"
}

/// Runs a process on its own thread (so no cooperative thread blocks while the in-process stub agent serves it).
func runProcess(_ argv: [String], environment: [String: String], stdin: Data) async throws -> PluginRun {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<PluginRun, any Error>) in
        Thread {
            continuation.resume(with: Result {
                let p = Process()
                p.executableURL = URL(fileURLWithPath: argv[0])
                p.arguments = Array(argv.dropFirst())
                p.environment = environment
                let input = Pipe(), output = Pipe(), errors = Pipe()
                p.standardInput = input
                p.standardOutput = output
                p.standardError = errors
                try p.run()
                input.fileHandleForWriting.write(stdin)
                try input.fileHandleForWriting.close()
                let out = output.fileHandleForReading.readDataToEndOfFile()
                let err = errors.fileHandleForReading.readDataToEndOfFile()
                p.waitUntilExit()
                return PluginRun(status: p.terminationStatus, stdout: out, stderr: String(decoding: err, as: UTF8.self))
            })
        }.start()
    }
}

/// Runs a command; exit status and combined output.
func shell(_ argv: [String]) throws -> (Int32, String) {
    try runCapturing(argv)
}

/// `ip -n NS -j ARGS...` parsed; [] when the command fails (e.g. no such device).
func ipJSON(_ namespace: NetworkNamespace, _ args: String...) -> [[String: Any]] {
    guard let name = namespace.name, let (status, out) = try? shell(["ip", "-n", name, "-j"] + args), status == 0,
          let parsed = try? JSONSerialization.jsonObject(with: Data(out.utf8)) as? [[String: Any]] else { return [] }
    return parsed
}

/// Link names in a namespace.
func linkNames(_ namespace: NetworkNamespace) -> [String] {
    ipJSON(namespace, "link", "show").compactMap { $0["ifname"] as? String }
}

/// Sends one UDP datagram from inside `from` to `address` and reads it with a socket bound inside `to`.
func udpDelivered(from: NetworkNamespace, to: NetworkNamespace, address: String) throws -> Bool {
    let port = UInt16.random(in: 40000...50000)
    func sockaddr(_ address: String) -> sockaddr_in {
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        inet_pton(AF_INET, address, &sa.sin_addr)
        return sa
    }
    func withSockaddr<T>(_ address: String, _ body: (UnsafePointer<Glibc.sockaddr>, socklen_t) -> T) -> T {
        var sa = sockaddr(address)
        return withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: Glibc.sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }
    let receiver = try to.run { () -> Int32 in
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard withSockaddr(address, { bind(fd, $0, $1) }) == 0 else { close(fd); return -1 }
        return fd
    }
    guard receiver >= 0 else { return false }
    defer { close(receiver) }
    let payload = Array("cilium-cni".utf8)
    try from.run {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        _ = withSockaddr(address) { addr, len in payload.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, 0, addr, len) } }
    }
    var buffer = [UInt8](repeating: 0, count: 64)
    let n = buffer.withUnsafeMutableBytes { recv(receiver, $0.baseAddress, $0.count, 0) }
    return n == payload.count && Array(buffer.prefix(n)) == payload
}
