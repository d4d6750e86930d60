import Addressing
/// Rules that involve more than one key, as the upstream agent enforces them at startup.
struct CrossCheck: Sendable {
    /// The key the error is reported against.
    let subject: String
    /// The other key involved (its position is used when `subject` was left at its default).
    let other: String
    /// The problem, or nil when the config is fine.
    let problem: @Sendable (AgentConfig) -> String?
}

let crossChecks: [CrossCheck] = [
    CrossCheck(subject: "loadBalancer.mode", other: "routingMode") { config in
        guard config.loadBalancer.mode != .snat, config.routingMode != .native else { return nil }
        return "\(config.loadBalancer.mode.rawValue) needs routingMode native, but routingMode is "
            + "\(config.routingMode.rawValue); set routingMode to native or loadBalancer.mode to snat"
    },
    CrossCheck(subject: "loadBalancer.acceleration", other: "routingMode") { config in
        guard config.loadBalancer.acceleration == .native, config.routingMode != .native else { return nil }
        return "native needs routingMode native (XDP cannot encapsulate), but routingMode is "
            + "\(config.routingMode.rawValue); set routingMode to native or loadBalancer.acceleration to disabled"
    },
    CrossCheck(subject: "autoDirectNodeRoutes", other: "routingMode") { config in
        guard config.autoDirectNodeRoutes, config.routingMode != .native else { return nil }
        return "true needs routingMode native, but routingMode is \(config.routingMode.rawValue); "
            + "set routingMode to native or autoDirectNodeRoutes to false"
    },
    CrossCheck(subject: "ipam.operator.clusterPoolIPv4PodCIDRList", other: "ipam.mode") { config in
        guard config.ipam.mode == .clusterPool, config.ipam.operator.clusterPoolIPv4PodCIDRList.isEmpty else {
            return nil
        }
        return "no CIDR listed; ipam.mode cluster-pool needs at least one, e.g. {10.0.0.0/8}"
    },
    CrossCheck(subject: "ipam.operator.clusterPoolIPv4MaskSize", other: "ipam.operator.clusterPoolIPv4PodCIDRList") {
        config in
        let maskSize = config.ipam.operator.clusterPoolIPv4MaskSize
        for text in config.ipam.operator.clusterPoolIPv4PodCIDRList {
            guard case .success(let cidr) = IPv4Text.prefix(text), cidr.length > maskSize else { continue }
            return "\(maskSize) is shorter than the /\(cidr.length) pool \(text); "
                + "use a mask size of at least \(cidr.length) or a larger pool"
        }
        return nil
    },
    CrossCheck(subject: "etcd.enabled", other: "etcd.endpoints") { config in
        guard config.etcd.enabled, config.etcd.endpoints.isEmpty else { return nil }
        return "true needs at least one entry in etcd.endpoints; list the endpoints or set etcd.enabled to false"
    },
    CrossCheck(subject: "encryption.nodeEncryption", other: "encryption.enabled") { config in
        guard config.encryption.nodeEncryption, !config.encryption.enabled else { return nil }
        return "true needs encryption.enabled true; enable encryption or set encryption.nodeEncryption to false"
    },
    CrossCheck(subject: "encryption.strictMode.enabled", other: "encryption.strictMode.cidr") { config in
        guard config.encryption.enabled, config.encryption.strictMode.enabled, config.encryption.strictMode.cidr.isEmpty else { return nil }
        return "true needs encryption.strictMode.cidr (the pod CIDR to guard, e.g. 10.0.0.0/8); set it or set strictMode.enabled to false"
    },
    CrossCheck(subject: "clustermesh.enabled", other: "cluster.id") { config in
        guard config.clustermesh.on, config.cluster.id == 0 else { return nil }
        return "true needs a non-zero cluster.id; set cluster.id to a number between 1 and \(config.clustermesh.maxConnectedClusters) unique in the mesh"
    },
    CrossCheck(subject: "cluster.id", other: "clustermesh.maxConnectedClusters") { config in
        guard config.cluster.id > config.clustermesh.maxConnectedClusters else { return nil }
        return "\(config.cluster.id) needs clustermesh.maxConnectedClusters 511 (with 255, cluster IDs go from 1 to 255)"
    },
    CrossCheck(subject: "etcd.ssl", other: "etcd.endpoints") { config in
        guard config.etcd.enabled, config.etcd.ssl,
              let plain = config.etcd.endpoints.first(where: { $0.hasPrefix("http://") }) else { return nil }
        return "true but the endpoint \(plain) is http://; write it as https://"
    },
    CrossCheck(subject: "prometheus.port", other: "hubble.metrics.port") { config in
        guard config.prometheus.enabled, config.hubble.enabled, !config.hubble.metrics.enabled.isEmpty,
              config.prometheus.port == config.hubble.metrics.port else { return nil }
        return "\(config.prometheus.port) is also hubble.metrics.port; give the two metrics servers different ports"
    },
]

extension ConfigLoader {
    static func crossCheck(_ values: [String: ProvidedValue]) throws(ConfigError) {
        let config = AgentConfig(values: values.mapValues(\.value))
        for check in crossChecks {
            guard let problem = check.problem(config) else { continue }
            let origin = values[check.subject]?.origin ?? values[check.other]?.origin ?? .none
            throw ConfigError(origin: origin, key: check.subject, problem: problem)
        }
    }
}
