import AgentModel
@testable import Agent
import CBPF
import Datapath
import Foundation
import Glibc
import LinuxNet
import Testing
import TestSupport

/// Every pin under the agent's bpf root has exactly one owning subsystem, which
/// alone creates, fills, prunes and removes it (issue 14: Networking's refresh
/// used to prune the load balancer's links).
@Suite(.serialized) struct OwnershipTests {
    /// The maps the BPF programs pin by name (`} name SEC(".maps")` in bpf/).
    static func pinnedMapNames() throws -> Set<String> {
        let bpf = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("bpf")
        var names = Set<String>()
        let files = FileManager.default.enumerator(atPath: bpf.path)?.compactMap { $0 as? String } ?? []
        for file in files where file.hasSuffix(".c") || file.hasSuffix(".h") {
            let text = try String(contentsOfFile: bpf.path + "/" + file, encoding: .utf8)
            for line in text.split(separator: "\n") where line.contains("SEC(\".maps\")") && line.hasPrefix("}") {
                let name = line.dropFirst().trimmingCharacters(in: .whitespaces).split(separator: " ").first.map(String.init) ?? ""
                if name.hasPrefix("cilium_") { names.insert(name) }
            }
        }
        return names
    }

    @Test func everyPinnedMapHasExactlyOneOwner() throws {
        let subsystems = allSubsystems()
        var owner: [String: String] = [:]
        for s in subsystems {
            for map in s.owns.maps {
                #expect(owner[map] == nil, "\(map) is declared by \(owner[map] ?? "") and \(s.name)")
                owner[map] = s.name
            }
        }
        let directories = subsystems.map(\.owns.directory)
        #expect(Set(directories).count == directories.count, "\(directories)")
        #expect(Set(directories) == Set(subsystems.map(\.name)), "each subsystem's directory carries its name")
        let pinned = try Self.pinnedMapNames()
        #expect(pinned.count > 15)
        #expect(pinned.subtracting(owner.keys).isEmpty, "maps no subsystem owns: \(pinned.subtracting(owner.keys).sorted())")
        #expect(Set(owner.keys).subtracting(pinned).isEmpty, "declared but not in bpf/: \(Set(owner.keys).subtracting(pinned).sorted())")
    }

    /// An agent with every subsystem on (socket LB on a cgroup of the test's own, XDP on a veth):
    /// everything under its bpf root is a declared map or inside a declared directory.
    @Test func aRunningAgentPinsOnlyWhatItsSubsystemsDeclare() throws {
        let cgroupMount = try #require(CGroup2.mountPoint(), "no cgroup2 mount")
        let cgroup = cgroupMount + "/cat-owned-\(UInt32.random(in: 0...UInt32.max))"
        #expect(mkdir(cgroup, 0o755) == 0)
        defer { rmdir(cgroup) }
        let agent = try AgentUnderTest("owned", extraConfig: """
            devices: [eth-o]
            kubeProxyReplacement: true
            routingMode: native
            loadBalancer: {acceleration: native}
            cgroup: {hostRoot: \(cgroup)}
            hostFirewall: {enabled: true}
            encryption: {enabled: true, type: wireguard, wireguard: {userspaceFallback: true}}
            clustermesh: {enabled: true}
            cluster: {name: owned, id: 7}

            """)
        let nl = try Netlink(namespace: agent.namespace)
        try nl.createVeth(name: "eth-o", peerName: "eth-o-peer")
        try nl.setLinkUp("eth-o")
        try nl.setLinkUp("eth-o-peer")
        try agent.namespace.run { try Ethtool.setGRO(true, device: "eth-o") }
        try agent.start()
        let st = try agent.status()
        #expect(st.subsystems.values.allSatisfy { $0.enabled }, "\(st.subsystems.mapValues(\.summary))")
        let subsystems = allSubsystems()
        let maps = Set(subsystems.flatMap(\.owns.maps))
        let directories = Set(subsystems.map(\.owns.directory))
        var stray: [String] = []
        for entry in try FileManager.default.contentsOfDirectory(atPath: agent.bpfRoot) {
            if !maps.contains(entry) && !directories.contains(entry) { stray.append(entry) }
        }
        #expect(stray.isEmpty, "pins no subsystem declares: \(stray)")
        let lbLinks = try FileManager.default.contentsOfDirectory(atPath: agent.bpfRoot + "/loadbalancer/links")
        #expect(Set(lbLinks).isSuperset(of: ["sock4-connect", "sock4-sendmsg", "xdp-eth-o"]), "\(lbLinks)")
        #expect(FileManager.default.fileExists(atPath: agent.bpfRoot + "/networking/links/ingress-eth-o"))
        // Turned off live, the load balancer removes its own links and nothing of Networking's.
        #expect(try agent.cilium(["config", "set", "kubeProxyReplacement=false"]).status == 0)
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: agent.bpfRoot + "/loadbalancer/links")) ?? []).isEmpty)
        #expect(FileManager.default.fileExists(atPath: agent.bpfRoot + "/networking/links/ingress-eth-o"))
        // On again, then off across an agent restart: the next agent, which has the load balancer
        // disabled, removes what the last one left of it (its links, its stage).
        #expect(try agent.cilium(["config", "set", "kubeProxyReplacement=true"]).status == 0)
        #expect(try slotID(agent, CILIUM_STAGE_LB) != nil)
        agent.stop()
        let config = try String(contentsOfFile: agent.configPath, encoding: .utf8)
        try config.replacingOccurrences(of: "kubeProxyReplacement: true", with: "kubeProxyReplacement: false")
            .write(toFile: agent.configPath, atomically: true, encoding: .utf8)
        try agent.start()
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: agent.bpfRoot + "/loadbalancer/links")) ?? []).isEmpty)
        #expect(try slotID(agent, CILIUM_STAGE_LB) == nil)
        #expect(FileManager.default.fileExists(atPath: agent.bpfRoot + "/networking/links/ingress-eth-o"))
        agent.stop()
    }
}
