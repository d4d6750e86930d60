import Foundation

// The values under upstream's key paths (see `KVKeys`), in upstream's JSON shapes, so that an
// upstream agent's or clustermesh-apiserver's records read here and ours read there.

/// Go's `net.IPNet` as encoding/json writes it: `{"IP":"10.0.1.0","Mask":"////AA=="}` (the mask base64).
public struct KVIPNet: Codable, Sendable, Equatable {
    public var IP: String
    public var Mask: String

    /// "10.0.1.0/24"; nil when it is not an IPv4 prefix.
    public init?(cidr: String) {
        let parts = cidr.split(separator: "/")
        guard parts.count == 2, let length = Int(parts[1]), (0...32).contains(length),
              parts[0].split(separator: ".").count == 4 else { return nil }
        let mask: UInt32 = length == 0 ? 0 : ~UInt32(0) << (32 - length)
        IP = String(parts[0])
        Mask = Data([UInt8(mask >> 24), UInt8(mask >> 16 & 0xFF), UInt8(mask >> 8 & 0xFF), UInt8(mask & 0xFF)]).base64EncodedString()
    }

    /// Back to "10.0.1.0/24"; nil when the mask is not a contiguous IPv4 mask.
    public var cidr: String? { KVIPNet.prefixLength(ofMask: Mask).map { "\(IP)/\($0)" } }

    static func prefixLength(ofMask base64: String) -> Int? {
        guard let bytes = Data(base64Encoded: base64), bytes.count == 4 else { return nil }
        let mask = bytes.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        let length = mask.nonzeroBitCount
        return (length == 0 ? 0 : ~UInt32(0) << (32 - length)) == mask ? length : nil
    }
}

/// A node (`cilium/state/nodes/v1/<cluster>/<node>`), in upstream's `Node` shape: Go field names, the
/// addresses as a typed list, the pod CIDR as an IPNet.
public struct KVNode: Codable, Sendable, Equatable {
    public struct Address: Codable, Sendable, Equatable {
        public var `Type`: String
        public var IP: String
        public init(type: String, ip: String) {
            self.Type = type
            self.IP = ip
        }
    }
    public var Name: String
    public var Cluster: String
    public var IPAddresses: [Address]
    public var IPv4AllocCIDR: KVIPNet?
    public var ClusterID: UInt32
    public var Source: String?
    /// 255 with WireGuard, the SPI with IPsec, 0 without encryption.
    public var EncryptionKey: UInt8
    public var WireguardPubKey: String?
    public var BootID: String?
    public var Labels: [String: String]?
    public var Annotations: [String: String]?
    public var NodeIdentity: UInt32?

    public init(name: String, cluster: String, clusterID: UInt32, address: String, podCIDR: String?,
                encryptionKey: UInt8 = 0, wireguardPubKey: String? = nil, bootID: String? = nil) {
        Name = name
        Cluster = cluster
        ClusterID = clusterID
        IPAddresses = [Address(type: "InternalIP", ip: address)]
        IPv4AllocCIDR = podCIDR.flatMap(KVIPNet.init(cidr:))
        Source = "local"
        EncryptionKey = encryptionKey
        WireguardPubKey = wireguardPubKey
        BootID = bootID
    }

    /// The node's IPv4 address: its InternalIP (else the first IPv4 it lists).
    public var address: String? {
        let v4 = IPAddresses.filter { !$0.IP.contains(":") }
        return (v4.first { $0.Type == "InternalIP" } ?? v4.first)?.IP
    }

    public var podCIDR: String? { IPv4AllocCIDR?.cidr }

    /// Missing fields other agents may leave out decode as empty (Go's zero values).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        Name = try c.decode(String.self, forKey: .Name)
        Cluster = try c.decodeIfPresent(String.self, forKey: .Cluster) ?? ""
        IPAddresses = try c.decodeIfPresent([Address].self, forKey: .IPAddresses) ?? []
        IPv4AllocCIDR = try c.decodeIfPresent(KVIPNet.self, forKey: .IPv4AllocCIDR)
        ClusterID = try c.decodeIfPresent(UInt32.self, forKey: .ClusterID) ?? 0
        Source = try c.decodeIfPresent(String.self, forKey: .Source)
        EncryptionKey = try c.decodeIfPresent(UInt8.self, forKey: .EncryptionKey) ?? 0
        WireguardPubKey = try c.decodeIfPresent(String.self, forKey: .WireguardPubKey).flatMap { $0.isEmpty ? nil : $0 }
        BootID = try c.decodeIfPresent(String.self, forKey: .BootID).flatMap { $0.isEmpty ? nil : $0 }
        Labels = try c.decodeIfPresent([String: String].self, forKey: .Labels)
        Annotations = try c.decodeIfPresent([String: String].self, forKey: .Annotations)
        NodeIdentity = try c.decodeIfPresent(UInt32.self, forKey: .NodeIdentity)
    }
}

/// An endpoint address (`cilium/state/ip/v1/<address space>/<ip>`), in upstream's `IPIdentityPair` shape.
public struct IPIdentityPair: Codable, Sendable, Equatable {
    public var IP: String
    /// nil for a single address; base64 for a prefix.
    public var Mask: String?
    public var HostIP: String
    public var ID: UInt32
    /// The encryption key index of the host.
    public var Key: UInt8
    public var Metadata: String
    public var K8sNamespace: String?
    public var K8sPodName: String?

    public init(ip: String, hostIP: String, id: UInt32, key: UInt8 = 0, namespace: String? = nil, podName: String? = nil) {
        IP = ip
        Mask = nil
        HostIP = hostIP
        ID = id
        Key = key
        Metadata = ""
        K8sNamespace = namespace
        K8sPodName = podName
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        IP = try c.decode(String.self, forKey: .IP)
        Mask = try c.decodeIfPresent(String.self, forKey: .Mask)
        HostIP = try c.decodeIfPresent(String.self, forKey: .HostIP) ?? ""
        ID = try c.decode(UInt32.self, forKey: .ID)
        Key = try c.decodeIfPresent(UInt8.self, forKey: .Key) ?? 0
        Metadata = try c.decodeIfPresent(String.self, forKey: .Metadata) ?? ""
        K8sNamespace = try c.decodeIfPresent(String.self, forKey: .K8sNamespace).flatMap { $0.isEmpty ? nil : $0 }
        K8sPodName = try c.decodeIfPresent(String.self, forKey: .K8sPodName).flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The address or prefix the pair covers ("10.0.1.5/32", or IP/len with a mask).
    public var prefix: String? {
        guard let Mask else { return IP.contains(":") ? nil : "\(IP)/32" }
        return KVIPNet.prefixLength(ofMask: Mask).map { "\(IP)/\($0)" }
    }
}

/// A cluster's configuration (`cilium/cluster-config/<cluster>`), upstream's `CiliumClusterConfig`.
public struct KVClusterConfig: Codable, Sendable, Equatable {
    public struct Capabilities: Codable, Sendable, Equatable {
        public var syncedCanaries: Bool?
        public var maxConnectedClusters: Int?
        public init(syncedCanaries: Bool, maxConnectedClusters: Int) {
            self.syncedCanaries = syncedCanaries
            self.maxConnectedClusters = maxConnectedClusters
        }
    }
    public var id: Int
    public var capabilities: Capabilities?
    public init(id: Int, capabilities: Capabilities?) {
        self.id = id
        self.capabilities = capabilities
    }
}

/// A record under a key that does not decode: named, with why, and counted by whoever reads it.
public struct KVRecordError: Error, CustomStringConvertible, Sendable {
    public var key: String
    public var reason: String
    public var description: String { "kvstore key \(key): \(reason); the record is ignored" }

    /// Decodes `T` from `value`, or says which key held what could not be read.
    public static func decode<T: Decodable>(_ type: T.Type, key: String, from value: Data) -> Result<T, KVRecordError> {
        do {
            return .success(try JSONDecoder().decode(T.self, from: value))
        } catch let DecodingError.keyNotFound(k, _) {
            return .failure(KVRecordError(key: key, reason: "not upstream's \(T.self) shape (no field \(k.stringValue))"))
        } catch let DecodingError.typeMismatch(_, context) {
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return .failure(KVRecordError(key: key, reason: "not upstream's \(T.self) shape (field \(path): \(context.debugDescription))"))
        } catch {
            return .failure(KVRecordError(key: key, reason: "not JSON of upstream's \(T.self) shape (\(String(decoding: value.prefix(80), as: UTF8.self)))"))
        }
    }
}
