import ArgumentParser
import Foundation
import Glibc

extension SandboxCommand {
    struct ClusterMesh: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "clustermesh",
            abstract: "Join the sandbox's clusters into a mesh, part them again, or show what each agent sees.",
            discussion: """
                connect writes, on every node of cluster i and for every other cluster j, \
                <node's state dir>/clustermesh/cluster<j>: cluster j's etcd in upstream's clustermesh-config format \
                (endpoints, and with TLS trusted-ca-file, cert-file, key-file). The agents watch that directory.
                """,
            subcommands: [Connect.self, Disconnect.self, Status.self])

        struct Connect: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Connect every cluster to every other one (a file per remote cluster on each node).")
            @OptionGroup var name: NameOption

            func run() throws {
                let state = try SandboxState.load(name.name)
                try MeshFiles.requireClusters(state)
                for node in state.nodes {
                    let own = node.cluster ?? 1
                    var written: [String] = []
                    for etcd in state.etcds ?? [] where etcd.cluster != own {
                        try MeshFiles.write(MeshFiles.content(etcd, pki: state.pki),
                                            to: MeshFiles.path(node, cluster: etcd.cluster))
                        written.append("cluster\(etcd.cluster) (\(etcd.url))")
                    }
                    print("\(node.name) (cluster\(own)): connected to \(written.joined(separator: ", "))")
                }
            }
        }

        struct Disconnect: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Remove what connect wrote: every cluster leaves the others.")
            @OptionGroup var name: NameOption

            func run() throws {
                let state = try SandboxState.load(name.name)
                try MeshFiles.requireClusters(state)
                for node in state.nodes {
                    let own = node.cluster ?? 1
                    var removed: [String] = []
                    for etcd in state.etcds ?? [] where etcd.cluster != own {
                        let path = MeshFiles.path(node, cluster: etcd.cluster)
                        if unlink(path) == 0 {
                            removed.append("cluster\(etcd.cluster)")
                        } else if errno != ENOENT {
                            throw SandboxError("cannot remove \(path): \(String(cString: strerror(errno)))")
                        }
                    }
                    print("\(node.name) (cluster\(own)): \(removed.isEmpty ? "was not connected" : "disconnected from " + removed.joined(separator: ", "))")
                }
            }
        }

        struct Status: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Run `cilium clustermesh status` against every node's agent.")
            @OptionGroup var name: NameOption
            @Argument(parsing: .postTerminator, help: "More arguments for cilium clustermesh status.") var args: [String] = []

            func run() throws {
                let state = try SandboxState.load(name.name)
                let cli = Processes.binDirectory + "/cilium"
                var worst: Int32 = 0
                for node in state.nodes {
                    print("== \(node.name) (\(state.clusterName(node.cluster ?? 1))) ==")
                    fflush(nil) // our line before the child's output
                    setenv("CILIUM_SOCK", "unix://" + node.socket, 1)
                    let code = Processes.run([cli, "clustermesh", "status"] + args)
                    if code != 0 { worst = code }
                }
                throw ExitCode(worst)
            }
        }
    }
}

/// The clustermesh-config files `clustermesh connect` writes.
enum MeshFiles {
    static func requireClusters(_ state: SandboxState) throws {
        guard state.clusterCount > 1 else {
            throw SandboxError("sandbox \(state.name) has one cluster: nothing to mesh with; make several with: cilium-sandbox up --name \(state.name) --clusters 2")
        }
    }

    /// The node's clustermesh-config directory (what up sets as clustermesh.config.directory).
    static func directory(_ node: SandboxState.Node) -> String { node.stateDir + "/clustermesh" }

    static func path(_ node: SandboxState.Node, cluster j: Int) -> String { directory(node) + "/cluster\(j)" }

    /// Upstream's etcd config format (as in a clustermesh-apiserver secret).
    static func content(_ etcd: SandboxState.EtcdServer, pki: SandboxState.PKI?) -> String {
        var text = "endpoints:\n- \(etcd.url)\n"
        if let pki, etcd.url.hasPrefix("https://") {
            text += "trusted-ca-file: \(pki.caFile)\ncert-file: \(pki.certFile)\nkey-file: \(pki.keyFile)\n"
        }
        return text
    }

    /// Writes `text` to `path` at once: a 0600 temporary file next to the node's state directory (outside the
    /// watched directory, on the same filesystem), then renamed into place, so a watcher never sees half a file.
    static func write(_ text: String, to path: String) throws {
        let dir = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let temp = (dir as NSString).deletingLastPathComponent + "/.clustermesh-\((path as NSString).lastPathComponent).\(getpid()).tmp"
        unlink(temp)
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SandboxError("cannot create \(temp): \(String(cString: strerror(errno)))") }
        let bytes = Array(text.utf8)
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard n == bytes.count, synced else {
            unlink(temp)
            throw SandboxError("cannot write \(temp): \(String(cString: strerror(errno)))")
        }
        guard rename(temp, path) == 0 else {
            let e = errno
            unlink(temp)
            throw SandboxError("cannot rename \(temp) to \(path): \(String(cString: strerror(e)))")
        }
    }
}
