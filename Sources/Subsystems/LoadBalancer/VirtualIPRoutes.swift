import Datapath
import LinuxNet

/// Routes for the node's own traffic to service addresses: each frontend
/// address (ClusterIP, external IP, LoadBalancer IP) /32 goes to cilium_host
/// via the link-local next hop whose neighbour is cilium_net, so it enters
/// the pipeline (cil_from_netdev on cilium_net) and meets the LB stage.
struct VirtualIPRoutes: Sendable {
    /// See Networking's router: 169.254.42.1 behind cilium_host, neighbour cilium_net.
    static let nextHop = IPv4Address("169.254.42.1")!
    private(set) var installed: Set<UInt32> = []

    /// Returns an error message when a route could not be made (retried on the next change).
    mutating func sync(_ wanted: Set<UInt32>) -> String? {
        guard let nl = try? Netlink(), let index = try? nl.index(of: "cilium_host") else {
            return wanted.isEmpty ? nil : "cilium_host is missing: the node's own traffic to services is not routed"
        }
        var failure: String?
        for a in wanted.subtracting(installed) {
            do {
                try nl.replaceRoute(Netlink.Route(destination: IPv4Prefix(IPv4Address(value: a), length: 32),
                                                  gateway: Self.nextHop, outputIndex: index))
                installed.insert(a)
            } catch {
                failure = "route to service address \(IPv4Address(value: a)): \(error)"
            }
        }
        for a in installed.subtracting(wanted) {
            try? nl.deleteRoute(Netlink.Route(destination: IPv4Prefix(IPv4Address(value: a), length: 32), outputIndex: index))
            installed.remove(a)
        }
        return failure
    }

    mutating func removeAll() { _ = sync([]) }
}
