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
        /// The cluster the node belongs to, 1...clusters (nil in states written before clusters: 1).
        var cluster: Int?
    }

    /// One cluster's etcd: its namespace, address, URL and PID; with TLS, its server certificate and key.
    struct EtcdServer: Codable {
        var cluster: Int
        var namespace: String
        var address: String
        var url: String
        var dataDir: String
        var logFile: String
        var pid: Int32?
        var certFile: String?
        var keyFile: String?
    }

    /// The sandbox's certificate authority and the client certificate every agent (and `clustermesh connect`'s
    /// files) presents to the etcds, when etcd speaks TLS.
    struct PKI: Codable {
        var directory: String
        var caFile: String
        var certFile: String
        var keyFile: String
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
    /// Every cluster's etcd (cluster 1's is also in etcdNamespace/etcdURL/etcdPid, as states were before
    /// clusters; a state without this field has at most that one).
    var etcds: [EtcdServer]?
    /// The number of clusters (nil: 1).
    var clusters: Int?
    /// The CA and client certificate when the etcds speak TLS (nil: plain http).
    var pki: PKI?

    static let root = "/run/cilium-sandbox"

    static func directory(_ name: String) -> String { "\(root)/\(name)" }
    static func file(_ name: String) -> String { "\(directory(name))/state.json" }

    static func load(_ name: String) throws -> SandboxState {
        guard let data = FileManager.default.contents(atPath: file(name)) else {
            throw SandboxError("no sandbox named \(name) (nothing at \(file(name))); create it with: cilium-sandbox up --name \(name)")
        }
        var state = try JSONDecoder().decode(SandboxState.self, from: data)
        if state.etcds == nil, let ns = state.etcdNamespace, let url = state.etcdURL {
            // Written before clusters: its one etcd is cluster 1's.
            let dir = directory(name)
            state.etcds = [EtcdServer(cluster: 1, namespace: ns, address: Topology.etcdAddress(cluster: 1), url: url,
                                      dataDir: dir + "/etcd", logFile: dir + "/etcd.log", pid: state.etcdPid)]
        }
        return state
    }

    func save() throws {
        var copy = self
        // Cluster 1's etcd also where states before clusters kept it (older readers, `etcd` of an older binary).
        if let first = etcds?.first(where: { $0.cluster == 1 }) {
            copy.etcdNamespace = first.namespace
            copy.etcdURL = first.url
            copy.etcdPid = first.pid
        }
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try FileManager.default.createDirectory(atPath: Self.directory(name), withIntermediateDirectories: true)
        try enc.encode(copy).write(to: URL(fileURLWithPath: Self.file(name)))
    }

    var clusterCount: Int { clusters ?? 1 }

    /// The name a cluster's agents carry in cluster.name: the sandbox's own name when it has one cluster.
    func clusterName(_ i: Int) -> String { clusterCount == 1 ? name : "cluster\(i)" }

    func etcd(cluster i: Int) throws -> EtcdServer {
        guard let e = etcds?.first(where: { $0.cluster == i }) else {
            if clusterCount == 1 { throw SandboxError("sandbox \(name) has no etcd (it has one node)") }
            throw SandboxError("sandbox \(name) has no cluster \(i) (clusters: 1...\(clusterCount))")
        }
        return e
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
