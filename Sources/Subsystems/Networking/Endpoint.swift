import API
import CBPF
import Datapath
import LinuxNet
import Reconciler

/// A workload endpoint on this node: the container side of a veth pair, its
/// address and its security identity.
public struct Endpoint: TableObject, Codable, Equatable {
    public var id: UInt16
    public var containerID: String
    public var netns: String
    public var ifName: String
    public var hostIfName: String
    public var hostIfIndex: Int32
    public var address: String
    public var mac: String
    public var hostMac: String
    public var labels: [String]
    public var identity: UInt32
    public var podNamespace: String?
    public var podName: String?
    /// hostPorts from the runtime (CNI portMappings); nil for none.
    public var portMappings: [PortMapping]? = nil
    /// Named container ports from the runtime; nil for none.
    public var namedPorts: [NamedPort]? = nil
    public var key: String { containerID }

    var ipv4: IPv4Address { IPv4Address(address)! }

    var mapKey: endpoint_key { endpoint_key(addr: ipv4.value.bigEndian) }

    var mapValue: endpoint_value {
        var v = endpoint_value()
        v.ifindex = UInt32(bitPattern: hostIfIndex)
        v.endpoint_id = id
        v.identity = identity
        let m = MACAddress(mac)?.bytes ?? [UInt8](repeating: 0, count: 6)
        let n = MACAddress(hostMac)?.bytes ?? [UInt8](repeating: 0, count: 6)
        v.mac = (m[0], m[1], m[2], m[3], m[4], m[5])
        v.node_mac = (n[0], n[1], n[2], n[3], n[4], n[5])
        return v
    }

    var model: EndpointModel {
        EndpointModel(id: Int(id), containerID: containerID, netns: netns, ifName: ifName, hostIfName: hostIfName,
                      hostIfIndex: hostIfIndex, address: address, mac: mac, labels: labels.map(LocalIdentityAllocator.normalize).sorted(),
                      identity: identity, podNamespace: podNamespace, podName: podName, state: "ready")
    }
}
