import Datapath
import LinuxNet
import Foundation

/// The floor of a veth-based datapath on this kernel, measured beside ours: two "pods" whose
/// host-side veths (in a third namespace, the "node") carry only `bench_redirect_peer`
/// (bpf/bench_redirect_peer.c: one lookup, bpf_redirect_peer), with the same addressing as
/// our pods (a /32 and a default route through a link-local gateway whose MAC is the host-side veth's).
final class BarePeer {
    let pair: PodPaths.Pair
    private let namespaces: [NetworkNamespace]
    private let links: [BPFLink]

    init(tag: String) async throws {
        let node = try NetworkNamespace.create(named: "cbp-n-\(tag)")
        var made = [node]
        do {
            let a = try NetworkNamespace.create(named: "cbp-a-\(tag)")
            made.append(a)
            let b = try NetworkNamespace.create(named: "cbp-b-\(tag)")
            made.append(b)
            let nl = try Netlink(namespace: node)
            try nl.setLinkUp("lo")
            let gateway = IPv4Address("169.254.1.1")!
            var hostSide: [Int32] = []
            for (pod, host, address) in [(a, "bpa", "10.251.0.1"), (b, "bpb", "10.251.0.2")] {
                try pod.withFD { try nl.createVeth(name: host, peerName: "eth0", peerNamespaceFD: $0) }
                try nl.setLinkUp(.name(host))
                guard let link = try nl.link(.name(host)), let mac = link.mac else { throw BenchError("no link \(host)") }
                hostSide.append(link.index)
                let pl = try Netlink(namespace: pod)
                try pl.setLinkUp("lo")
                try pl.setLinkUp("eth0")
                try pl.addAddress(IPv4Prefix(address + "/32")!, to: "eth0")
                let eth0 = try pl.index(of: "eth0")
                try pl.replaceRoute(Netlink.Route(destination: IPv4Prefix("169.254.1.1/32")!, outputIndex: eth0))
                try pl.replaceRoute(Netlink.Route(destination: IPv4Prefix("0.0.0.0/0")!, gateway: gateway, outputIndex: eth0))
                try pl.replaceNeighbor(gateway, mac: mac, on: "eth0")
            }
            let object = try BPFObject(embedded: "bench_redirect_peer", pinRoot: nil)
            let program = try await object.program("bench_redirect_peer")
            let peers = try await object.map("bench_peer", key: UInt32.self, value: UInt32.self)
            try peers.update(UInt32(hostSide[0]), UInt32(hostSide[1]))
            try peers.update(UInt32(hostSide[1]), UInt32(hostSide[0]))
            links = try node.run { () throws -> [BPFLink] in
                try hostSide.map { index throws in try Attach.tcx(program, ifindex: index, direction: .ingress) }
            }
            namespaces = made
            pair = PodPaths.Pair(from: a, to: b, address: "10.251.0.2")
        } catch {
            for ns in made.reversed() { try? ns.delete() }
            throw error
        }
    }

    /// Detaches the program and removes the three namespaces (their veths go with them).
    func remove() {
        for link in links { link.detach() }
        for ns in namespaces.reversed() { try? ns.delete() }
    }
}
