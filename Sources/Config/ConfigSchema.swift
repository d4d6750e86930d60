/// The shape of a setting's value.
public enum ConfigValueType: Sendable, Equatable {
    case bool
    /// An integer within the range.
    case int(ClosedRange<Int>)
    /// An integer from a fixed list.
    case intChoice([Int])
    case string
    /// One of the listed strings.
    case enumeration([String])
    case stringList
    /// A list of IPv4 CIDRs (`10.0.0.0/8`), host bits clear.
    case cidrList
}

/// Checks beyond a setting's type.
public enum ConfigConstraint: Sendable, Equatable {
    /// Lowercase RFC 1123 label: a-z, 0-9 and '-', starting and ending alphanumeric.
    case dnsLabel(maxLength: Int)
    /// Starts with "/".
    case absolutePath
    /// An IPv4 CIDR, or "" for none.
    case ipv4CIDROrEmpty
    /// "" or base64 text decoding to exactly this many bytes.
    case base64OrEmpty(bytes: Int)
    /// 2^n-1 (within the int range).
    case powerOfTwoMinusOne
    /// A Go duration of at least one second: "5m", "90s", "1h30m".
    case duration
    /// A Go duration, or 0 ("0s") for none.
    case durationOrZero
    /// An absolute path, or "" for the default.
    case absolutePathOrEmpty
    /// A bool that, as in Cilium's Helm chart, also accepts the strings "true" and "false";
    /// the removed modes "strict", "partial" and "disabled" get a pointed error.
    case helmStringBool
    /// An enumeration value that exists upstream but is refused here, and why.
    case unavailable(value: String, why: String)
}

/// One setting: its dotted Helm-style path, type, default and a one-line doc.
public struct ConfigKey: Sendable, Equatable {
    public let path: String
    public let type: ConfigValueType
    public let defaultValue: ConfigValue
    public let doc: String
    public let constraints: [ConfigConstraint]

    public init(_ path: String, _ type: ConfigValueType, _ defaultValue: ConfigValue, _ doc: String,
                _ constraints: [ConfigConstraint] = []) {
        self.path = path
        self.type = type
        self.defaultValue = defaultValue
        self.doc = doc
        self.constraints = constraints
    }

    public var components: [String] { path.split(separator: ".").map(String.init) }

    /// Values that `type` allows but a constraint refuses.
    var unavailableValues: [(value: String, why: String)] {
        constraints.compactMap {
            if case let .unavailable(value, why) = $0 { return (value, why) }
            return nil
        }
    }

    /// Enumeration values that are actually accepted.
    var availableChoices: [String] {
        guard case let .enumeration(values) = type else { return [] }
        let refused = Set(unavailableValues.map(\.value))
        return values.filter { !refused.contains($0) }
    }

    /// What is allowed, in words, e.g. "an integer between 0 and 255".
    public var allowed: String {
        for constraint in constraints {
            switch constraint {
            case let .dnsLabel(maxLength):
                return "a lowercase DNS label of 1 to \(maxLength) characters (a-z, 0-9 and '-', "
                    + "starting and ending with a letter or digit)"
            case .absolutePath: return "an absolute path"
            case .duration: return "a duration like 5m, 90s or 1h30m (at least 1s)"
            case .durationOrZero: return "a duration like 5m, 90s or 1h30m, or 0s for none"
            case .absolutePathOrEmpty: return "an absolute path, or \"\" for the default"
            case .ipv4CIDROrEmpty: return "an IPv4 CIDR like 10.0.0.0/8, or \"\" for none"
            case let .base64OrEmpty(bytes):
                return "\"\" or \(bytes) bytes in base64 (\((bytes + 2) / 3 * 4) characters)"
            case .powerOfTwoMinusOne:
                if case let .int(range) = type {
                    return "2^n-1 between \(range.lowerBound) and \(range.upperBound) (1, 3, 7, 15, ..., 65535)"
                }
            case .helmStringBool:
                return "true or false (the strings \"true\" and \"false\" are accepted too)"
            case .unavailable:
                break
            }
        }
        switch type {
        case .bool: return "true or false"
        case let .int(range): return "an integer between \(range.lowerBound) and \(range.upperBound)"
        case let .intChoice(values): return oneOf(values.map(String.init))
        case .string: return "a string"
        case .enumeration: return oneOf(availableChoices)
        case .stringList: return "a list of strings"
        case .cidrList: return "a list of IPv4 CIDRs like 10.0.0.0/8"
        }
    }
}

func oneOf(_ items: [String]) -> String {
    items.count == 1 ? items[0] : "one of " + items.joined(separator: ", ")
}

/// The table of every setting, in the order `flattened()` and values.yaml list them.
public struct ConfigSchema: Sendable {
    public let keys: [ConfigKey]
    private let byPath: [String: ConfigKey]
    private let childNames: [String: [String]]

    public init(keys: [ConfigKey]) {
        self.keys = keys
        var byPath: [String: ConfigKey] = [:]
        var childNames: [String: [String]] = [:]
        for key in keys {
            byPath[key.path] = key
            let parts = key.components
            for depth in 0..<parts.count {
                let parent = parts[0..<depth].joined(separator: ".")
                if !(childNames[parent, default: []].contains(parts[depth])) {
                    childNames[parent, default: []].append(parts[depth])
                }
            }
        }
        self.byPath = byPath
        self.childNames = childNames
    }

    /// The setting at a dotted path, if that path is a setting (not a section).
    public func key(_ path: String) -> ConfigKey? { byPath[path] }

    /// Whether the dotted path is a section holding settings ("" is the root).
    public func isSection(_ path: String) -> Bool { byPath[path] == nil && childNames[path] != nil }

    /// Names directly under a section, in schema order ("" is the root).
    public func children(of section: String) -> [String] { childNames[section] ?? [] }

    /// Every setting under a section, in schema order.
    public func keys(under section: String) -> [ConfigKey] {
        section.isEmpty ? keys : keys.filter { $0.path.hasPrefix(section + ".") }
    }
}

let maglevTableSizes = [251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071]

/// Every setting of the node agent, named as in Cilium's Helm values where Cilium has one.
public let schema = ConfigSchema(keys: [
    ConfigKey("cluster.name", .string, .string("default"),
              "Name of the cluster; must be unique within a cluster mesh.", [.dnsLabel(maxLength: 32)]),
    ConfigKey("cluster.id", .int(0...511), .int(0),
              "ID of the cluster, unique within a cluster mesh (0 is only for clusters outside a mesh); "
              + "above 255 needs clustermesh.maxConnectedClusters 511."),

    ConfigKey("agent.socketPath", .string, .string("/var/run/cilium/cilium.sock"),
              "Unix socket the agent serves its API on.", [.absolutePath]),
    ConfigKey("agent.stateDir", .string, .string("/var/lib/cilium"),
              "Directory where the agent keeps state across restarts.", [.absolutePath]),
    ConfigKey("agent.nodeName", .string, .string(""),
              "Name of this node; \"\" uses the hostname."),
    ConfigKey("agent.resourceDirectory", .string, .string(""),
              "Directory of Kubernetes manifests (Pod, ...) the agent reads; \"\" for none."),
    ConfigKey("agent.http.maxConnections", .int(16...1_000_000), .int(8192),
              "Open connections per HTTP listener (API socket, Prometheus ports, service map page). At the cap a new connection closes the one that has waited longest without a whole request; when all are busy it gets 503."),
    ConfigKey("agent.http.headerTimeoutSeconds", .int(1...3600), .int(10),
              "Seconds a request head may take from its first byte (then 408 and the connection closes)."),
    ConfigKey("agent.http.idleTimeoutSeconds", .int(1...86400), .int(120),
              "Seconds a connection may wait without a request, a request body may stall, or a client may leave a response unread, before it is closed."),
    ConfigKey("agent.http.maxHeadBytes", .int(4096...1_048_576), .int(65536),
              "Largest request head (request line and header fields) in bytes (else 431)."),
    ConfigKey("agent.http.maxBodyBytes", .int(65536...1_073_741_824), .int(16_777_216),
              "Largest request body in bytes (else 413)."),

    ConfigKey("bpf.root", .string, .string("/sys/fs/bpf/cilium"),
              "bpffs directory where this agent pins its maps and programs.", [.absolutePath]),
    ConfigKey("bpf.rewriteDeliveryMAC", .bool, .bool(false),
              "Rewrite the Ethernet header of packets put straight into a pod (bpf_redirect_peer) to the pod's MAC and its gateway's. The pod accepts them either way; the rewrite copies the header of every TCP segment (about 4% of pod-to-pod throughput)."),

    ConfigKey("policyEnforcementMode", .enumeration(PolicyEnforcementMode.allCases.map(\.rawValue)),
              .string("default"),
              "default: enforce on endpoints selected by a policy; always: deny unless allowed; never: no policy."),
    ConfigKey("policyAuditMode", .bool, .bool(false),
              "Log policy verdicts that would drop traffic instead of dropping it."),

    ConfigKey("kubeProxyReplacement", .bool, .bool(false),
              "Replace kube-proxy: serve Services (ClusterIP, NodePort, LoadBalancer) in eBPF.", [.helmStringBool]),

    ConfigKey("loadBalancer.algorithm", .enumeration(LoadBalancerAlgorithm.allCases.map(\.rawValue)),
              .string("random"), "How a Service backend is picked: random, or maglev consistent hashing."),
    ConfigKey("loadBalancer.mode", .enumeration(LoadBalancerMode.allCases.map(\.rawValue)), .string("snat"),
              "How NodePort traffic reaches remote backends: snat, dsr (direct server return) or hybrid "
              + "(dsr for TCP, snat for UDP); dsr and hybrid need routingMode native."),
    ConfigKey("loadBalancer.acceleration", .enumeration(LoadBalancerAcceleration.allCases.map(\.rawValue)),
              .string("disabled"), "XDP acceleration of the load balancer: disabled, or native (driver XDP on `devices`; needs routingMode native)."),

    ConfigKey("maglev.tableSize", .intChoice(maglevTableSizes), .int(16381),
              "Maglev lookup table size per Service (a prime); larger tables disrupt less on backend changes."),
    ConfigKey("maglev.hashSeed", .string, .string(""),
              "Seed for Maglev hashing, identical on all nodes; \"\" derives one from cluster.name (the same on every node of the cluster).",
              [.base64OrEmpty(bytes: 12)]),

    ConfigKey("socketLB.enabled", .bool, .bool(true),
              "With kubeProxyReplacement: translate a service address once, when a socket connects or sends (cgroup hooks), instead of per packet."),
    ConfigKey("cgroup.hostRoot", .string, .string(""),
              "cgroup v2 directory whose processes the socket LB serves; \"\" is the cgroup2 mount (every process of the node)."),

    ConfigKey("hostFirewall.enabled", .bool, .bool(false),
              "Enforce host policies (CiliumClusterwideNetworkPolicy nodeSelector) on the node's own traffic."),

    ConfigKey("encryption.enabled", .bool, .bool(false), "Encrypt pod-to-pod traffic between nodes."),
    ConfigKey("encryption.type", .enumeration(EncryptionType.allCases.map(\.rawValue)), .string("wireguard"),
              "Encryption used when encryption.enabled is true."),
    ConfigKey("encryption.nodeEncryption", .bool, .bool(false),
              "Also encrypt node-to-node (host) traffic; needs encryption.enabled."),
    ConfigKey("encryption.wireguard.userspaceFallback", .bool, .bool(false),
              "Where the kernel has no WireGuard, run cilium_wg0 with wireguard-go (a process of its own that outlives the agent)."),
    ConfigKey("encryption.wireguard.persistentKeepalive", .int(0...65535), .int(0),
              "Seconds between WireGuard keepalives to each peer; 0 sends none."),
    ConfigKey("encryption.ipsec.keyFile", .string, .string("/etc/ipsec/keys"),
              "IPsec key file (upstream's format: `<spi>[+] rfc4106(gcm(aes)) <key> <icv>`); a new SPI there rotates the keys.",
              [.absolutePath]),
    ConfigKey("encryption.ipsec.keyRotationDuration", .string, .string("5m"),
              "How long the previous IPsec key stays after a rotation (peers may still use it).", [.duration]),
    ConfigKey("encryption.strictMode.enabled", .bool, .bool(false),
              "Drop pod-to-pod traffic inside encryption.strictMode.cidr that would leave the node unencrypted (a peer not yet known)."),
    ConfigKey("encryption.strictMode.cidr", .string, .string(""),
              "The CIDR strict mode guards (usually the cluster's pod CIDR); required with strictMode.enabled.", [.ipv4CIDROrEmpty]),
    ConfigKey("encryption.strictMode.allowRemoteNodeIdentities", .bool, .bool(false),
              "In strict mode, let traffic to other nodes' own addresses leave unencrypted."),

    ConfigKey("clustermesh.enabled", .bool, .bool(false),
              "Join a cluster mesh: publish this cluster for others and connect to the remote clusters of "
              + "clustermesh.config.directory; needs a non-zero cluster.id."),
    ConfigKey("clustermesh.config.enabled", .bool, .bool(false),
              "Upstream's name for the same switch: either one turns cluster mesh on."),
    ConfigKey("clustermesh.config.directory", .string, .string(""),
              "Upstream's clustermesh-config directory: one etcd config file per remote cluster, named after it "
              + "(endpoints, trusted-ca-file, cert-file, key-file); \"\" means <agent.stateDir>/clustermesh. Watched: "
              + "a file added or removed connects or disconnects that cluster.", [.absolutePathOrEmpty]),
    ConfigKey("clustermesh.maxConnectedClusters", .intChoice([255, 511]), .int(255),
              "How many clusters a mesh can hold: 255 (cluster ID in identity bits 16-23) or 511 (bits 15-23); "
              + "the same on every cluster of the mesh."),
    ConfigKey("clustermesh.cacheTTL", .string, .string("0s"),
              "How long a remote cluster's state stays in force after its etcd is lost; 0s keeps it until it is back.",
              [.durationOrZero]),
    ConfigKey("clustermesh.policyDefaultLocalCluster", .bool, .bool(true),
              "A policy selector without io.cilium.k8s.policy.cluster selects the local cluster's endpoints only."),

    ConfigKey("hubble.enabled", .bool, .bool(true), "Record flow events for Hubble observability."),
    ConfigKey("hubble.eventBufferCapacity", .int(1...65535), .int(4095),
              "Number of flows kept in the ring buffer.", [.powerOfTwoMinusOne]),
    ConfigKey("hubble.metrics.enabled", .stringList, .list([]),
              "Hubble metrics to export, e.g. [dns, drop, tcp, flow]; empty disables the metrics server."),
    ConfigKey("hubble.metrics.port", .int(1...65535), .int(9965), "TCP port of the Hubble metrics server."),
    ConfigKey("hubble.ui.enabled", .bool, .bool(false), "Serve the service map page (live flows between workloads) on hubble.ui.port."),
    ConfigKey("hubble.ui.port", .int(1...65535), .int(8081), "TCP port of the service map page (upstream's hubble-ui listens on 8081)."),

    ConfigKey("prometheus.enabled", .bool, .bool(false), "Serve the agent's Prometheus metrics."),
    ConfigKey("prometheus.port", .int(1...65535), .int(9962), "TCP port of the agent's Prometheus metrics."),

    ConfigKey("ipam.mode", .enumeration(IPAMMode.allCases.map(\.rawValue)), .string("cluster-pool"),
              "IP address management mode."),
    ConfigKey("ipam.operator.clusterPoolIPv4PodCIDRList", .cidrList, .list(["10.0.0.0/8"]),
              "IPv4 CIDRs that per-node pod CIDRs are carved from; at least one."),
    ConfigKey("ipam.operator.clusterPoolIPv4MaskSize", .int(16...30), .int(24),
              "Prefix length of each node's pod CIDR; not shorter than any pool CIDR's prefix."),

    ConfigKey("routingMode", .enumeration(RoutingMode.allCases.map(\.rawValue)), .string("tunnel"),
              "tunnel: encapsulate pod traffic between nodes; native: route it with the host's routing table."),
    ConfigKey("tunnelProtocol", .enumeration(TunnelProtocol.allCases.map(\.rawValue)), .string("vxlan"),
              "Encapsulation used when routingMode is tunnel.",
              [.unavailable(value: "geneve", why: "not available on this kernel (no geneve module)")]),
    ConfigKey("autoDirectNodeRoutes", .bool, .bool(false),
              "Install routes to other nodes' pod CIDRs directly (nodes share an L2 network); "
              + "needs routingMode native."),
    ConfigKey("ipv4NativeRoutingCIDR", .string, .string(""),
              "CIDR in which pod traffic is routed natively and not masqueraded; \"\" for none.",
              [.ipv4CIDROrEmpty]),

    ConfigKey("etcd.enabled", .bool, .bool(false), "Use an external etcd as the key-value store."),
    ConfigKey("etcd.endpoints", .stringList, .list([]),
              "etcd endpoints, e.g. [https://etcd-0:2379]; needed when etcd.enabled is true."),
    ConfigKey("etcd.ssl", .bool, .bool(false),
              "Speak TLS to etcd (https endpoints) with the CA, client certificate and key below."),
    ConfigKey("etcd.tls.caFile", .string, .string("/var/lib/etcd-secrets/etcd-client-ca.crt"),
              "CA bundle that etcd's server certificate must chain to.", [.absolutePath]),
    ConfigKey("etcd.tls.certFile", .string, .string("/var/lib/etcd-secrets/etcd-client.crt"),
              "Client certificate presented to etcd (mTLS).", [.absolutePath]),
    ConfigKey("etcd.tls.keyFile", .string, .string("/var/lib/etcd-secrets/etcd-client.key"),
              "Private key of the client certificate.", [.absolutePath]),

    ConfigKey("devices", .stringList, .list([]),
              "Network devices whose traffic passes the datapath (the node's address is the first one's); empty for none."),
])
