/// `cilium encrypt status` (GET /v1/encrypt/status), in upstream's JSON shape.
public struct EncryptionStatusResponse: Codable, Sendable, Equatable {
    /// "Wireguard", "IPsec" or "Disabled".
    public var mode: String
    public var wireguard: WireguardStatus?
    public var ipsec: IPsecStatus?
    public var msg: String?
    public init(mode: String, wireguard: WireguardStatus? = nil, ipsec: IPsecStatus? = nil, msg: String? = nil) {
        self.mode = mode
        self.wireguard = wireguard
        self.ipsec = ipsec
        self.msg = msg
    }

    public struct WireguardStatus: Codable, Sendable, Equatable {
        public var interfaces: [Interface]
        public var nodeEncryption: String
        enum CodingKeys: String, CodingKey {
            case interfaces
            case nodeEncryption = "node-encryption"
        }
        public init(interfaces: [Interface], nodeEncryption: String) {
            self.interfaces = interfaces
            self.nodeEncryption = nodeEncryption
        }
    }

    public struct Interface: Codable, Sendable, Equatable {
        public var name: String
        public var publicKey: String
        public var listenPort: Int
        public var peerCount: Int
        public var peers: [Peer]
        enum CodingKeys: String, CodingKey {
            case name, peers
            case publicKey = "public-key"
            case listenPort = "listen-port"
            case peerCount = "peer-count"
        }
        public init(name: String, publicKey: String, listenPort: Int, peers: [Peer]) {
            self.name = name
            self.publicKey = publicKey
            self.listenPort = listenPort
            self.peerCount = peers.count
            self.peers = peers
        }
    }

    public struct Peer: Codable, Sendable, Equatable {
        public var publicKey: String
        public var endpoint: String
        public var allowedIPs: [String]
        /// RFC 3339; "0001-01-01T00:00:00Z" before the first handshake (upstream's zero time).
        public var lastHandshakeTime: String
        public var transferRx: Int
        public var transferTx: Int
        enum CodingKeys: String, CodingKey {
            case endpoint
            case publicKey = "public-key"
            case allowedIPs = "allowed-ips"
            case lastHandshakeTime = "last-handshake-time"
            case transferRx = "transfer-rx"
            case transferTx = "transfer-tx"
        }
        public init(publicKey: String, endpoint: String, allowedIPs: [String], lastHandshakeTime: String, transferRx: Int, transferTx: Int) {
            self.publicKey = publicKey
            self.endpoint = endpoint
            self.allowedIPs = allowedIPs
            self.lastHandshakeTime = lastHandshakeTime
            self.transferRx = transferRx
            self.transferTx = transferTx
        }
    }

    public struct IPsecStatus: Codable, Sendable, Equatable {
        public var decryptInterfaces: [String]
        public var keysInUse: Int
        public var maxSeqNumber: String
        public var errorCount: Int
        public var xfrmErrors: [String: Int]
        enum CodingKeys: String, CodingKey {
            case decryptInterfaces = "decrypt-interfaces"
            case keysInUse = "keys-in-use"
            case maxSeqNumber = "max-seq-number"
            case errorCount = "error-count"
            case xfrmErrors = "xfrm-errors"
        }
        public init(decryptInterfaces: [String], keysInUse: Int, maxSeqNumber: String, errorCount: Int, xfrmErrors: [String: Int]) {
            self.decryptInterfaces = decryptInterfaces
            self.keysInUse = keysInUse
            self.maxSeqNumber = maxSeqNumber
            self.errorCount = errorCount
            self.xfrmErrors = xfrmErrors
        }
    }
}

/// POST /v1/encrypt/rotate-key: the node's new WireGuard public key.
public struct KeyRotationResponse: Codable, Sendable, Equatable {
    public var previousPublicKey: String
    public var publicKey: String
    public init(previousPublicKey: String, publicKey: String) {
        self.previousPublicKey = previousPublicKey
        self.publicKey = publicKey
    }
}
