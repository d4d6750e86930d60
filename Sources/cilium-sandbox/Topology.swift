import Config
import Datapath
import Foundation
import Glibc

/// Builds and removes the sandbox's namespaces and links:
///   csbx-NAME-ul      the underlay: bridge br0
///   csbx-NAME-nodeK   a node: eth0 (172.30.0.10+K/24) <-> veth-nodeK on br0
/// Nothing is created in the machine's own namespace.
enum Topology {
    static let underlayCIDR = "172.30.0.0/24"
    static let underlayMTU: UInt32 = 1600

    static func nodeAddress(_ k: Int) -> String { "172.30.0.\(10 + k)" }

    static func build(name: String, nodes: Int, settings: [String]) throws -> SandboxState {
        let dir = SandboxState.directory(name)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var state = SandboxState(name: name, underlayNamespace: "csbx-\(name)-ul", underlayCIDR: underlayCIDR, nodes: [])
        for k in 1...nodes {
            let n = "node\(k)"
            state.nodes.append(SandboxState.Node(
                name: n, namespace: "csbx-\(name)-\(n)", address: nodeAddress(k),
                socket: "\(dir)/\(n)/cilium.sock", configFile: "\(dir)/\(n)/values.yaml",
                stateDir: "\(dir)/\(n)/state", bpfRoot: "/sys/fs/bpf/csbx-\(name)-\(n)",
                logFile: "\(dir)/\(n)/agent.log", pid: nil))
        }
        // Saved first, so a failure half-way is cleaned up by `down`.
        try state.save()

        let underlay = try NetworkNamespace.create(named: state.underlayNamespace)
        let ul = try Netlink(namespace: underlay)
        try ul.setLinkUp("lo")
        // Room for VXLAN's 50 bytes above the pods' 1500-byte MTU.
        try ul.createBridge(name: "br0", mtu: underlayMTU)
        try ul.setLinkUp("br0")
        for (i, node) in state.nodes.enumerated() {
            let ns = try NetworkNamespace.create(named: node.namespace)
            let hostSide = "veth-node\(i + 1)"
            try ns.withFD { fd in
                try ul.createVeth(name: hostSide, peerName: "eth0", peerNamespaceFD: fd, mtu: underlayMTU)
            }
            try ul.setLinkMaster(.name(hostSide), master: "br0")
            try ul.setLinkUp(.name(hostSide))
            let nl = try Netlink(namespace: ns)
            try nl.setLinkUp("lo")
            try nl.addAddress(Netlink.IPv4Prefix(node.address + "/24")!, to: "eth0")
            try nl.setLinkUp("eth0")
            try writeConfig(node, sandbox: name, settings: settings)
        }
        return state
    }

    /// Each node's own values file: its socket, state dir, bpffs path and name,
    /// then the sandbox-wide --set values (validated here, before any agent runs).
    static func writeConfig(_ node: SandboxState.Node, sandbox: String, settings: [String]) throws {
        try FileManager.default.createDirectory(atPath: node.stateDir, withIntermediateDirectories: true)
        var text = "# Written by cilium-sandbox for \(node.name) of sandbox \(sandbox).\n"
        let own = ["agent.socketPath=\(node.socket)", "agent.stateDir=\(node.stateDir)", "agent.nodeName=\(node.name)",
                   "bpf.root=\(node.bpfRoot)", "cluster.name=\(sandbox)",
                   // The node's underlay device carries the entry programs.
                   "devices={eth0}"]
        for setting in own + settings {
            text = try ConfigEditor.set(setting, in: text, file: node.configFile)
        }
        try text.write(toFile: node.configFile, atomically: true, encoding: .utf8)
    }

    /// Stops the agents (by recorded PID, only if still an agent), deletes the
    /// namespaces (their links go with them), the pins and the state directory.
    static func teardown(_ state: SandboxState) {
        for node in state.nodes {
            if let pid = node.pid { Processes.stop(pid, marker: "cilium-agent") }
        }
        for pod in state.pods {
            try? NetworkNamespace(named: pod.namespace).delete()
        }
        for node in state.nodes {
            try? NetworkNamespace(named: node.namespace).delete()
            BPFFS.removeTree(node.bpfRoot)
        }
        try? NetworkNamespace(named: state.underlayNamespace).delete()
        try? FileManager.default.removeItem(atPath: SandboxState.directory(state.name))
    }
}
