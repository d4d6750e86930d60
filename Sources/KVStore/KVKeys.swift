/// Key layout, following upstream Cilium's kvstore paths.
///
/// | what | key | value |
/// |---|---|---|
/// | node | `cilium/state/nodes/v1/<cluster>/<node>` | the node's JSON |
/// | identity by number | `cilium/state/identities/v1/id/<id>` | the label list (below) |
/// | identity by labels | `cilium/state/identities/v1/value/<label list>/` | the number, decimal |
/// | ipcache | `cilium/state/ip/v1/<address space>/<ip or prefix>` | the entry's JSON |
/// | pod CIDR (IPAM range) | `cilium/state/podcidrs/v1/<cluster>/<cidr>` | the owning node |
/// | service | `cilium/state/services/v1/<cluster>/<namespace>/<name>` | the service's JSON |
/// | cluster configuration | `cilium/cluster-config/<cluster>` | its ID and capabilities |
/// | sync canary | `cilium/synced/<cluster>/<prefix>` | when the cluster's records under prefix were all written |
///
/// The values are upstream's shapes (`KVRecords.swift`): `Node`, `IPIdentityPair`, `ClusterService`.
///
/// The label list is upstream's sorted-list form: the labels (`source:key=value`)
/// sorted, duplicates dropped, each followed by `;`, e.g.
/// `k8s:app=web;k8s:io.kubernetes.pod.namespace=default;`. Labels are written
/// as they are (a `/` inside a label stays); Kubernetes label keys and values
/// cannot contain `;`, so the form is unambiguous. The by-labels key ends with
/// `/` so that per-node suffixes (upstream's `.../<node>`) can sit under it.
/// IPs and CIDRs are written as they are (`10.0.1.0/24`): the part after the
/// prefix is the address.
public enum KVKeys {
    public static let root = "cilium/state/"

    public static let nodesPrefix = "cilium/state/nodes/v1/"
    public static func nodes(cluster: String) -> String { "\(nodesPrefix)\(cluster)/" }
    public static func node(cluster: String, name: String) -> String { "\(nodes(cluster: cluster))\(name)" }

    public static let identitiesPrefix = "cilium/state/identities/v1/id/"
    public static let identityValuesPrefix = "cilium/state/identities/v1/value/"
    public static func identity(_ id: Int) -> String { "\(identitiesPrefix)\(id)" }
    public static func identityByLabels(_ labels: [String]) -> String {
        "\(identityValuesPrefix)\(labelList(labels))/"
    }

    public static let ipPrefix = "cilium/state/ip/v1/"
    public static func ips(addressSpace: String = "default") -> String { "\(ipPrefix)\(addressSpace)/" }
    public static func ip(_ address: String, addressSpace: String = "default") -> String {
        "\(ips(addressSpace: addressSpace))\(address)"
    }

    public static let podCIDRsPrefix = "cilium/state/podcidrs/v1/"
    public static func podCIDRs(cluster: String) -> String { "\(podCIDRsPrefix)\(cluster)/" }
    public static func podCIDR(cluster: String, cidr: String) -> String { "\(podCIDRs(cluster: cluster))\(cidr)" }

    public static let servicesPrefix = "cilium/state/services/v1/"
    public static func services(cluster: String) -> String { "\(servicesPrefix)\(cluster)/" }
    public static func service(cluster: String, namespace: String, name: String) -> String {
        "\(services(cluster: cluster))\(namespace)/\(name)"
    }

    public static func clusterConfig(_ cluster: String) -> String { "cilium/cluster-config/\(cluster)" }

    /// The sync canaries a cluster writes once its records under each kind's prefix are complete.
    public static func syncedPrefix(cluster: String) -> String { "cilium/synced/\(cluster)/" }
    public enum Synced: String, CaseIterable, Sendable {
        case nodes = "cilium/state/nodes/v1"
        case services = "cilium/state/services/v1"
        case identities = "cilium/state/identities/v1"
        case ipcache = "cilium/state/ip/v1"
    }
    public static func synced(cluster: String, _ kind: Synced) -> String { syncedPrefix(cluster: cluster) + kind.rawValue }

    /// Labels in sorted-list form: sorted, unique, each followed by `;`.
    public static func labelList(_ labels: [String]) -> String {
        Set(labels).sorted().map { "\($0);" }.joined()
    }

    /// The labels of a sorted-list string.
    public static func labels(fromList list: String) -> [String] {
        list.split(separator: ";", omittingEmptySubsequences: true).map(String.init)
    }

    /// What follows `prefix` in `key`, or nil when `key` is not under it.
    public static func suffix(of key: String, after prefix: String) -> String? {
        key.hasPrefix(prefix) ? String(key.dropFirst(prefix.count)) : nil
    }
}
