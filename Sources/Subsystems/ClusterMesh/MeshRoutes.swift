import AgentModel
import KVStore
import LinuxNet

/// Routes in the node's namespace to the remote clusters' pod CIDRs, as Networking makes them for the nodes of
/// its own cluster (`PodCIDRRoutes`).
struct MeshRoutes: Sendable {
    let routes: PodCIDRRoutes

    init(tunnel: Bool, direct: Bool) { routes = PodCIDRRoutes(tunnel: tunnel, direct: direct) }

    func update(old: [KVNode], new: [KVNode], local: LocalNodeRecord?) async {
        guard routes.tunnel || routes.direct, let nl = try? Netlink() else { return }
        for n in old {
            guard let text = n.podCIDR, let cidr = IPv4Prefix(text) else { continue }
            if new.contains(where: { $0.podCIDR == text && $0.address == n.address }) { continue }
            routes.remove(cidr, node: n.address.flatMap(IPv4Address.init), nl)
        }
        let router = local.flatMap { IPv4Prefix($0.podCIDR) }.map { IPv4Address(value: $0.network.address.value + 1) }
        for n in new {
            guard let cidr = n.podCIDR.flatMap(IPv4Prefix.init), let a = n.address.flatMap(IPv4Address.init) else { continue }
            routes.add(cidr, node: a, router: router, nl)
        }
    }
}
