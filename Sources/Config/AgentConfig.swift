/// The node agent's validated configuration. Nested structs mirror the dotted keys of `schema`
/// (`config.hubble.enabled` is `hubble.enabled`); every property starts at the schema default.
public struct AgentConfig: Codable, Sendable, Equatable {
    public struct Cluster: Codable, Sendable, Equatable {
        public var name = "default"
        public var id = 0
        public init() {}
    }

    public struct Agent: Codable, Sendable, Equatable {
        public var socketPath = "/var/run/cilium/cilium.sock"
        public var stateDir = "/var/lib/cilium"
        /// "" means the hostname.
        public var nodeName = ""
        /// Kubernetes manifests the agent reads (pods' labels); "" for none.
        public var resourceDirectory = ""
        public var http = HTTP()
        public init() {}
    }

    /// Limits of every HTTP listener of the agent: the API socket, the Prometheus ports and the
    /// service map page (each listener has its own connection count).
    public struct HTTP: Codable, Sendable, Equatable {
        public var maxConnections = 8192
        public var headerTimeoutSeconds = 10
        public var idleTimeoutSeconds = 120
        public var maxHeadBytes = 65536
        public var maxBodyBytes = 16_777_216
        public init() {}
    }

    public struct BPF: Codable, Sendable, Equatable {
        public var root = "/sys/fs/bpf/cilium"
        public var rewriteDeliveryMAC = false
        public init() {}
    }

    public struct LoadBalancer: Codable, Sendable, Equatable {
        public var algorithm = LoadBalancerAlgorithm.random
        public var mode = LoadBalancerMode.snat
        public var acceleration = LoadBalancerAcceleration.disabled
        public init() {}
    }

    public struct Maglev: Codable, Sendable, Equatable {
        public var tableSize = 16381
        /// "" means random.
        public var hashSeed = ""
        public init() {}
    }

    public struct SocketLB: Codable, Sendable, Equatable {
        public var enabled = true
        public init() {}
    }

    public struct CGroup: Codable, Sendable, Equatable {
        public var hostRoot = ""
        public init() {}
    }

    public struct HostFirewall: Codable, Sendable, Equatable {
        public var enabled = false
        public init() {}
    }

    public struct Encryption: Codable, Sendable, Equatable {
        public struct WireGuard: Codable, Sendable, Equatable {
            /// Run the device with wireguard-go where the kernel has no WireGuard.
            public var userspaceFallback = false
            /// Seconds between keepalives to each peer; 0 sends none.
            public var persistentKeepalive = 0
            public init() {}
        }
        public struct IPsec: Codable, Sendable, Equatable {
            public var keyFile = "/etc/ipsec/keys"
            /// How long the previous key stays after a rotation (a Go duration, e.g. "5m").
            public var keyRotationDuration = "5m"
            public init() {}
        }
        public struct StrictMode: Codable, Sendable, Equatable {
            public var enabled = false
            /// Pod-to-pod traffic inside this CIDR never leaves the node unencrypted.
            public var cidr = ""
            /// Traffic to other nodes' own addresses may leave unencrypted.
            public var allowRemoteNodeIdentities = false
            public init() {}
        }
        public var enabled = false
        public var type = EncryptionType.wireguard
        public var nodeEncryption = false
        public var wireguard = WireGuard()
        public var ipsec = IPsec()
        public var strictMode = StrictMode()
        public init() {}
    }

    public struct ClusterMesh: Codable, Sendable, Equatable {
        public struct MeshConfig: Codable, Sendable, Equatable {
            public var enabled = false
            /// "" means <agent.stateDir>/clustermesh.
            public var directory = ""
            public init() {}
        }
        public var enabled = false
        public var config = MeshConfig()
        public var maxConnectedClusters = 255
        /// A Go duration; "0s" keeps a lost cluster's state until it is back.
        public var cacheTTL = "0s"
        public var policyDefaultLocalCluster = true
        public init() {}

        /// Either switch turns cluster mesh on (ours, and upstream's `clustermesh.config.enabled`).
        public var on: Bool { enabled || config.enabled }
    }

    public struct Hubble: Codable, Sendable, Equatable {
        public struct Metrics: Codable, Sendable, Equatable {
            public var enabled: [String] = []
            public var port = 9965
            public init() {}
        }
        public struct UI: Codable, Sendable, Equatable {
            public var enabled = false
            public var port = 8081
            public init() {}
        }
        public var enabled = true
        public var eventBufferCapacity = 4095
        public var metrics = Metrics()
        public var ui = UI()
        public init() {}
    }

    public struct Prometheus: Codable, Sendable, Equatable {
        public var enabled = false
        public var port = 9962
        public init() {}
    }

    public struct IPAM: Codable, Sendable, Equatable {
        public struct Operator: Codable, Sendable, Equatable {
            public var clusterPoolIPv4PodCIDRList = ["10.0.0.0/8"]
            public var clusterPoolIPv4MaskSize = 24
            public init() {}
        }
        public var mode = IPAMMode.clusterPool
        public var `operator` = Operator()
        public init() {}
    }

    public struct Etcd: Codable, Sendable, Equatable {
        public struct TLS: Codable, Sendable, Equatable {
            public var caFile = "/var/lib/etcd-secrets/etcd-client-ca.crt"
            public var certFile = "/var/lib/etcd-secrets/etcd-client.crt"
            public var keyFile = "/var/lib/etcd-secrets/etcd-client.key"
            public init() {}
        }
        public var enabled = false
        public var endpoints: [String] = []
        public var ssl = false
        public var tls = TLS()
        public init() {}
    }

    public var cluster = Cluster()
    @Indirect public var agent = Agent()
    public var bpf = BPF()
    public var policyEnforcementMode = PolicyEnforcementMode.default
    public var policyAuditMode = false
    public var kubeProxyReplacement = false
    public var loadBalancer = LoadBalancer()
    public var maglev = Maglev()
    public var socketLB = SocketLB()
    public var cgroup = CGroup()
    public var hostFirewall = HostFirewall()
    @Indirect public var encryption = Encryption()
    @Indirect public var clustermesh = ClusterMesh()
    @Indirect public var hubble = Hubble()
    public var prometheus = Prometheus()
    @Indirect public var ipam = IPAM()
    public var routingMode = RoutingMode.tunnel
    /// Always `.vxlan` after validation: geneve is refused on this kernel.
    public var tunnelProtocol = TunnelProtocol.vxlan
    public var autoDirectNodeRoutes = false
    /// "" means none.
    public var ipv4NativeRoutingCIDR = ""
    public var etcd = Etcd()
    public var devices: [String] = []

    /// All defaults.
    public init() {}

    /// Names of the subsystems this config turns on (see `enabledFlags`).
    public var enabledSubsystems: Set<String> {
        Set(enabledFlags.filter { $0.isEnabled(in: self) }.map(\.subsystem))
    }
}

public enum PolicyEnforcementMode: String, Codable, Sendable, CaseIterable {
    case `default`, always, never
}

public enum LoadBalancerAlgorithm: String, Codable, Sendable, CaseIterable {
    case random, maglev
}

public enum LoadBalancerMode: String, Codable, Sendable, CaseIterable {
    case snat, dsr, hybrid
}

public enum LoadBalancerAcceleration: String, Codable, Sendable, CaseIterable {
    case disabled, native
}

public enum EncryptionType: String, Codable, Sendable, CaseIterable {
    case wireguard, ipsec
}

public enum IPAMMode: String, Codable, Sendable, CaseIterable {
    case clusterPool = "cluster-pool"
}

public enum RoutingMode: String, Codable, Sendable, CaseIterable {
    case tunnel, native
}

public enum TunnelProtocol: String, Codable, Sendable, CaseIterable {
    case vxlan, geneve
}
