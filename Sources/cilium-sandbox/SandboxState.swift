import Foundation

/// What a sandbox is made of, kept in /run/cilium-sandbox/NAME/state.json so
/// `status`, `exec` and `down` find (and remove) exactly what `up` made.
struct SandboxState: Codable {
    struct Node: Codable {
        var name: String
        var namespace: String
        var address: String
        var socket: String
        var configFile: String
        var stateDir: String
        var bpfRoot: String
        var logFile: String
        var pid: Int32?
        /// The node's cgroup (v2): its agent's socket LB serves it; `exec` runs commands in it.
        var cgroup: String?
    }

    struct Pod: Codable {
        var name: String
        var node: String
        var namespace: String
        var containerID: String
        var address: String
        var labels: [String]
        /// The pod's Kubernetes namespace (nil in states written before it was kept: "default").
        var podNamespace: String?
    }

    var name: String
    var underlayNamespace: String
    var underlayCIDR: String
    var nodes: [Node]
    var pods: [Pod] = []
    /// etcd, for sandboxes of more than one node: its namespace, URL and PID.
    var etcdNamespace: String?
    var etcdURL: String?
    var etcdPid: Int32?
    /// A host outside the cluster on the underlay (world to the cluster):
    /// `exec NAME outside -- CMD`.
    var outsideNamespace: String?

    static let root = "/run/cilium-sandbox"

    static func directory(_ name: String) -> String { "\(root)/\(name)" }
    static func file(_ name: String) -> String { "\(directory(name))/state.json" }

    static func load(_ name: String) throws -> SandboxState {
        guard let data = FileManager.default.contents(atPath: file(name)) else {
            throw SandboxError("no sandbox named \(name) (nothing at \(file(name))); create it with: cilium-sandbox up --name \(name)")
        }
        return try JSONDecoder().decode(SandboxState.self, from: data)
    }

    func save() throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try FileManager.default.createDirectory(atPath: Self.directory(name), withIntermediateDirectories: true)
        try enc.encode(self).write(to: URL(fileURLWithPath: Self.file(name)))
    }

    /// The cgroup a command for a node or a pod runs in (its node's).
    func cgroup(of target: String) -> String? {
        let nodeName = pods.first { $0.name == target }?.node ?? target
        return nodes.first { $0.name == nodeName }?.cgroup
    }

    /// The namespace of a node or a pod, by name.
    func namespace(of target: String) throws -> String {
        if let pod = pods.first(where: { $0.name == target }) { return pod.namespace }
        if target == "outside", let outsideNamespace { return outsideNamespace }
        return try node(target).namespace
    }

    func node(_ n: String) throws -> Node {
        guard let node = nodes.first(where: { $0.name == n }) else {
            throw SandboxError("sandbox \(name) has no node \(n) (nodes: \(nodes.map(\.name).joined(separator: ", ")))")
        }
        return node
    }
}

struct SandboxError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// Sandbox names end up in namespace, file and bpffs names: keep them short and plain.
func validateSandboxName(_ name: String) throws {
    let ok = !name.isEmpty && name.count <= 20 && name.allSatisfy { $0.isLowercase && $0.isASCII || $0.isNumber || $0 == "-" }
        && name.first!.isLetter
    guard ok else {
        throw SandboxError("sandbox name \"\(name)\": use 1-20 lowercase letters, digits and '-', starting with a letter")
    }
}
