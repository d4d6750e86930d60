import LinuxNet

/// The node's routes to another node's pod CIDR (one of its own cluster's, or of a remote cluster of the mesh):
/// in tunnel mode through cilium_host towards a link-local next hop whose neighbour is cilium_net, where the entry
/// program picks the packets up and tunnels them; in native routing with autoDirectNodeRoutes straight to the node.
public struct PodCIDRRoutes: Sendable {
    public let tunnel: Bool
    public let direct: Bool
    /// The link-local next hop "behind" cilium_host (Networking gives cilium_host the address after it).
    public static let tunnelNextHop = IPv4Prefix("169.254.42.1/30")!

    public init(tunnel: Bool, direct: Bool) {
        self.tunnel = tunnel
        self.direct = direct
    }

    /// `router`: the source of the node's own traffic (its pod CIDR's first address).
    public func add(_ cidr: IPv4Prefix, node: IPv4Address, router: IPv4Address?, _ nl: Netlink) {
        if direct { try? nl.replaceRoute(Netlink.Route(destination: cidr, gateway: node)) }
        if tunnel, let index = try? nl.index(of: "cilium_host") {
            try? nl.replaceRoute(Netlink.Route(destination: cidr, gateway: Self.tunnelNextHop.address, outputIndex: index, source: router))
        }
    }

    public func remove(_ cidr: IPv4Prefix, node: IPv4Address?, _ nl: Netlink) {
        if direct { try? nl.deleteRoute(Netlink.Route(destination: cidr, gateway: node)) }
        if tunnel { try? nl.deleteRoute(Netlink.Route(destination: cidr, gateway: Self.tunnelNextHop.address)) }
    }
}
