import Manifests
/// The labels of one identity, ready for selector matching. Every label is
/// held under "source:key" and under "any:key", so a selector key without a
/// source (or with "any:") matches a label of any source.
package struct LabelSet: Sendable, Hashable {
    private(set) var values: [String: [String]] = [:]

    package init(_ labels: [String]) {
        for label in labels {
            let (key, value) = Self.split(label)
            values[key, default: []].append(value)
            let anyKey = "any:" + Self.plainKey(key)
            if anyKey != key { values[anyKey, default: []].append(value) }
        }
    }

    /// "k8s:app=web" -> ("k8s:app", "web"); "reserved:host" -> ("reserved:host", "");
    /// "app=web" -> ("k8s:app", "web") (upstream's default source).
    package static func split(_ label: String) -> (String, String) {
        let parts = label.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        let key = String(parts[0])
        let value = parts.count > 1 ? String(parts[1]) : ""
        return (normalizeLabelKey(key), value)
    }

    package static func plainKey(_ key: String) -> String {
        guard let colon = key.firstIndex(of: ":") else { return key }
        return String(key[key.index(after: colon)...])
    }

    package func values(of selectorKey: String) -> [String]? { values[selectorKey] }

    /// Index terms: "key=value" under every name the label answers to.
    package var terms: [String] { values.flatMap { k, vs in vs.map { k + "=" + $0 } } }
}

/// A label key as labels carry it: with its source, "k8s" by default.
func normalizeLabelKey(_ key: String) -> String {
    key.contains(":") ? key : "k8s:" + key
}

/// A selector key as selectors use it: with its source, "any" by default.
func normalizeSelectorKey(_ key: String) -> String {
    key.contains(":") ? key : "any:" + key
}

extension LabelSelector {
    package static let namespaceKey = "io.kubernetes.pod.namespace"

    /// True when the selector already says which namespace it wants.
    package var mentionsNamespace: Bool {
        matchLabels.keys.contains { LabelSet.plainKey($0) == Self.namespaceKey }
            || matchExpressions.contains { LabelSet.plainKey($0.key) == Self.namespaceKey }
    }

    package static let clusterKey = "io.cilium.k8s.policy.cluster"

    /// The selector restricted to the `cluster` (clustermesh.policyDefaultLocalCluster), unless it names one itself.
    package func scoped(toCluster cluster: String?) -> LabelSelector {
        guard let cluster, !matchLabels.keys.contains(where: { LabelSet.plainKey($0) == Self.clusterKey }),
              !matchExpressions.contains(where: { LabelSet.plainKey($0.key) == Self.clusterKey }) else { return self }
        var s = self
        s.matchLabels["k8s:" + Self.clusterKey] = cluster
        return s
    }

    /// The selector restricted to `namespace` (namespaced policies), unless it names one itself.
    package func scoped(to namespace: String?) -> LabelSelector {
        guard let namespace, !mentionsNamespace else { return self }
        var s = self
        s.matchLabels["k8s:" + Self.namespaceKey] = namespace
        return s
    }

    /// Index terms every match must carry (from matchLabels).
    package var requiredTerms: [String] {
        matchLabels.map { normalizeSelectorKey($0.key) + "=" + $0.value }
    }

    package func matches(_ labels: LabelSet) -> Bool {
        for (k, v) in matchLabels {
            guard labels.values(of: normalizeSelectorKey(k))?.contains(v) == true else { return false }
        }
        for r in matchExpressions {
            let have = labels.values(of: normalizeSelectorKey(r.key))
            switch r.op {
            case .in: guard let have, have.contains(where: r.values.contains) else { return false }
            case .notIn: if let have, have.contains(where: r.values.contains) { return false }
            case .exists: guard have != nil else { return false }
            case .doesNotExist: guard have == nil else { return false }
            }
        }
        return true
    }
}
