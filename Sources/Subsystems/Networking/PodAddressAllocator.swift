import AgentModel
import API
import Config
import Datapath
import LinuxNet

/// cluster-pool IPAM on one node: the node's pod CIDR (from
/// `ipam.operator.clusterPoolIPv4PodCIDRList` cut to `clusterPoolIPv4MaskSize`),
/// the router address (first host address, on cilium_host) and one address per
/// owner (container id). Persisted, so allocations survive an agent restart.
actor PodAddressAllocator {
    struct Persisted: Codable {
        var podCIDR: String
        var allocations: [String: String] // owner -> address
    }

    let podCIDR: IPv4Prefix
    private var byOwner: [String: UInt32] = [:]
    private var used: Set<UInt32> = []
    private let state: JSONState<Persisted>

    var routerAddress: IPv4Address { IPv4Address(value: podCIDR.address.value + 1) }
    private var firstHost: UInt32 { podCIDR.address.value + 2 }
    private var lastHost: UInt32 { podCIDR.address.value + UInt32((UInt64(1) << (32 - UInt64(podCIDR.length))) - 2) }
    var capacity: Int { Int(lastHost) - Int(firstHost) + 1 }
    var allocated: Int { byOwner.count }

    /// Restores the node's CIDR and allocations, or takes `podCIDR` for a new node.
    init(stateFile: String, podCIDR: IPv4Prefix) throws {
        state = JSONState(path: stateFile)
        if let saved = try state.load(), let cidr = IPv4Prefix(saved.podCIDR) {
            self.podCIDR = cidr
            for (owner, text) in saved.allocations {
                if let a = IPv4Address(text) {
                    byOwner[owner] = a.value
                    used.insert(a.value)
                }
            }
        } else {
            self.podCIDR = podCIDR.network
        }
    }

    /// The pod CIDR this node had before (its IPAM state), if any.
    static func savedCIDR(stateFile: String) -> IPv4Prefix? {
        (try? JSONState<Persisted>(path: stateFile).load())?.flatMap { IPv4Prefix($0.podCIDR) }
    }

    /// The node's pod CIDR for a single node: the first block of the first pool.
    /// (Across nodes the block is claimed in the kvstore.)
    static func defaultPodCIDR(_ config: NetworkingSubsystem.Section) throws -> IPv4Prefix {
        let pools = config.ipam.operator.clusterPoolIPv4PodCIDRList
        guard let first = pools.first, let pool = IPv4Prefix(first) else {
            throw IPAMError("ipam.operator.clusterPoolIPv4PodCIDRList is empty or invalid: \(pools)")
        }
        return IPv4Prefix(pool.network.address, length: UInt8(config.ipam.operator.clusterPoolIPv4MaskSize))
    }

    /// The owner's address: the one it already has, or the lowest free one.
    func allocate(owner: String) throws -> IPv4Address {
        if let v = byOwner[owner] { return IPv4Address(value: v) }
        var candidate = firstHost
        while candidate <= lastHost && used.contains(candidate) { candidate += 1 }
        guard candidate <= lastHost else {
            throw IPAMError("pod CIDR \(podCIDR) is exhausted: all \(capacity) addresses are in use; remove endpoints or use a larger ipam.operator.clusterPoolIPv4MaskSize range")
        }
        byOwner[owner] = candidate
        used.insert(candidate)
        try persist()
        return IPv4Address(value: candidate)
    }

    /// Frees the owner's address; returns it (nil when it had none).
    @discardableResult
    func release(owner: String) throws -> IPv4Address? {
        guard let v = byOwner.removeValue(forKey: owner) else { return nil }
        used.remove(v)
        try persist()
        return IPv4Address(value: v)
    }

    func address(of owner: String) -> IPv4Address? { byOwner[owner].map { IPv4Address(value: $0) } }

    private func persist() throws {
        try state.save(Persisted(podCIDR: podCIDR.description,
                                 allocations: byOwner.mapValues { IPv4Address(value: $0).description }))
    }
}

struct IPAMError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
