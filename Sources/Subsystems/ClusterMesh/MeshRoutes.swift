import AgentModel
import KVStore
import LinuxNet

/// Routes in the node's namespace to the remote clusters' pod CIDRs, as Networking makes them for the nodes of
/// its own cluster: in tunnel mode through cilium_host (the entry program tunnels them), in native routing with
/// autoDirectNodeRoutes straight to the node.
struct MeshRoutes: Sendable {
    let tunnel: Bool
    let direct: Bool
    /// See Networking's ClusterSync: the link-local next hop behind cilium_host.
    static let tunnelNextHop = IPv4Address("169.254.42.1")!

    func update(old: [KVNode], new: [KVNode], local: LocalNodeRecord?) async {
        guard tunnel || direct, let nl = try? Netlink() else { return }
        let keep = Set(new.compactMap(\.podCIDR))
        for n in old {
            guard let text = n.podCIDR, let cidr = IPv4Prefix(text) else { continue }
            if keep.contains(text), new.contains(where: { $0.podCIDR == text && $0.address == n.address }) { continue }
            if direct { try? nl.deleteRoute(Netlink.Route(destination: cidr, gateway: n.address.flatMap(IPv4Address.init))) }
            if tunnel { try? nl.deleteRoute(Netlink.Route(destination: cidr, gateway: Self.tunnelNextHop)) }
        }
        let router = local.flatMap { IPv4Prefix($0.podCIDR) }.map { IPv4Address(value: $0.network.address.value + 1) }
        for n in new {
            guard let cidr = n.podCIDR.flatMap(IPv4Prefix.init), let a = n.address.flatMap(IPv4Address.init) else { continue }
            if direct { try? nl.replaceRoute(Netlink.Route(destination: cidr, gateway: a)) }
            if tunnel, let index = try? nl.index(of: "cilium_host") {
                try? nl.replaceRoute(Netlink.Route(destination: cidr, gateway: Self.tunnelNextHop, outputIndex: index, source: router))
            }
        }
    }
}
