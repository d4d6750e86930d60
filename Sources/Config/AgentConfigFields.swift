/// Reading and writing `AgentConfig` by dotted schema key.
extension AgentConfig {
    /// How one schema key maps onto a stored property.
    struct Field: Sendable {
        let get: @Sendable (AgentConfig) -> ConfigValue
        let set: @Sendable (inout AgentConfig, ConfigValue) -> Void

        static func bool(_ path: WritableKeyPath<AgentConfig, Bool> & Sendable) -> Field {
            Field(get: { .bool($0[keyPath: path]) },
                  set: { if case let .bool(value) = $1 { $0[keyPath: path] = value } })
        }

        static func int(_ path: WritableKeyPath<AgentConfig, Int> & Sendable) -> Field {
            Field(get: { .int($0[keyPath: path]) },
                  set: { if case let .int(value) = $1 { $0[keyPath: path] = value } })
        }

        static func string(_ path: WritableKeyPath<AgentConfig, String> & Sendable) -> Field {
            Field(get: { .string($0[keyPath: path]) },
                  set: { if case let .string(value) = $1 { $0[keyPath: path] = value } })
        }

        static func list(_ path: WritableKeyPath<AgentConfig, [String]> & Sendable) -> Field {
            Field(get: { .list($0[keyPath: path]) },
                  set: { if case let .list(value) = $1 { $0[keyPath: path] = value } })
        }

        static func choice<E: RawRepresentable<String> & Sendable>(
            _ path: WritableKeyPath<AgentConfig, E> & Sendable
        ) -> Field {
            Field(get: { .string($0[keyPath: path].rawValue) },
                  set: { if case let .string(raw) = $1, let value = E(rawValue: raw) { $0[keyPath: path] = value } })
        }
    }

    /// One entry per schema key.
    static let fields: [String: Field] = [
        "cluster.name": .string(\.cluster.name),
        "cluster.id": .int(\.cluster.id),
        "agent.socketPath": .string(\.agent.socketPath),
        "agent.stateDir": .string(\.agent.stateDir),
        "agent.nodeName": .string(\.agent.nodeName),
        "agent.resourceDirectory": .string(\.agent.resourceDirectory),
        "agent.http.maxConnections": .int(\.agent.http.maxConnections),
        "agent.http.headerTimeoutSeconds": .int(\.agent.http.headerTimeoutSeconds),
        "agent.http.idleTimeoutSeconds": .int(\.agent.http.idleTimeoutSeconds),
        "agent.http.maxHeadBytes": .int(\.agent.http.maxHeadBytes),
        "agent.http.maxBodyBytes": .int(\.agent.http.maxBodyBytes),
        "bpf.root": .string(\.bpf.root),
        "bpf.rewriteDeliveryMAC": .bool(\.bpf.rewriteDeliveryMAC),
        "policyEnforcementMode": .choice(\.policyEnforcementMode),
        "policyAuditMode": .bool(\.policyAuditMode),
        "kubeProxyReplacement": .bool(\.kubeProxyReplacement),
        "loadBalancer.algorithm": .choice(\.loadBalancer.algorithm),
        "loadBalancer.mode": .choice(\.loadBalancer.mode),
        "loadBalancer.acceleration": .choice(\.loadBalancer.acceleration),
        "maglev.tableSize": .int(\.maglev.tableSize),
        "maglev.hashSeed": .string(\.maglev.hashSeed),
        "socketLB.enabled": .bool(\.socketLB.enabled),
        "cgroup.hostRoot": .string(\.cgroup.hostRoot),
        "hostFirewall.enabled": .bool(\.hostFirewall.enabled),
        "encryption.enabled": .bool(\.encryption.enabled),
        "encryption.type": .choice(\.encryption.type),
        "encryption.nodeEncryption": .bool(\.encryption.nodeEncryption),
        "encryption.wireguard.userspaceFallback": .bool(\.encryption.wireguard.userspaceFallback),
        "encryption.wireguard.persistentKeepalive": .int(\.encryption.wireguard.persistentKeepalive),
        "encryption.ipsec.keyFile": .string(\.encryption.ipsec.keyFile),
        "encryption.ipsec.keyRotationDuration": .string(\.encryption.ipsec.keyRotationDuration),
        "encryption.strictMode.enabled": .bool(\.encryption.strictMode.enabled),
        "encryption.strictMode.cidr": .string(\.encryption.strictMode.cidr),
        "encryption.strictMode.allowRemoteNodeIdentities": .bool(\.encryption.strictMode.allowRemoteNodeIdentities),
        "clustermesh.enabled": .bool(\.clustermesh.enabled),
        "clustermesh.config.enabled": .bool(\.clustermesh.config.enabled),
        "clustermesh.config.directory": .string(\.clustermesh.config.directory),
        "clustermesh.maxConnectedClusters": .int(\.clustermesh.maxConnectedClusters),
        "clustermesh.cacheTTL": .string(\.clustermesh.cacheTTL),
        "clustermesh.policyDefaultLocalCluster": .bool(\.clustermesh.policyDefaultLocalCluster),
        "hubble.enabled": .bool(\.hubble.enabled),
        "hubble.eventBufferCapacity": .int(\.hubble.eventBufferCapacity),
        "hubble.metrics.enabled": .list(\.hubble.metrics.enabled),
        "hubble.metrics.port": .int(\.hubble.metrics.port),
        "hubble.ui.enabled": .bool(\.hubble.ui.enabled),
        "hubble.ui.port": .int(\.hubble.ui.port),
        "prometheus.enabled": .bool(\.prometheus.enabled),
        "prometheus.port": .int(\.prometheus.port),
        "ipam.mode": .choice(\.ipam.mode),
        "ipam.operator.clusterPoolIPv4PodCIDRList": .list(\.ipam.operator.clusterPoolIPv4PodCIDRList),
        "ipam.operator.clusterPoolIPv4MaskSize": .int(\.ipam.operator.clusterPoolIPv4MaskSize),
        "routingMode": .choice(\.routingMode),
        "tunnelProtocol": .choice(\.tunnelProtocol),
        "autoDirectNodeRoutes": .bool(\.autoDirectNodeRoutes),
        "ipv4NativeRoutingCIDR": .string(\.ipv4NativeRoutingCIDR),
        "etcd.enabled": .bool(\.etcd.enabled),
        "etcd.endpoints": .list(\.etcd.endpoints),
        "etcd.ssl": .bool(\.etcd.ssl),
        "etcd.tls.caFile": .string(\.etcd.tls.caFile),
        "etcd.tls.certFile": .string(\.etcd.tls.certFile),
        "etcd.tls.keyFile": .string(\.etcd.tls.keyFile),
        "devices": .list(\.devices),
    ]

    /// Defaults overlaid with already validated values.
    init(values: [String: ConfigValue]) {
        self.init()
        for (key, value) in values {
            AgentConfig.fields[key]?.set(&self, value)
        }
    }

    /// The effective value of a setting (defaults included).
    public func value(forKey key: String) throws(ConfigError) -> ConfigValue {
        guard let field = AgentConfig.fields[key] else {
            throw ConfigError(origin: .none, problem: schema.notASettingProblem(key))
        }
        return field.get(self)
    }

    /// The effective value of a setting as `--set` text: `true`, `4095`, `vxlan`, `{a,b}`.
    public func get(_ key: String) throws(ConfigError) -> String {
        try value(forKey: key).description
    }

    /// This configuration with one setting replaced, unvalidated: for comparing
    /// configurations (what would a change touch?), never for loading one.
    public func replacing(_ key: String, with value: ConfigValue) throws(ConfigError) -> AgentConfig {
        guard let field = AgentConfig.fields[key] else {
            throw ConfigError(origin: .none, problem: schema.notASettingProblem(key))
        }
        var copy = self
        field.set(&copy, value)
        return copy
    }

    /// Every setting in schema order, defaults included.
    public func flattened() -> [ConfigSetting] {
        schema.keys.compactMap { key in
            AgentConfig.fields[key.path].map { ConfigSetting(key: key.path, value: $0.get(self)) }
        }
    }
}

/// One `key=value` line of `cilium config view`.
public struct ConfigSetting: Sendable, Equatable, CustomStringConvertible {
    public let key: String
    public let value: ConfigValue
    public var description: String { "\(key)=\(value)" }
}
