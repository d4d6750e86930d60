import Config
import Datapath
import LinuxNet
import Foundation
import Glibc

/// Builds and removes the sandbox's namespaces and links:
///   csbx-NAME-ul      the underlay: bridge br0
///   csbx-NAME-nodeK   a node: eth0 (172.30.0.10+K/24) <-> veth-nodeK on br0
///   csbx-NAME-etcd    etcd (172.30.0.2), for more than one node
/// With C > 1 clusters: cluster i's node j is 172.30.0.(10i+j) (nodes are numbered across the clusters:
/// cluster 1 has node1..nodeK), and its etcd is csbx-NAME-etcd<i> at 172.30.0.(1+i).
/// Nothing is created in the machine's own namespace.
enum Topology {
    static let underlayCIDR = "172.30.0.0/24"
    static let underlayMTU: UInt32 = 1600
    static let maxClusters = 4

    static func nodeAddress(_ k: Int) -> String { "172.30.0.\(10 + k)" }
    /// Cluster i's node j when there are several clusters.
    static func nodeAddress(cluster i: Int, node j: Int) -> String { "172.30.0.\(10 * i + j)" }
    static let etcdAddress = "172.30.0.2"
    static func etcdAddress(cluster i: Int) -> String { "172.30.0.\(1 + i)" }
    /// The DNS name in cluster i's etcd server certificate (next to its address).
    static func etcdServerName(cluster i: Int) -> String { "etcd.cluster\(i).mesh.cilium.io" }
    /// Cluster i's pod CIDR pool when there are several clusters (pools must not overlap in a mesh).
    static func podPool(cluster i: Int) -> String { "10.\(i - 1).0.0/16" }
    static let outsideAddresses = ["172.30.0.100", "172.30.0.101"]

    /// Whether the etcds speak TLS: always with several clusters (as a mesh's etcds do), else
    /// only when asked; the last `--set etcd.ssl=` given decides either way.
    static func etcdTLS(clusters: Int, settings: [String]) -> Bool {
        let asked = settings.last { $0.hasPrefix("etcd.ssl=") }.map { String($0.dropFirst("etcd.ssl=".count)) }
        switch asked?.lowercased() {
        case "true"?: return true
        case "false"?: return false
        default: return clusters > 1
        }
    }

    static func build(name: String, clusters: Int = 1, nodes: Int, settings: [String]) throws -> SandboxState {
        let dir = SandboxState.directory(name)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var state = SandboxState(name: name, underlayNamespace: "csbx-\(name)-ul", underlayCIDR: underlayCIDR, nodes: [])
        if clusters > 1 { state.clusters = clusters }
        for i in 1...clusters {
            for j in 1...nodes {
                let k = (i - 1) * nodes + j
                let n = "node\(k)"
                state.nodes.append(SandboxState.Node(
                    name: n, namespace: "csbx-\(name)-\(n)",
                    address: clusters == 1 ? nodeAddress(k) : nodeAddress(cluster: i, node: j),
                    socket: "\(dir)/\(n)/cilium.sock", configFile: "\(dir)/\(n)/values.yaml",
                    stateDir: "\(dir)/\(n)/state", bpfRoot: "/sys/fs/bpf/csbx-\(name)-\(n)",
                    logFile: "\(dir)/\(n)/agent.log", pid: nil, cluster: clusters == 1 ? nil : i))
            }
        }
        // Saved first, so a failure half-way is cleaned up by `down`.
        try state.save()

        let underlay = try NetworkNamespace.create(named: state.underlayNamespace)
        // The underlay is a wire, not a firewall: where br_netfilter is loaded on the machine, bridged
        // frames would otherwise cross iptables in the underlay's namespace (seen: br_nf_pre_routing
        // in perf profiles of cross-node traffic).
        for key in ["net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables", "net.bridge.bridge-nf-call-arptables"] {
            try? underlay.setSysctl(key, "0")
        }
        let ul = try Netlink(namespace: underlay)
        try ul.setLinkUp("lo")
        // Room for VXLAN's 50 bytes above the pods' 1500-byte MTU.
        try ul.createBridge(name: "br0", mtu: underlayMTU)
        try ul.setLinkUp("br0")
        // Per cluster: what its nodes' agents get before the --set values.
        var clusterSettings = [[String]](repeating: [], count: clusters + 1)
        if nodes > 1 || clusters > 1 {
            let tls = etcdTLS(clusters: clusters, settings: settings)
            if tls { state.pki = try SandboxState.PKI.make(sandbox: name, clusters: clusters) }
            state.etcds = []
            for i in 1...clusters {
                // Nodes share cluster state through etcd, on the underlay like any node.
                let one = clusters == 1
                let ns = try NetworkNamespace.create(named: one ? "csbx-\(name)-etcd" : "csbx-\(name)-etcd\(i)")
                let address = one ? etcdAddress : etcdAddress(cluster: i)
                var etcd = SandboxState.EtcdServer(
                    cluster: i, namespace: ns.name!, address: address, url: "\(tls ? "https" : "http")://\(address):2379",
                    dataDir: dir + (one ? "/etcd" : "/etcd\(i)"), logFile: dir + (one ? "/etcd.log" : "/etcd\(i).log"))
                if let pki = state.pki {
                    etcd.certFile = pki.directory + "/etcd\(i).crt"
                    etcd.keyFile = pki.directory + "/etcd\(i).key"
                }
                state.etcds!.append(etcd)
                try state.save()
                try plug(ns, into: ul, underlay: underlay, as: one ? "veth-etcd" : "veth-etcd\(i)", address: address)
                clusterSettings[i] = ["etcd.endpoints={\(etcd.url)}", "etcd.enabled=true"]
                if let pki = state.pki {
                    clusterSettings[i] += ["etcd.ssl=true", "etcd.tls.caFile=\(pki.caFile)",
                                           "etcd.tls.certFile=\(pki.certFile)", "etcd.tls.keyFile=\(pki.keyFile)"]
                }
                if !one {
                    clusterSettings[i] = ["cluster.name=cluster\(i)", "cluster.id=\(i)", "clustermesh.enabled=true",
                                          "ipam.operator.clusterPoolIPv4PodCIDRList={\(podPool(cluster: i))}"] + clusterSettings[i]
                }
            }
        }
        let cgroupMount = CGroup2.mountPoint()
        for (i, var node) in state.nodes.enumerated() {
            let ns = try NetworkNamespace.create(named: node.namespace)
            try plug(ns, into: ul, underlay: underlay, as: "veth-node\(i + 1)", address: node.address)
            if settings.contains("loadBalancer.acceleration=native") {
                // XDP on the node's eth0 rewrites frames from the other nodes: they must be as on a wire.
                try ns.run { try Ethtool.setTXChecksum(false, device: "eth0") }
            }
            var own = clusterSettings[node.cluster ?? 1] + settings
            if clusters > 1 {
                // Where `clustermesh connect` writes the remote clusters' etcd configs (the default, said outright).
                own = ["clustermesh.config.directory=\(node.stateDir)/clustermesh"] + own
            }
            // Each node's pods run in a cgroup of their own: that node's socket LB serves them (and nothing else on the machine).
            if let mount = cgroupMount {
                let dir = "\(mount)/csbx-\(name)-\(node.name)"
                try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
                if FileManager.default.fileExists(atPath: dir + "/cgroup.procs") {
                    node.cgroup = dir
                    state.nodes[i] = node
                    try state.save()
                    own = ["cgroup.hostRoot=\(dir)"] + own
                }
            } else {
                own = ["socketLB.enabled=false"] + own
            }
            try writeConfig(node, sandbox: name, settings: own)
        }
        // A host outside the cluster (world): two addresses, pods reached through node1.
        let out = try NetworkNamespace.create(named: "csbx-\(name)-out")
        state.outsideNamespace = out.name
        try state.save()
        try plug(out, into: ul, underlay: underlay, as: "veth-out", address: outsideAddresses[0])
        // A host beyond the wire: its frames arrive with complete checksums (what XDP on a node expects).
        try out.run { try Ethtool.setTXChecksum(false, device: "eth0") }
        let onl = try Netlink(namespace: out)
        for extra in outsideAddresses.dropFirst() { try onl.addAddress(Netlink.IPv4Prefix(extra + "/24")!, to: "eth0") }
        try onl.replaceRoute(Netlink.Route(destination: Netlink.IPv4Prefix("10.0.0.0/8")!,
                                           gateway: Netlink.IPv4Address(state.nodes[0].address)))
        if clusters > 1 {
            // Each cluster's pods through its own first node.
            for i in 1...clusters {
                try onl.replaceRoute(Netlink.Route(destination: Netlink.IPv4Prefix(podPool(cluster: i))!,
                                                   gateway: Netlink.IPv4Address(state.nodes[(i - 1) * nodes].address)))
            }
        }
        return state
    }

    /// Joins a namespace to the underlay bridge: eth0 inside with `address`/24.
    /// The bridge side has GRO on, as a NIC would: a veth needs it (or an XDP
    /// program) to take frames its peer's XDP program sends back (XDP_TX).
    static func plug(_ ns: NetworkNamespace, into ul: Netlink, underlay: NetworkNamespace, as hostSide: String, address: String) throws {
        try ns.withFD { fd in
            try ul.createVeth(name: hostSide, peerName: "eth0", peerNamespaceFD: fd, mtu: underlayMTU)
        }
        try underlay.run { try Ethtool.setGRO(true, device: hostSide) }
        try ul.setLinkMaster(.name(hostSide), master: "br0")
        try ul.setLinkUp(.name(hostSide))
        let nl = try Netlink(namespace: ns)
        try nl.setLinkUp("lo")
        try nl.addAddress(Netlink.IPv4Prefix(address + "/24")!, to: "eth0")
        try nl.setLinkUp("eth0")
    }

    /// Starts every cluster's etcd.
    static func startEtcds(_ state: inout SandboxState) throws {
        for e in state.etcds ?? [] { try startEtcd(&state, cluster: e.cluster) }
    }

    /// Starts cluster `i`'s etcd in its namespace (on https with client certificates when the sandbox
    /// has a PKI) and waits until it answers its health check, over TLS with the client certificate too.
    static func startEtcd(_ state: inout SandboxState, cluster i: Int) throws {
        guard let index = state.etcds?.firstIndex(where: { $0.cluster == i }) else { return }
        let etcd = state.etcds![index]
        let peer = "http://\(etcd.address):2380"
        let member = state.clusterCount == 1 ? "csbx" : "cluster\(i)"
        var argv = ["nsenter", "--net=/run/netns/\(etcd.namespace)", "etcd", "--name", member, "--data-dir", etcd.dataDir,
                    "--listen-client-urls", etcd.url, "--advertise-client-urls", etcd.url,
                    "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "\(member)=\(peer)"]
        var probe = ["nsenter", "--net=/run/netns/\(etcd.namespace)", "curl", "-sf", "-m", "1", "-o", "/dev/null"]
        if let pki = state.pki, let cert = etcd.certFile, let key = etcd.keyFile {
            argv += ["--cert-file", cert, "--key-file", key, "--trusted-ca-file", pki.caFile, "--client-cert-auth"]
            probe += ["--cacert", pki.caFile, "--cert", pki.certFile, "--key", pki.keyFile]
        }
        let pid = try Processes.spawnDetached(argv, environment: ProcessInfo.processInfo.environment, log: etcd.logFile)
        state.etcds![index].pid = pid
        try state.save()
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            if Processes.run(probe + [etcd.url + "/health"]) == 0 { return }
            guard Processes.isOurs(pid, marker: "etcd") else { break }
            usleep(100_000)
        }
        let log = (try? String(contentsOfFile: etcd.logFile, encoding: .utf8)) ?? ""
        throw SandboxError("etcd of cluster \(i) did not come up at \(etcd.url) (is etcd-server installed? scripts/install-deps.sh installs it); its log:\n\(log.suffix(1500))")
    }

    /// Each node's own values file: its socket, state dir, bpffs path and name,
    /// then the sandbox-wide --set values (validated here, before any agent runs).
    static func writeConfig(_ node: SandboxState.Node, sandbox: String, settings: [String]) throws {
        try FileManager.default.createDirectory(atPath: node.stateDir, withIntermediateDirectories: true)
        var text = "# Written by cilium-sandbox for \(node.name) of sandbox \(sandbox).\n"
        let own = ["agent.socketPath=\(node.socket)", "agent.stateDir=\(node.stateDir)", "agent.nodeName=\(node.name)",
                   "bpf.root=\(node.bpfRoot)", "cluster.name=\(sandbox)",
                   // The node's underlay device carries the entry programs.
                   "devices={eth0}",
                   // A sandbox runs on whatever kernel its machine has: WireGuard is the kernel's where it has one,
                   // wireguard-go where it has none (a --set below says otherwise).
                   "encryption.wireguard.userspaceFallback=true"]
        for setting in own + settings {
            text = try ConfigEditor.set(setting, in: text, file: node.configFile)
        }
        try text.write(toFile: node.configFile, atomically: true, encoding: .utf8)
    }

    /// Stops the agents (by recorded PID, only if still an agent), deletes the
    /// namespaces (their links go with them), the pins and the state directory.
    /// Processes still running inside the sandbox's namespaces (servers started
    /// with `exec`), found by their network namespace.
    static func processes(in namespaces: [String]) -> [Int32] {
        var inodes = Set<String>()
        for ns in namespaces {
            var st = stat()
            if stat("/run/netns/\(ns)", &st) == 0 { inodes.insert("net:[\(st.st_ino)]") }
        }
        guard !inodes.isEmpty, let pids = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return pids.compactMap { p in
            guard let pid = Int32(p), pid != getpid(),
                  let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(p)/ns/net"),
                  inodes.contains(link) else { return nil }
            return pid
        }
    }

    /// Removes a node's cgroup: what still runs there (it should not) goes to the parent first.
    static func removeCgroup(_ dir: String) {
        for _ in 0..<20 {
            if rmdir(dir) == 0 || errno == ENOENT { return }
            let pids = (try? String(contentsOfFile: dir + "/cgroup.procs", encoding: .utf8)) ?? ""
            let parent = (dir as NSString).deletingLastPathComponent + "/cgroup.procs"
            for pid in pids.split(separator: "\n") { try? String(pid).write(toFile: parent, atomically: false, encoding: .utf8) }
            usleep(50_000)
        }
    }

    /// Removes everything sandbox `name` made: what its state names, and whatever else carries its
    /// name (`csbx-NAME-…` namespaces, bpffs roots and cgroups), so a sandbox whose `up` or test failed
    /// half-way, or whose state file is gone, is still removed whole. Returns what could not be removed.
    @discardableResult
    static func teardown(name: String, state: SandboxState?) -> [String] {
        for node in state?.nodes ?? [] {
            if let pid = node.pid { Processes.stop(pid, marker: "cilium-agent") }
        }
        for pid in (state?.etcds ?? []).compactMap(\.pid) { Processes.stop(pid, marker: "etcd") }
        var namespaces = Set(owned(by: name, in: NetworkNamespace.directory))
        if let state {
            namespaces.formUnion([state.underlayNamespace] + state.nodes.map(\.namespace) + state.pods.map(\.namespace)
                                 + [state.etcdNamespace, state.outsideNamespace].compactMap { $0 }
                                 + (state.etcds ?? []).map(\.namespace))
        }
        // Whatever still runs inside (agents of a lost state, servers started with `exec`).
        let running = processes(in: Array(namespaces))
        for pid in running { kill(pid, SIGTERM) }
        for pid in running {
            // By its own command line: a PID that was reused meanwhile is left alone.
            let command = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline")
                .map { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) } ?? ""
            if !command.isEmpty { Processes.stop(pid, marker: command, grace: .seconds(3)) }
        }
        var left: [String] = []
        for ns in namespaces.sorted() {
            guard let namespace = try? NetworkNamespace(named: ns), FileManager.default.fileExists(atPath: namespace.path) else { continue }
            do { try namespace.delete() } catch { left.append("\(error)") }
        }
        var roots = Set(owned(by: name, in: "/sys/fs/bpf").map { "/sys/fs/bpf/" + $0 })
        roots.formUnion(state?.nodes.map(\.bpfRoot) ?? [])
        for root in roots.sorted() {
            BPFFS.removeTree(root)
            if BPFFS.exists(root) { left.append("bpffs \(root): not empty") }
        }
        if let mount = CGroup2.mountPoint() {
            var groups = Set(owned(by: name, in: mount).map { mount + "/" + $0 })
            groups.formUnion(state?.nodes.compactMap(\.cgroup) ?? [])
            for group in groups.sorted() {
                removeCgroup(group)
                if FileManager.default.fileExists(atPath: group) { left.append("cgroup \(group): still in use") }
            }
        }
        try? FileManager.default.removeItem(atPath: SandboxState.directory(name))
        return left
    }

    /// Entries of `directory` named `csbx-NAME-…` that belong to sandbox `name` and not to another
    /// sandbox whose longer name shares the prefix (sandbox "a" must not take "a-b"'s namespaces).
    static func owned(by name: String, in directory: String) -> [String] {
        let prefix = "csbx-\(name)-"
        let others = ((try? FileManager.default.contentsOfDirectory(atPath: SandboxState.root)) ?? [])
            .filter { $0 != name && $0.hasPrefix(name + "-") }.map { "csbx-\($0)-" }
        return ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { entry in
            entry.hasPrefix(prefix) && !others.contains { entry.hasPrefix($0) }
        }
    }
}
