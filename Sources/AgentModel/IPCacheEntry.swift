import API
import CBPF
import Datapath
import LinuxNet
import Reconciler

/// Desired content of the ipcache map: which identity a prefix has, and which
/// node hosts it. Networking writes pods, nodes and the world; Policy writes
/// the CIDR prefixes its rules name (with node-local CIDR identities).
public struct IPCacheEntry: TableObject, Equatable {
    /// Always the network (host bits cleared): the LPM key.
    public let prefix: IPv4Prefix
    public var identity: UInt32
    /// Node address hosting the prefix; nil for local or world.
    public var tunnelEndpoint: IPv4Address?
    /// The hosting node's encryption key (its record's EncryptionKey: 255 with WireGuard, the SPI with IPsec); 0 = none.
    public var encryptKey: UInt8
    /// Another node's pod at this address (not in the map: for Hubble's names).
    public var podNamespace: String?
    public var podName: String?
    /// The remote cluster of the mesh the pod is in (nil: this cluster). Not in the map: for Hubble's names.
    public var cluster: String?
    public var key: IPv4Prefix { prefix }

    public init(prefix: IPv4Prefix, identity: UInt32, tunnelEndpoint: IPv4Address? = nil, encryptKey: UInt8 = 0,
                podNamespace: String? = nil, podName: String? = nil, cluster: String? = nil) {
        self.cluster = cluster
        self.prefix = prefix.network
        self.identity = identity
        self.tunnelEndpoint = tunnelEndpoint
        self.encryptKey = encryptKey
        self.podNamespace = podNamespace
        self.podName = podName
    }

    public var mapKey: ipcache_key {
        ipcache_key(prefixlen: UInt32(prefix.length), addr: prefix.address.value.bigEndian)
    }

    public var mapValue: ipcache_value {
        var v = ipcache_value()
        v.identity = identity
        v.tunnel_endpoint = (tunnelEndpoint?.value ?? 0).bigEndian
        v.key = encryptKey
        return v
    }
}
