import Diagnostics
import Addressing
import Foundation
import Glibc
import ManifestYAML
import Yams

/// Reads CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy text (`cilium.io/v2`) into `Policy` values.
///
/// Accepted shapes: one object, several `---`-separated documents, a top-level list of objects, or a
/// `kind: List` (as `kubectl get -o yaml` prints) with `items`. JSON is read as the YAML it is.
///
/// The parser is strict: an unknown field, a value of the wrong type, an invalid CIDR or port, or a
/// field that upstream accepts but this agent does not enforce yet (L7 rules, FQDNs, services, ...) is
/// an error. Every error carries the 1-based line and column of the offending node.
///
/// A YAML `null` (`key:` with nothing after it) reads as if the key were absent, as upstream's JSON
/// decoding does. Rules are kept as written: `ingress: [{}]` is a `PeerRule` with every field empty,
/// `fromEndpoints: []` an empty (non-nil) list; what they mean is the resolver's business.
public enum PolicyParser {
    /// Parses CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy documents (YAML or JSON — JSON is YAML),
    /// one document or many (`---` separated), or a top-level list of such objects, or a `kind: List` with `items`.
    public static func parse(_ text: String, file: String) throws(PolicyError) -> [Policy] {
        try read(text, file: file).policies
    }

    /// The same, with what else the file held: `CiliumCIDRGroup`s (read: `cidrGroupRef` names them)
    /// and other objects (`kubectl apply -f` files mix kinds), which are skipped and named.
    public static func read(_ text: String, file: String) throws(PolicyError) -> PolicyFile {
        let reader = PolicyReader(file: file, text: text)
        let policies = try reader.readAll()
        return PolicyFile(policies: policies, cidrGroups: reader.found.groups, skipped: reader.found.skipped)
    }
}

/// What one policy file held.
public struct PolicyFile: Sendable {
    public var policies: [Policy]
    /// CiliumCIDRGroup name -> its CIDRs, as written.
    public var cidrGroups: [String: [String]]
    /// "KIND NAME" of each object that is neither a policy nor a CIDR group.
    public var skipped: [String]

    /// The error for a file with no policy in it (`validate`, `import`).
    public static func nothingToImport(_ file: String, skipped: [String]) -> String {
        skipped.isEmpty
            ? "\(file):1:1: no policy in it (empty, null or only comments); a policy has apiVersion, kind, metadata.name and spec"
            : "\(file):1:1: no policy in it, only other objects (skipped: \(skipped.joined(separator: ", "))); "
                + "this agent reads CiliumNetworkPolicy and CiliumClusterwideNetworkPolicy"
    }
}

// MARK: - Field tables

/// Field names per level, and what to say about fields upstream accepts but this agent does not enforce.
private enum PolicyFields {
    static let apiVersion = "cilium.io/v2"
    static let topLevel = ["apiVersion", "kind", "metadata", "spec", "specs"]
    static let metadata = ["name", "namespace", "labels"]
    /// The rest of Kubernetes' ObjectMeta: accepted, not used.
    static let otherMetadata = ["annotations", "uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
                                "deletionGracePeriodSeconds", "generateName", "ownerReferences", "finalizers", "managedFields", "selfLink"]
    static let list = ["apiVersion", "kind", "metadata", "items"]
    static let rule = ["endpointSelector", "ingress", "ingressDeny", "egress", "egressDeny",
                       "enableDefaultDeny", "labels", "description"]
    static let ruleUnsupported: KeyValuePairs<String, String> = [
        "nodeSelector": "nodeSelector (host policies) is not supported yet: it comes with the HostFirewall subsystem",
        "log": notYet("log", "policy log values come with Hubble"),
    ]
    static let selector = ["matchLabels", "matchExpressions"]
    static let requirement = ["key", "operator", "values"]
    static let defaultDeny = ["ingress", "egress"]
    static let ruleLabel = ["key", "value", "source"]
    static let ingress = ["fromEndpoints", "fromEntities", "fromCIDR", "fromCIDRSet", "toPorts", "icmps"]
    static let egress = ["toEndpoints", "toEntities", "toCIDR", "toCIDRSet", "toPorts", "icmps"]
    static let ingressDenyUnsupported: KeyValuePairs<String, String> = [
        "fromRequires": notYet("fromRequires", "add the required labels to each fromEndpoints selector instead"),
        "fromNodes": notYet("fromNodes", "node selectors come with the HostFirewall subsystem; "
            + "fromEntities [host, remote-node] selects nodes as a whole"),
        "fromGroups": notYet("fromGroups", "cloud provider groups are not integrated; list their CIDRs in fromCIDR"),
    ]
    static let ingressUnsupported: KeyValuePairs<String, String> = [
        "fromRequires": notYet("fromRequires", "add the required labels to each fromEndpoints selector instead"),
        "fromNodes": notYet("fromNodes", "node selectors come with the HostFirewall subsystem; "
            + "fromEntities [host, remote-node] selects nodes as a whole"),
        "fromGroups": notYet("fromGroups", "cloud provider groups are not integrated; list their CIDRs in fromCIDR"),
        "authentication": notYet("authentication", "mutual authentication is not built"),
    ]
    static let egressDenyUnsupported: KeyValuePairs<String, String> = [
        "toRequires": notYet("toRequires", "add the required labels to each toEndpoints selector instead"),
        "toNodes": notYet("toNodes", "node selectors come with the HostFirewall subsystem; "
            + "toEntities [host, remote-node] selects nodes as a whole"),
        "toGroups": notYet("toGroups", "cloud provider groups are not integrated; list their CIDRs in toCIDR"),
        "toServices": notYet("toServices", "select the service's backends with toEndpoints instead"),
    ]
    static let egressUnsupported: KeyValuePairs<String, String> = [
        "toRequires": notYet("toRequires", "add the required labels to each toEndpoints selector instead"),
        "toNodes": notYet("toNodes", "node selectors come with the HostFirewall subsystem; "
            + "toEntities [host, remote-node] selects nodes as a whole"),
        "toGroups": notYet("toGroups", "cloud provider groups are not integrated; list their CIDRs in toCIDR"),
        "toServices": notYet("toServices", "select the service's backends with toEndpoints instead"),
        "toFQDNs": notYet("toFQDNs", "FQDN policy comes with its own issue"),
        "authentication": notYet("authentication", "mutual authentication is not built"),
    ]
    static let portRule = ["ports"]
    static let portRuleUnsupported: KeyValuePairs<String, String> = [
        "rules": "", // answered by the L7 check, which names the protocol
        "serverNames": notYet("serverNames", "SNI matching needs the L7 proxy: L4 enforcement only"),
        "originatingTLS": notYet("originatingTLS", "TLS origination needs the L7 proxy: L4 enforcement only"),
        "terminatingTLS": notYet("terminatingTLS", "TLS termination needs the L7 proxy: L4 enforcement only"),
        "listener": notYet("listener", "Envoy listeners need the L7 proxy: L4 enforcement only"),
    ]
    static let l7 = ["http", "kafka", "dns", "l7proto", "l7"]
    static let portProtocol = ["port", "endPort", "protocol"]
    static let cidrRule = ["cidr", "cidrGroupRef", "cidrGroupSelector", "except"]
    static let cidrRuleUnsupported: KeyValuePairs<String, String> = [:]
    static let icmpRule = ["fields"]
    static let icmpField = ["type", "family"]

    static let entities = PolicyEntity.allCases.map(\.rawValue)

    static func notYet(_ field: String, _ why: String) -> String {
        "\(field) is valid in cilium.io/v2 but not supported yet by this agent (\(why))"
    }

    /// ICMP type names upstream accepts (IANA numbers), per family.
    static let icmpV4: KeyValuePairs<String, UInt8> = [
        "EchoReply": 0, "DestinationUnreachable": 3, "Redirect": 5, "Echo": 8, "EchoRequest": 8,
        "RouterAdvertisement": 9, "RouterSelection": 10, "TimeExceeded": 11, "ParameterProblem": 12,
        "Timestamp": 13, "TimestampReply": 14, "Photuris": 40, "ExtendedEchoRequest": 42, "ExtendedEchoReply": 43,
    ]
    static let icmpV6: KeyValuePairs<String, UInt8> = [
        "DestinationUnreachable": 1, "PacketTooBig": 2, "TimeExceeded": 3, "ParameterProblem": 4,
        "EchoRequest": 128, "EchoReply": 129, "MulticastListenerQuery": 130, "MulticastListenerReport": 131,
        "MulticastListenerDone": 132, "RouterSolicitation": 133, "RouterAdvertisement": 134,
        "NeighborSolicitation": 135, "NeighborAdvertisement": 136, "RedirectMessage": 137, "RouterRenumbering": 138,
        "ICMPNodeInformationQuery": 139, "ICMPNodeInformationResponse": 140,
        "InverseNeighborDiscoverySolicitation": 141, "InverseNeighborDiscoveryAdvertisement": 142,
        "HomeAgentAddressDiscoveryRequest": 144, "HomeAgentAddressDiscoveryReply": 145,
        "MobilePrefixSolicitation": 146, "MobilePrefixAdvertisement": 147,
        "DuplicateAddressRequestCodeSuffix": 157, "DuplicateAddressConfirmationCodeSuffix": 158,
        "ExtendedEchoRequest": 160, "ExtendedEchoReply": 161,
    ]
}

private extension KeyValuePairs where Key == String {
    subscript(name: String) -> Value? { first { $0.key == name }?.value }
    var names: [String] { map(\.key) }
}

// MARK: - Reader

private typealias Fields = YAMLFields

private enum Direction {
    case ingress, egress

    var peerPrefix: String { self == .ingress ? "from" : "to" }
}

/// What a reading found besides policies (a class: the reader's methods do not mutate it).
private final class Found {
    var groups: [String: [String]] = [:]
    /// Each group's metadata.labels (what `cidrGroupSelector` matches).
    var groupLabels: [String: [String: String]] = [:]
    var skipped: [String] = []
}

private struct PolicyReader {
    let file: String
    let text: String
    let found = Found()

    func readAll() throws(PolicyError) -> [Policy] {
        try source.checkDocumentSizes()
        let parser: Parser
        do {
            parser = try Parser(yaml: text, resolver: .default, constructor: .default, encoding: .utf8)
        } catch {
            throw yamlError(error)
        }
        var roots: [Node] = []
        while true {
            let root: Node?
            do {
                root = try parser.nextRoot()
            } catch {
                throw yamlError(error)
            }
            guard let root else { break }
            if let at = root.beyondExpansionBudget() { throw fail(at, Node.expansionProblem) }
            roots.append(root)
        }
        // CIDR groups first: a policy may name a group written after it.
        for root in roots { try collectGroups(root, path: "") }
        var policies: [Policy] = []
        for root in roots { policies += try document(root) }
        return policies
    }

    // MARK: CIDR groups

    private static func kind(of node: Node) -> String? {
        guard case .mapping(let mapping) = node else { return nil }
        return mapping.first { $0.key.scalar?.string == "kind" }?.value.scalar?.string
    }

    private func collectGroups(_ node: Node, path: String) throws(PolicyError) {
        switch node {
        case .sequence(let sequence):
            for (index, element) in sequence.enumerated() { try collectGroups(element, path: "\(path)[\(index)]") }
        case .mapping(let mapping):
            switch Self.kind(of: node) {
            case "CiliumCIDRGroup":
                try cidrGroup(node, path: path)
            case "List":
                if let items = mapping.first(where: { $0.key.scalar?.string == "items" })?.value {
                    try collectGroups(items, path: join(path, "items"))
                }
            default:
                break
            }
        default:
            break
        }
    }

    /// `CiliumCIDRGroup` (cilium.io/v2alpha1 or v2): metadata.name and spec.externalCIDRs.
    private func cidrGroup(_ node: Node, path: String) throws(PolicyError) {
        let fields = try self.fields(node, path: path, what: "a CiliumCIDRGroup")
        var name: String?
        var cidrs: [String] = []
        var labels: [String: String] = [:]
        for entry in fields.entries {
            let fieldPath = join(path, entry.name)
            switch entry.name {
            case "apiVersion":
                let version = try string(entry.value, path: fieldPath, what: "an API version")
                guard ["cilium.io/v2alpha1", "cilium.io/v2"].contains(version) else {
                    throw fail(entry.value, "\(fieldPath): \(version) is not an API version of CiliumCIDRGroup; expected cilium.io/v2alpha1 or cilium.io/v2")
                }
            case "kind", "status":
                break
            case "metadata":
                let meta = try self.fields(entry.value, path: fieldPath, what: "a mapping with name")
                for field in meta.entries {
                    if field.name == "name" {
                        name = try string(field.value, path: join(fieldPath, "name"), what: "a name")
                    } else if field.name == "labels" {
                        if isNull(field.value) { continue }
                        for (key, value) in try labelMap(field.value, path: join(fieldPath, "labels")) { labels[key] = value }
                    } else if !(PolicyFields.metadata + PolicyFields.otherMetadata).contains(field.name) {
                        throw unknownField(field, in: fieldPath, allowed: PolicyFields.metadata)
                    }
                }
            case "spec":
                let spec = try self.fields(entry.value, path: fieldPath, what: "a mapping with externalCIDRs")
                for field in spec.entries {
                    guard field.name == "externalCIDRs" else {
                        throw unknownField(field, in: fieldPath, allowed: ["externalCIDRs"])
                    }
                    if isNull(field.value) { continue }
                    for (index, item) in try list(field.value, path: join(fieldPath, "externalCIDRs"), of: "CIDRs").enumerated() {
                        switch try cidr(item, path: "\(join(fieldPath, "externalCIDRs"))[\(index)]", bareAddressAllowed: false) {
                        case .v4(let prefix): cidrs.append(prefix.description)
                        case .v6(let text): cidrs.append(text)
                        }
                    }
                }
            default:
                throw unknownField(entry, in: path, allowed: ["apiVersion", "kind", "metadata", "spec"])
            }
        }
        guard let name else { throw fail(node, "\(at(path))metadata.name is required for a CiliumCIDRGroup") }
        found.groups[name] = cidrs
        found.groupLabels[name] = labels
    }

    // MARK: Documents and objects

    private func document(_ root: Node) throws(PolicyError) -> [Policy] {
        switch root {
        case .mapping:
            return try object(root, path: "")
        case .sequence(let sequence):
            if Self.isNativeRuleList(sequence) { return [try nativeRules(root)] }
            var policies: [Policy] = []
            for (index, element) in sequence.enumerated() {
                policies += try object(element, path: "[\(index)]")
            }
            return policies
        default:
            if isNull(root) { return [] } // an empty document (comments only, a trailing ---)
            throw fail(root, "expected a CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy object, "
                + "got \(describe(root))")
        }
    }

    // MARK: Native rule lists

    /// Upstream's own policy format (what `cilium-dbg policy import` reads): a JSON array of rules,
    /// no kind, no metadata. Recognized when no element has a kind and one has a selector.
    static func isNativeRuleList(_ sequence: Node.Sequence) -> Bool {
        func keys(_ node: Node) -> [String] {
            guard case .mapping(let mapping) = node else { return [] }
            return mapping.compactMap { $0.key.scalar?.string.lowercased() }
        }
        let all = sequence.map(keys)
        return !sequence.isEmpty && all.allSatisfy { !$0.isEmpty && !$0.contains("kind") }
            && all.contains { $0.contains("endpointselector") || $0.contains("nodeselector") }
    }

    /// A native rule list as one policy with no namespace (upstream's native rules are not
    /// namespaced unless their selectors say so), named by the rules' `io.cilium.k8s.policy.name`
    /// label or else by the file. Field names match without regard to case, as upstream's JSON
    /// decoding matches them ("HTTP" and "http").
    private func nativeRules(_ root: Node) throws(PolicyError) -> Policy {
        guard case .sequence(let rules) = Self.canonicalKeys(root) else { return Policy(kind: .clusterwide, name: "", namespace: nil, specs: []) }
        var specs: [PolicySpec] = []
        for (index, element) in rules.enumerated() {
            specs.append(try rule(element, path: "[\(index)]", anchor: element))
        }
        let labelled = specs.lazy.flatMap(\.labels).first { $0.contains("io.cilium.k8s.policy.name=") }
        let fromLabel = labelled.flatMap { $0.split(separator: "=", maxSplits: 1).dropFirst().first.map(String.init) }
        return Policy(kind: .clusterwide, name: fromLabel ?? Self.name(fromFile: file), namespace: nil, specs: specs)
    }

    /// A policy name from a file name: "allow-dns.json" is allow-dns.
    static func name(fromFile file: String) -> String {
        let base = file.split(separator: "/").last.map(String.init) ?? file
        let stem = base.split(separator: ".").first.map(String.init) ?? base
        let cleaned = String(stem.lowercased().map { $0.isLetter || $0.isNumber || $0 == "-" ? $0 : "-" })
            .trimmingCharacters(in: CharacterSet(charactersIn: "-"))
        return cleaned.isEmpty ? "native-rules" : String(cleaned.prefix(253))
    }

    /// Every field name the reader knows, by its lowercased form.
    static let canonicalNames: [String: String] = {
        let all = PolicyFields.topLevel + PolicyFields.metadata + PolicyFields.rule + PolicyFields.ruleUnsupported.names
            + PolicyFields.selector + PolicyFields.requirement + PolicyFields.defaultDeny + PolicyFields.ruleLabel
            + PolicyFields.ingress + PolicyFields.egress + PolicyFields.ingressUnsupported.names + PolicyFields.egressUnsupported.names
            + PolicyFields.ingressDenyUnsupported.names + PolicyFields.egressDenyUnsupported.names
            + PolicyFields.portRule + PolicyFields.portRuleUnsupported.names + PolicyFields.l7 + PolicyFields.portProtocol
            + PolicyFields.cidrRule + PolicyFields.cidrRuleUnsupported.names + PolicyFields.icmpRule + PolicyFields.icmpField
        return Dictionary(all.map { ($0.lowercased(), $0) }, uniquingKeysWith: { first, _ in first })
    }()

    /// `node` with every known field name spelled as the reader spells it; label keys (the
    /// mapping under matchLabels) are left as written.
    static func canonicalKeys(_ node: Node, labelKeys: Bool = false) -> Node {
        switch node {
        case .mapping(let mapping):
            var pairs: [(Node, Node)] = []
            for (key, value) in mapping {
                var newKey = key
                if !labelKeys, case .scalar(var scalar) = key, let canonical = canonicalNames[scalar.string.lowercased()] {
                    scalar.string = canonical
                    newKey = .scalar(scalar)
                }
                pairs.append((newKey, canonicalKeys(value, labelKeys: newKey.scalar?.string == "matchLabels")))
            }
            return .mapping(Node.Mapping(pairs, mapping.tag, mapping.style, mapping.mark))
        case .sequence(let sequence):
            return .sequence(Node.Sequence(sequence.map { canonicalKeys($0) }, sequence.tag, sequence.style, sequence.mark))
        default:
            return node
        }
    }

    /// One object: a policy, or a list kind holding policies.
    private func object(_ node: Node, path: String) throws(PolicyError) -> [Policy] {
        let fields = try self.fields(node, path: path,
                                     what: "a CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy object")
        guard let kindEntry = fields.entry("kind"), !isNull(kindEntry.value) else {
            throw fail(node, "\(at(path))kind is required: CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy")
        }
        let kindName = try string(kindEntry.value, path: join(path, "kind"), what: "a kind name")
        switch kindName {
        case "List", "CiliumNetworkPolicyList", "CiliumClusterwideNetworkPolicyList":
            return try list(fields, kindName: kindName)
        default:
            if kindName == "CiliumCIDRGroup" { return [] }  // read before the policies
            guard let kind = PolicyKind(rawValue: kindName) else {
                // A near-miss of a policy kind is a typo, not another object.
                if let near = ManifestText.suggestion(for: kindName, among: [PolicyKind.namespaced.rawValue,
                                                                            PolicyKind.clusterwide.rawValue]) {
                    throw fail(kindEntry.value, "\(at(path))kind: \(kindName) is not supported; expected "
                        + "CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy; did you mean \(near)?")
                }
                // Another object of a kubectl-apply file (a NetworkPolicy, an envoy config, ...): named, skipped.
                let name = fields.entry("metadata").flatMap { meta -> String? in
                    guard case .mapping(let m) = meta.value else { return nil }
                    return m.first { $0.key.scalar?.string == "name" }?.value.scalar?.string
                }
                found.skipped.append("\(kindName) \(name ?? "(no name)")")
                return []
            }
            return [try policy(fields, kind: kind)]
        }
    }

    private func list(_ fields: Fields, kindName: String) throws(PolicyError) -> [Policy] {
        var policies: [Policy] = []
        for entry in fields.entries {
            let path = join(fields.path, entry.name)
            switch entry.name {
            case "apiVersion":
                let version = try string(entry.value, path: path, what: "an API version")
                let allowed = kindName == "List" ? ["v1", PolicyFields.apiVersion] : [PolicyFields.apiVersion]
                guard allowed.contains(version) else {
                    throw fail(entry.value, "\(path): \(version) is not an API version of kind \(kindName); "
                        + "expected \(allowed.joined(separator: " or "))")
                }
            case "kind", "metadata":
                break
            case "items":
                if isNull(entry.value) { continue }
                for (index, item) in try list(entry.value, path: path, of: "policy objects").enumerated() {
                    policies += try object(item, path: "\(path)[\(index)]")
                }
            default:
                throw unknownField(entry, in: fields.path, allowed: PolicyFields.list)
            }
        }
        return policies
    }

    private func policy(_ fields: Fields, kind: PolicyKind) throws(PolicyError) -> Policy {
        let path = fields.path
        guard let versionEntry = fields.entry("apiVersion"), !isNull(versionEntry.value) else {
            throw fail(fields.node, "\(at(path))apiVersion is required; write apiVersion: \(PolicyFields.apiVersion)")
        }
        let version = try string(versionEntry.value, path: join(path, "apiVersion"), what: "an API version")
        guard version == PolicyFields.apiVersion else {
            throw fail(versionEntry.value, "\(at(path))apiVersion: \(version) is not supported; "
                + "\(kind.rawValue) is read as \(PolicyFields.apiVersion) only")
        }

        var metadata: (name: String, namespace: String?, labels: [String])?
        var specs: [PolicySpec] = []
        var extraSpecs: [PolicySpec] = []
        var sawSpecs = false
        for entry in fields.entries {
            let fieldPath = join(path, entry.name)
            switch entry.name {
            case "apiVersion", "kind", "status":
                break // checked above; status is the cluster's, not the author's
            case "metadata":
                metadata = try self.metadata(entry, path: fieldPath, kind: kind)
            case "spec":
                if isNull(entry.value) { continue }
                if case .sequence = entry.value {
                    throw fail(entry.value, "\(fieldPath): expected one rule (a mapping), got a list; "
                        + "write a list of rules under specs:")
                }
                specs.append(try rule(entry.value, path: fieldPath, anchor: entry.key))
            case "specs":
                if isNull(entry.value) { continue }
                sawSpecs = true
                if case .mapping = entry.value {
                    throw fail(entry.value, "\(fieldPath): expected a list of rules, got a mapping; "
                        + "write a single rule under spec:")
                }
                for (index, element) in try list(entry.value, path: fieldPath, of: "rules").enumerated() {
                    extraSpecs.append(try rule(element, path: "\(fieldPath)[\(index)]", anchor: element))
                }
            case "description":
                // Several upstream examples carry it here, where the CRD has no such field.
                throw fail(entry.key, "\(at(path))unknown field \"description\" at the top level; "
                    + "a description belongs in the rule, as spec.description")
            default:
                throw unknownField(entry, in: path, allowed: PolicyFields.topLevel)
            }
        }
        guard let metadata else {
            throw fail(fields.node, "\(at(path))metadata.name is required; add metadata: {name: ...}")
        }
        specs += extraSpecs
        if specs.isEmpty {
            let where_ = sawSpecs ? fields.entry("specs")?.value ?? fields.node : fields.node
            throw fail(where_, "\(at(path))\(kind.rawValue) \(metadata.name) has no rule: "
                + "give one under spec: or a list under specs:")
        }
        return Policy(kind: kind, name: metadata.name, namespace: metadata.namespace, specs: specs,
                      labels: metadata.labels)
    }

    private func metadata(_ entry: Fields.Entry, path: String,
                          kind: PolicyKind) throws(PolicyError) -> (name: String, namespace: String?, labels: [String]) {
        if isNull(entry.value) {
            throw fail(entry.key, "\(path).name is required")
        }
        let fields = try self.fields(entry.value, path: path, what: "a mapping (name, namespace, labels)")
        var name: String?
        var namespace: String? = kind == .namespaced ? "default" : nil
        var labels: [String] = []
        for field in fields.entries where !isNull(field.value) {
            let fieldPath = join(path, field.name)
            switch field.name {
            case "name":
                let value = try string(field.value, path: fieldPath, what: "a name")
                guard Self.isDNSSubdomain(value) else {
                    throw fail(field.value, "\(fieldPath): \"\(value)\" is not a valid name: use lowercase letters, "
                        + "digits, '-' and '.', starting and ending with a letter or digit (at most 253 characters)")
                }
                name = value
            case "namespace":
                let value = try string(field.value, path: fieldPath, what: "a namespace name")
                guard kind == .namespaced else {
                    throw fail(field.key, "\(fieldPath): a CiliumClusterwideNetworkPolicy is cluster-wide and has "
                        + "no namespace; remove namespace: \(value), or use kind: CiliumNetworkPolicy")
                }
                guard Self.isDNSLabel(value) else {
                    throw fail(field.value, "\(fieldPath): \"\(value)\" is not a valid namespace name: use lowercase "
                        + "letters, digits and '-', starting and ending with a letter or digit (at most 63 characters)")
                }
                namespace = value
            case "labels":
                labels = try labelMap(field.value, path: fieldPath).map { "\($0.key)=\($0.value)" }
            case _ where PolicyFields.otherMetadata.contains(field.name):
                break // annotations, uid, resourceVersion, ...: Kubernetes' own, not ours
            default:
                // A typo here would land the policy somewhere else (namespce: prod -> default).
                throw unknownField(field, in: path, allowed: PolicyFields.metadata + PolicyFields.otherMetadata)
            }
        }
        guard let name else {
            throw fail(entry.key, "\(path).name is required")
        }
        return (name, namespace, labels)
    }

    // MARK: Rules

    /// One `spec` or `specs[]` element. `anchor` is where to point when a required field is missing.
    private func rule(_ node: Node, path: String, anchor: Node) throws(PolicyError) -> PolicySpec {
        let fields = try self.fields(node, path: path, what: "a rule (a mapping with endpointSelector, ingress, ...)")
        var selector: LabelSelector?
        var spec = PolicySpec(endpointSelector: LabelSelector())
        for entry in fields.entries {
            let fieldPath = join(path, entry.name)
            if let why = PolicyFields.ruleUnsupported[entry.name] {
                throw fail(entry.key, "\(path): \(why)")
            }
            if isNull(entry.value), PolicyFields.rule.contains(entry.name) { continue }
            switch entry.name {
            case "endpointSelector":
                selector = try self.selector(entry.value, path: fieldPath)
            case "ingress":
                spec.ingress = try peerRules(entry.value, path: fieldPath, direction: .ingress, deny: false)
            case "ingressDeny":
                spec.ingressDeny = try peerRules(entry.value, path: fieldPath, direction: .ingress, deny: true)
            case "egress":
                spec.egress = try peerRules(entry.value, path: fieldPath, direction: .egress, deny: false)
            case "egressDeny":
                spec.egressDeny = try peerRules(entry.value, path: fieldPath, direction: .egress, deny: true)
            case "enableDefaultDeny":
                let deny = try self.fields(entry.value, path: fieldPath, what: "a mapping {ingress: bool, egress: bool}")
                for direction in deny.entries where !isNull(direction.value) {
                    switch direction.name {
                    case "ingress":
                        spec.defaultDenyIngress = try bool(direction.value, path: join(fieldPath, "ingress"))
                    case "egress":
                        spec.defaultDenyEgress = try bool(direction.value, path: join(fieldPath, "egress"))
                    default:
                        throw unknownField(direction, in: fieldPath, allowed: PolicyFields.defaultDeny)
                    }
                }
            case "labels":
                spec.labels = try ruleLabels(entry.value, path: fieldPath)
            case "description":
                spec.description = try string(entry.value, path: fieldPath, what: "a description")
            default:
                throw unknownField(entry, in: path, allowed: PolicyFields.rule,
                                   unsupported: PolicyFields.ruleUnsupported.names)
            }
        }
        guard let selector else {
            throw fail(anchor, "\(path): endpointSelector is required; endpointSelector: {} selects every endpoint "
                + "in the policy's scope")
        }
        spec.endpointSelector = selector
        return spec
    }

    private func ruleLabels(_ node: Node, path: String) throws(PolicyError) -> [String] {
        var labels: [String] = []
        for (index, item) in try list(node, path: path, of: "labels").enumerated() {
            let itemPath = "\(path)[\(index)]"
            switch item {
            case .mapping:
                let fields = try self.fields(item, path: itemPath, what: "a label")
                var key: String?
                var value = ""
                var source = ""
                for entry in fields.entries where !isNull(entry.value) {
                    let fieldPath = join(itemPath, entry.name)
                    switch entry.name {
                    case "key": key = try string(entry.value, path: fieldPath, what: "a label key")
                    case "value": value = try string(entry.value, path: fieldPath, what: "a label value")
                    case "source": source = try string(entry.value, path: fieldPath, what: "a label source")
                    default: throw unknownField(entry, in: itemPath, allowed: PolicyFields.ruleLabel)
                    }
                }
                guard let key, !key.isEmpty else {
                    throw fail(item, "\(itemPath): key is required in a label {key, value, source}")
                }
                labels.append((source.isEmpty ? "" : "\(source):") + "\(key)=\(value)")
            default:
                let label = try string(item, path: itemPath, what: "a label (\"key=value\" or {key, value, source})")
                guard !label.isEmpty else { throw fail(item, "\(itemPath): a label cannot be empty") }
                labels.append(label)
            }
        }
        return labels
    }

    // MARK: Selectors

    private func selector(_ node: Node, path: String) throws(PolicyError) -> LabelSelector {
        let fields = try self.fields(node, path: path,
                                     what: "a label selector (a mapping with matchLabels and/or matchExpressions)")
        var selector = LabelSelector()
        for entry in fields.entries {
            let fieldPath = join(path, entry.name)
            switch entry.name {
            case "matchLabels":
                if isNull(entry.value) { continue }
                for (key, value) in try labelMap(entry.value, path: fieldPath) { selector.matchLabels[key] = value }
            case "matchExpressions":
                if isNull(entry.value) { continue }
                for (index, item) in try list(entry.value, path: fieldPath, of: "label requirements").enumerated() {
                    selector.matchExpressions.append(try requirement(item, path: "\(fieldPath)[\(index)]"))
                }
            default:
                throw unknownField(entry, in: path, allowed: PolicyFields.selector)
            }
        }
        return selector
    }

    private func requirement(_ node: Node, path: String) throws(PolicyError) -> LabelSelector.Requirement {
        let fields = try self.fields(node, path: path, what: "a requirement {key, operator, values}")
        var key: String?
        var op: LabelSelector.Operator?
        var operatorNode: Node?
        var values: [String] = []
        var valuesNode: Node?
        for entry in fields.entries {
            let fieldPath = join(path, entry.name)
            guard PolicyFields.requirement.contains(entry.name) else {
                throw unknownField(entry, in: path, allowed: PolicyFields.requirement)
            }
            if isNull(entry.value) { continue }
            switch entry.name {
            case "key":
                key = try labelKey(entry.value, path: fieldPath)
            case "operator":
                let name = try string(entry.value, path: fieldPath, what: "an operator")
                let all: [LabelSelector.Operator] = [.in, .notIn, .exists, .doesNotExist]
                guard let parsed = LabelSelector.Operator(rawValue: name) else {
                    let hint = ManifestText.endOfSentence(suggesting: ManifestText.suggestion(for: name, among: all.map(\.rawValue)))
                    throw fail(entry.value, "\(fieldPath): \"\(name)\" is not an operator\(hint) Operators are "
                        + "In, NotIn, Exists and DoesNotExist (case-sensitive)")
                }
                op = parsed
                operatorNode = entry.value
            default: // values
                valuesNode = entry.value
                for (index, item) in try list(entry.value, path: fieldPath, of: "label values").enumerated() {
                    values.append(try labelValue(item, path: "\(fieldPath)[\(index)]"))
                }
            }
        }
        guard let key, !key.isEmpty else { throw fail(node, "\(path): key is required") }
        guard let op, let operatorNode else {
            throw fail(node, "\(path): operator is required: In, NotIn, Exists or DoesNotExist")
        }
        switch op {
        case .in, .notIn:
            guard !values.isEmpty else {
                throw fail(valuesNode ?? operatorNode, "\(path): operator \(op.rawValue) needs at least one value")
            }
        case .exists, .doesNotExist:
            guard values.isEmpty else {
                throw fail(valuesNode ?? operatorNode, "\(path): operator \(op.rawValue) takes no values; "
                    + "remove values or use In/NotIn")
            }
        }
        return LabelSelector.Requirement(key: key, op: op, values: values)
    }

    // MARK: Peer rules

    private func peerRules(_ node: Node, path: String, direction: Direction,
                           deny: Bool) throws(PolicyError) -> [PeerRule] {
        var rules: [PeerRule] = []
        for (index, item) in try list(node, path: path, of: "rules").enumerated() {
            rules.append(try peerRule(item, path: "\(path)[\(index)]", direction: direction, deny: deny))
        }
        return rules
    }

    private func peerRule(_ node: Node, path: String, direction: Direction,
                          deny: Bool) throws(PolicyError) -> PeerRule {
        if isNull(node) { return PeerRule() } // "- " with nothing: an empty rule, as upstream decodes it
        let peer = direction.peerPrefix
        let example = direction == .ingress ? "{fromEndpoints: [...], toPorts: [...]}" : "{toEndpoints: [...], toPorts: [...]}"
        let fields = try self.fields(node, path: path, what: "a rule (a mapping such as \(example))")
        let allowed = direction == .ingress ? PolicyFields.ingress : PolicyFields.egress
        let unsupported = switch (direction, deny) {
        case (.ingress, false): PolicyFields.ingressUnsupported
        case (.ingress, true): PolicyFields.ingressDenyUnsupported
        case (.egress, false): PolicyFields.egressUnsupported
        case (.egress, true): PolicyFields.egressDenyUnsupported
        }

        var rule = PeerRule()
        var cidrs: [CIDRRule] = []
        var cidrSets: [CIDRRule] = []
        var ipv6Peers: [String] = []
        var emptyPeers: [String] = []
        var portRuleCount = 0
        var icmpsEntry: Fields.Entry?
        var portsEntry: Fields.Entry?
        for entry in fields.entries {
            let fieldPath = join(path, entry.name)
            if let why = unsupported[entry.name] {
                throw fail(entry.key, "\(path): \(why)")
            }
            guard allowed.contains(entry.name) else {
                throw misplacedPeerField(entry, in: path, direction: direction, deny: deny,
                                         allowed: allowed, unsupported: unsupported.names)
            }
            if isNull(entry.value) { continue }
            switch entry.name {
            case peer + "Endpoints":
                var selectors: [LabelSelector] = []
                for (index, item) in try list(entry.value, path: fieldPath, of: "endpoint selectors").enumerated() {
                    selectors.append(try selector(item, path: "\(fieldPath)[\(index)]"))
                }
                rule.endpoints = selectors
            case peer + "Entities":
                let (entities, worldIPv6) = try self.entities(entry.value, path: fieldPath)
                rule.entities = entities
                if worldIPv6 { ipv6Peers.append("world-ipv6") }
            case peer + "CIDR":
                for (index, item) in try list(entry.value, path: fieldPath, of: "CIDRs").enumerated() {
                    switch try cidr(item, path: "\(fieldPath)[\(index)]", bareAddressAllowed: true) {
                    case .v4(let prefix): cidrs.append(CIDRRule(cidr: prefix.description))
                    case .v6(let text): ipv6Peers.append(text)
                    }
                }
            case peer + "CIDRSet":
                for (index, item) in try list(entry.value, path: fieldPath, of: "CIDR rules {cidr, except}").enumerated() {
                    let parts = try cidrRule(item, path: "\(fieldPath)[\(index)]")
                    if parts.isEmpty { emptyPeers.append("\(fieldPath)[\(index)]: a cidrGroupSelector no CiliumCIDRGroup of the file matches") }
                    for part in parts {
                        switch part {
                        case .v4(let set): cidrSets.append(set)
                        case .v6(let text): ipv6Peers.append(text)
                        }
                    }
                }
            case "toPorts":
                let items = try list(entry.value, path: fieldPath, of: "port rules {ports: [...]}")
                portRuleCount = items.count
                portsEntry = entry
                for (index, item) in items.enumerated() {
                    rule.ports += try portRule(item, path: "\(fieldPath)[\(index)]", deny: deny)
                }
            default: // icmps
                icmpsEntry = entry
                for (index, item) in try list(entry.value, path: fieldPath, of: "ICMP rules {fields: [...]}").enumerated() {
                    rule.icmps += try icmpRule(item, path: "\(fieldPath)[\(index)]")
                }
            }
        }
        if let icmpsEntry, portRuleCount > 0, case .sequence(let icmps) = icmpsEntry.value, !icmps.isEmpty {
            throw fail(icmpsEntry.key, "\(path): icmps and toPorts cannot be combined in one rule; "
                + "write a separate rule for each")
        }
        if direction == .egress, let portsEntry, let named = rule.ports.first(where: { $0.name != nil })?.name {
            throw fail(portsEntry.key, "\(path): named port \"\(named)\" in an egress rule is not supported yet (ingress rules "
                + "resolve a name against the selected pod's own ports); use the port number")
        }
        rule.cidrs = cidrs + cidrSets
        rule.ipv6Peers = ipv6Peers.isEmpty ? nil : ipv6Peers
        rule.emptyPeers = emptyPeers.isEmpty ? nil : emptyPeers
        return rule
    }

    /// An unknown field in a peer rule; a peer field of the other direction gets a pointed answer.
    private func misplacedPeerField(_ entry: Fields.Entry, in path: String, direction: Direction, deny: Bool,
                                    allowed: [String], unsupported: [String]) -> PolicyError {
        let name = entry.name
        let (own, other) = direction == .ingress ? ("from", "to") : ("to", "from")
        if name.hasPrefix(other), name != "toPorts" {
            let counterpart = own + name.dropFirst(other.count)
            if allowed.contains(counterpart) || unsupported.contains(counterpart) {
                let ruleKind = (direction == .ingress ? "ingress" : "egress") + (deny ? "Deny" : "")
                let otherKind = direction == .ingress ? "egress" : "ingress"
                return fail(entry.key, "\(path): \(name) belongs in \(otherKind) rules; \(ruleKind) rules "
                    + "select peers with \(counterpart)")
            }
        }
        return unknownField(entry, in: path, allowed: allowed, unsupported: unsupported)
    }

    /// The entities, and whether world-ipv6 was among them (an IPv6 peer: see `PeerRule.ipv6Peers`).
    private func entities(_ node: Node, path: String) throws(PolicyError) -> ([PolicyEntity], worldIPv6: Bool) {
        var entities: [PolicyEntity] = []
        var worldIPv6 = false
        for (index, item) in try list(node, path: path, of: "entity names").enumerated() {
            let itemPath = "\(path)[\(index)]"
            let name = try string(item, path: itemPath, what: "an entity name")
            if let entity = PolicyEntity(rawValue: name) {
                entities.append(entity)
            } else if name == "world-ipv6" {
                worldIPv6 = true
            } else {
                let hint = ManifestText.endOfSentence(suggesting: ManifestText.suggestion(for: name, among: PolicyFields.entities))
                throw fail(item, "\(itemPath): unknown entity \"\(Suggestion.excerpt(name))\"\(hint) Entities are "
                    + PolicyFields.entities.joined(separator: ", "))
            }
        }
        return (entities, worldIPv6)
    }

    // MARK: CIDRs

    /// A CIDR of either family: IPv4 is enforced, IPv6 is kept as written (checked, matched by nothing yet).
    private enum AnyCIDR<V4> {
        case v4(V4)
        case v6(String)
    }

    private func cidr(_ node: Node, path: String, bareAddressAllowed: Bool) throws(PolicyError) -> AnyCIDR<IPv4Prefix> {
        let text = try string(node, path: path, what: "a CIDR such as 10.0.0.0/8")
        if text.contains(":") {
            if let problem = IPv6Prefix.problem(text, bareAddressAllowed: bareAddressAllowed) {
                throw fail(node, "\(path): \(problem)")
            }
            return .v6(text)
        }
        do {
            return .v4(try IPv4Prefix.parse(text, bareAddressAllowed: bareAddressAllowed))
        } catch {
            throw fail(node, "\(path): \(error.message)")
        }
    }

    /// One `fromCIDRSet`/`toCIDRSet` element: a cidr, or a CiliumCIDRGroup by name (each of its
    /// CIDRs), with the excepts that lie inside.
    private func cidrRule(_ node: Node, path: String) throws(PolicyError) -> [AnyCIDR<CIDRRule>] {
        let fields = try self.fields(node, path: path, what: "a CIDR rule {cidr, except}")
        var prefixes: [AnyCIDR<IPv4Prefix>]?
        var excepts: [(prefix: AnyCIDR<IPv4Prefix>, node: Node)] = []
        for entry in fields.entries {
            let fieldPath = join(path, entry.name)
            if let why = PolicyFields.cidrRuleUnsupported[entry.name] {
                throw fail(entry.key, "\(path): \(why)")
            }
            guard PolicyFields.cidrRule.contains(entry.name) else {
                throw unknownField(entry, in: path, allowed: PolicyFields.cidrRule,
                                   unsupported: PolicyFields.cidrRuleUnsupported.names)
            }
            if isNull(entry.value) { continue }
            switch entry.name {
            case "cidr", "cidrGroupRef", "cidrGroupSelector":
                guard prefixes == nil else {
                    throw fail(entry.key, "\(path): give one of cidr, cidrGroupRef and cidrGroupSelector, not several")
                }
                let names: [String]
                switch entry.name {
                case "cidr":
                    prefixes = [try cidr(entry.value, path: fieldPath, bareAddressAllowed: false)]
                    continue
                case "cidrGroupRef":
                    let name = try string(entry.value, path: fieldPath, what: "a CiliumCIDRGroup name")
                    guard found.groups[name] != nil else {
                        let known = found.groups.keys.sorted()
                        throw fail(entry.value, "\(fieldPath): no CiliumCIDRGroup named \(name) in this file"
                            + (known.isEmpty ? "; add the group (kind: CiliumCIDRGroup) to the same file" : "; it has \(known.joined(separator: ", "))"))
                    }
                    names = [name]
                default:
                    // The groups of this file whose labels match; none is a rule that matches no address.
                    let chosen = try selector(entry.value, path: fieldPath)
                    names = found.groupLabels.filter { chosen.matchesPlain($0.value) }.map(\.key).sorted()
                }
                var members: [AnyCIDR<IPv4Prefix>] = []
                for name in names {
                    for text in found.groups[name] ?? [] {
                        if text.contains(":") { members.append(.v6(text)); continue }
                        do {
                            members.append(.v4(try IPv4Prefix.parse(text, bareAddressAllowed: false)))
                        } catch {
                            throw fail(entry.value, "\(fieldPath): group \(name): \(error.message)")
                        }
                    }
                }
                prefixes = members
            default:
                for (index, item) in try list(entry.value, path: fieldPath, of: "CIDRs").enumerated() {
                    excepts.append((try cidr(item, path: "\(fieldPath)[\(index)]", bareAddressAllowed: false), item))
                }
            }
        }
        guard let prefixes else {
            throw fail(node, "\(path): cidr is required, e.g. {cidr: 10.0.0.0/8, except: [10.96.0.0/12]}")
        }
        // A cidrGroupSelector no group of the file matches: no part (the caller notes a peer that matches nothing).
        if prefixes.isEmpty { return [] }
        let single = prefixes.count == 1
        var out: [AnyCIDR<CIDRRule>] = []
        var placed = Set<Int>()
        for prefix in prefixes {
            switch prefix {
            case .v6(let text):
                let inner = excepts.enumerated().compactMap { i, e -> String? in
                    guard case .v6(let t) = e.prefix else { return nil }
                    placed.insert(i)
                    return t
                }
                out.append(.v6(inner.isEmpty ? text : "\(text) except \(inner.joined(separator: ", "))"))
            case .v4(let outer):
                var kept: [String] = []
                for (i, except) in excepts.enumerated() {
                    guard case .v4(let inner) = except.prefix else { continue }
                    if outer.contains(inner) {
                        kept.append(inner.description)
                        placed.insert(i)
                    }
                }
                out.append(.v4(CIDRRule(cidr: outer.description, except: kept)))
            }
        }
        for (i, except) in excepts.enumerated() where !placed.contains(i) {
            switch (except.prefix, prefixes.first) {
            case (.v4, .v6(let text)?) where single:
                throw fail(except.node, "\(path): except is IPv4 but cidr \(text) is IPv6; every except must lie within its cidr")
            case (.v6, .v4(let outer)?) where single:
                throw fail(except.node, "\(path): except is IPv6 but cidr \(outer) is IPv4; every except must lie within its cidr")
            case (.v4(let inner), .v4(let outer)?) where single:
                throw fail(except.node, "\(path): except \(inner) is not inside cidr \(outer); every except must lie within its cidr")
            default:
                throw fail(except.node, "\(path): this except lies inside none of the group's CIDRs")
            }
        }
        return out
    }

    // MARK: Ports

    private func portRule(_ node: Node, path: String, deny: Bool) throws(PolicyError) -> [PortProtocol] {
        if isNull(node) { return [] }
        let fields = try self.fields(node, path: path, what: "a port rule (a mapping such as {ports: [...]})")
        let unsupported = deny ? [] : PolicyFields.portRuleUnsupported.names
        var ports: [PortProtocol] = []
        for entry in fields.entries {
            let fieldPath = join(path, entry.name)
            if !deny, entry.name == "rules" {
                try rejectL7(entry.value, path: fieldPath)
                continue
            }
            if !deny, let why = PolicyFields.portRuleUnsupported[entry.name] {
                throw fail(entry.key, "\(path): \(why)")
            }
            guard entry.name == "ports" else {
                throw unknownField(entry, in: path, allowed: PolicyFields.portRule, unsupported: unsupported)
            }
            if isNull(entry.value) { continue }
            for (index, item) in try list(entry.value, path: fieldPath, of: "ports {port, endPort, protocol}").enumerated() {
                ports.append(try portProtocol(item, path: "\(fieldPath)[\(index)]"))
            }
        }
        return ports
    }

    /// `toPorts[].rules`: any L7 protocol is an error naming it; an empty `rules` is harmless.
    private func rejectL7(_ node: Node, path: String) throws(PolicyError) {
        if isNull(node) { return }
        let fields = try self.fields(node, path: path, what: "L7 rules (a mapping with http, kafka, dns or l7proto)")
        for entry in fields.entries {
            guard PolicyFields.l7.contains(entry.name) else {
                throw unknownField(entry, in: path, allowed: [], unsupported: PolicyFields.l7)
            }
            if isNull(entry.value) { continue }
            throw fail(entry.key, "\(path): L7 rules (toPorts[].rules.\(entry.name)) are not supported yet: "
                + "L4 enforcement only")
        }
    }

    private func portProtocol(_ node: Node, path: String) throws(PolicyError) -> PortProtocol {
        let fields = try self.fields(node, path: path, what: "a port (a mapping such as {port: \"80\", protocol: TCP})")
        var port: UInt16 = 0
        var name: String?
        var endPort: (value: Int, node: Node)?
        var proto = L4Protocol.any
        for entry in fields.entries {
            let fieldPath = join(path, entry.name)
            guard PolicyFields.portProtocol.contains(entry.name) else {
                throw unknownField(entry, in: path, allowed: PolicyFields.portProtocol)
            }
            if isNull(entry.value) { continue }
            switch entry.name {
            case "port":
                if case .scalar(let scalar) = entry.value, tagName(entry.value) == .str, scalar.string.contains(where: \.isLetter),
                   NamedPortText.isValid(scalar.string) {
                    name = scalar.string
                } else {
                    port = try portNumber(entry.value, path: fieldPath)
                }
            case "endPort":
                endPort = (try endPortNumber(entry.value, path: fieldPath), entry.value)
            default:
                proto = try l4Protocol(entry.value, path: fieldPath)
            }
        }
        var last: UInt16?
        if let endPort, endPort.value != 0 { // endPort 0 is upstream's "not set"
            if let name {
                throw fail(endPort.node, "\(path): endPort needs a port number; \(name) is a port name")
            }
            guard port != 0 else {
                throw fail(endPort.node, "\(path): endPort needs a non-zero port; "
                    + "without a port the rule already covers every port")
            }
            guard endPort.value >= Int(port) else {
                throw fail(endPort.node, "\(path): endPort \(endPort.value) is below port \(port); "
                    + "endPort must be >= port")
            }
            last = UInt16(endPort.value)
        }
        return PortProtocol(port: port, endPort: last, proto: proto, name: name)
    }

    private func portNumber(_ node: Node, path: String) throws(PolicyError) -> UInt16 {
        guard case .scalar(let scalar) = node else {
            throw fail(node, "\(path): expected a port number 0-65535, got \(describe(node))")
        }
        let text = scalar.string
        let tag = tagName(node)
        if tag == .bool || tag == .float {
            throw fail(node, "\(path): expected a port number 0-65535, got \(describe(node))")
        }
        if text.isEmpty {
            throw fail(node, "\(path): the port is empty; write a number 1-65535, or leave port out for every port")
        }
        if text.allSatisfy(\.isASCIIDigit) {
            if text.count > 1, text.hasPrefix("0") {
                let trimmed = text.drop { $0 == "0" }
                throw fail(node, "\(path): port \"\(text)\" has a leading zero; write \(trimmed.isEmpty ? "0" : trimmed)")
            }
            guard text.count <= 5, let value = Int(text), value <= 65535 else {
                throw fail(node, "\(path): port \(text) is out of range 0-65535")
            }
            return UInt16(value)
        }
        if tag == .int {
            if text.hasPrefix("-") {
                throw fail(node, "\(path): port \(text) is out of range 0-65535")
            }
            throw fail(node, "\(path): port \(text) must be written in decimal (0-65535)")
        }
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        if parts.count == 2, parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCIIDigit) }) {
            throw fail(node, "\(path): \"\(text)\" is not a port; write a range as port: \"\(parts[0])\" "
                + "with endPort: \(parts[1])")
        }
        if text.contains(where: \.isLetter) {
            throw fail(node, "\(path): \"\(text)\" is neither a port number nor a port name "
                + "(1-15 lowercase letters, digits and '-', with a letter, e.g. http-8080)")
        }
        throw fail(node, "\(path): \"\(text)\" is not a port number 0-65535")
    }

    private func endPortNumber(_ node: Node, path: String) throws(PolicyError) -> Int {
        guard case .scalar(let scalar) = node, tagName(node) == .int else {
            let hint = tagName(node) == .str && node.scalar.map({ $0.string.allSatisfy(\.isASCIIDigit) }) == true
                ? "; write the number without quotes" : ""
            throw fail(node, "\(path): expected an integer port number, got \(describe(node))\(hint)")
        }
        let text = scalar.string
        guard text.allSatisfy(\.isASCIIDigit), text.count <= 5, let value = Int(text), value <= 65535 else {
            throw fail(node, "\(path): endPort \(text) is out of range 0-65535")
        }
        return value
    }

    private func l4Protocol(_ node: Node, path: String) throws(PolicyError) -> L4Protocol {
        let name = try string(node, path: path, what: "a protocol (TCP, UDP, SCTP or ANY)")
        if name.isEmpty { return .any } // upstream: empty means ANY
        if let proto = L4Protocol(rawValue: name) { return proto }
        let upper = name.uppercased()
        if let proto = L4Protocol(rawValue: upper) {
            throw fail(node, "\(path): protocol \"\(name)\" is not valid; did you mean \(proto.rawValue)? "
                + "Protocols are case-sensitive: TCP, UDP, SCTP, ANY")
        }
        switch upper {
        case "ICMP", "ICMPV6":
            throw fail(node, "\(path): \(name) is not a toPorts protocol; match ICMP with icmps: [{fields: [{type: ...}]}]")
        case "VRRP", "IGMP":
            throw fail(node, "\(path): protocol \(name) is valid in cilium.io/v2 but not supported yet by this agent "
                + "(ports are enforced for TCP, UDP, SCTP and ANY)")
        default:
            throw fail(node, "\(path): protocol \"\(name)\" is not valid; expected TCP, UDP, SCTP or ANY")
        }
    }

    // MARK: ICMP

    private func icmpRule(_ node: Node, path: String) throws(PolicyError) -> [ICMPField] {
        let fields = try self.fields(node, path: path, what: "an ICMP rule (a mapping such as {fields: [{type: 8}]})")
        var result: [ICMPField] = []
        for entry in fields.entries {
            let fieldPath = join(path, entry.name)
            guard entry.name == "fields" else {
                throw unknownField(entry, in: path, allowed: PolicyFields.icmpRule)
            }
            if isNull(entry.value) { continue }
            for (index, item) in try list(entry.value, path: fieldPath, of: "ICMP fields {type, family}").enumerated() {
                result.append(try icmpField(item, path: "\(fieldPath)[\(index)]"))
            }
        }
        return result
    }

    private func icmpField(_ node: Node, path: String) throws(PolicyError) -> ICMPField {
        let fields = try self.fields(node, path: path, what: "an ICMP field (a mapping such as {type: 8, family: IPv4})")
        var typeNode: Node?
        var family = "IPv4"
        for entry in fields.entries {
            let fieldPath = join(path, entry.name)
            guard PolicyFields.icmpField.contains(entry.name) else {
                throw unknownField(entry, in: path, allowed: PolicyFields.icmpField)
            }
            if isNull(entry.value) { continue }
            if entry.name == "type" {
                typeNode = entry.value
            } else {
                let name = try string(entry.value, path: fieldPath, what: "an IP family (IPv4 or IPv6)")
                guard name == "IPv4" || name == "IPv6" else {
                    let hint = ManifestText.endOfSentence(suggesting: ManifestText.suggestion(for: name, among: ["IPv4", "IPv6"]))
                    throw fail(entry.value, "\(fieldPath): family \"\(name)\" is not valid\(hint) "
                        + "Families are IPv4 and IPv6")
                }
                family = name
            }
        }
        guard let typeNode else {
            throw fail(node, "\(path): type is required: a number 0-255 or a name such as EchoRequest")
        }
        let typePath = join(path, "type")
        guard case .scalar(let scalar) = typeNode, tagName(typeNode) != .bool, tagName(typeNode) != .float else {
            throw fail(typeNode, "\(typePath): expected an ICMP type (0-255 or a name), got \(describe(typeNode))")
        }
        let text = scalar.string
        if !text.isEmpty, text.allSatisfy(\.isASCIIDigit) {
            guard text.count <= 3, let value = Int(text), value <= 255 else {
                throw fail(typeNode, "\(typePath): ICMP type \(text) is out of range 0-255")
            }
            return ICMPField(type: UInt8(value), family: family)
        }
        let (names, otherNames, otherFamily) = family == "IPv4"
            ? (PolicyFields.icmpV4, PolicyFields.icmpV6, "IPv6")
            : (PolicyFields.icmpV6, PolicyFields.icmpV4, "IPv4")
        if let value = names[text] { return ICMPField(type: value, family: family) }
        if otherNames[text] != nil {
            throw fail(typeNode, "\(typePath): \(text) is an \(otherFamily) ICMP type; set family: \(otherFamily), "
                + "or use one of the \(family) names: \(names.names.joined(separator: ", "))")
        }
        let hint = ManifestText.endOfSentence(suggesting: ManifestText.suggestion(for: text, among: names.names))
        throw fail(typeNode, "\(typePath): unknown \(family) ICMP type \"\(text)\"\(hint) Use a number 0-255 "
            + "or one of: \(names.names.joined(separator: ", "))")
    }

    // MARK: Labels (Kubernetes' rules, with Cilium's source: prefix on keys)

    /// A mapping of label keys to values (metadata.labels, matchLabels).
    private func labelMap(_ node: Node, path: String) throws(PolicyError) -> [(key: String, value: String)] {
        var labels: [(key: String, value: String)] = []
        for label in try fields(node, path: path, what: "a mapping of label keys to values").entries {
            labels.append((try labelKey(label.key, path: path), try labelValue(label.value, path: join(path, label.name))))
        }
        return labels
    }

    private func labelKey(_ node: Node, path: String) throws(PolicyError) -> String {
        let key = isNull(node) ? "" : try string(node, path: path, what: "a label key")
        if let why = LabelText.keyProblem(key) {
            throw fail(node, "\(path): \"\(Suggestion.excerpt(key))\" is not a label key: \(why)")
        }
        return key
    }

    /// A label value; null is the empty value.
    private func labelValue(_ node: Node, path: String) throws(PolicyError) -> String {
        let value = isNull(node) ? "" : try string(node, path: path, what: "a label value")
        if let why = LabelText.valueProblem(value) {
            throw fail(node, "\(path): \"\(Suggestion.excerpt(value))\" is not a label value: \(why)")
        }
        return value
    }

    // MARK: Node helpers

    private var source: ManifestSource { ManifestSource(file: file, text: text) }

    private func fields(_ node: Node, path: String, what: String) throws(PolicyError) -> Fields {
        try source.fields(node, path: path, what: what)
    }


    /// Any non-null scalar, as written (YAML ints and booleans give their text).
    private func string(_ node: Node, path: String, what: String) throws(PolicyError) -> String {
        guard case .scalar(let scalar) = node, !isNull(node) else {
            throw fail(node, "\(at(path))expected \(what), got \(describe(node))")
        }
        return scalar.string
    }

    private func list(_ node: Node, path: String, of what: String, example: String? = nil) throws(PolicyError) -> [Node] {
        try source.list(node, path: path, of: what, example: example)
    }

    private func bool(_ node: Node, path: String) throws(PolicyError) -> Bool { try source.bool(node, path: path) }

    /// The resolved tag (str, int, bool, null, ...); quoted scalars are always str.
    private func tagName(_ node: Node) -> Tag.Name { node.tagName }

    private func isNull(_ node: Node) -> Bool { node.isNullScalar }

    private func describe(_ node: Node) -> String { node.described }

    private func unknownField(_ entry: Fields.Entry, in path: String, allowed: [String],
                              unsupported: [String] = []) -> PolicyError {
        var problem = "\(at(path))unknown field \"\(Suggestion.excerpt(entry.name))\""
            + ManifestText.endOfSentence(suggesting: ManifestText.suggestion(for: entry.name, among: allowed + unsupported))
        if !allowed.isEmpty {
            problem += " Allowed here: \(allowed.joined(separator: ", "))"
        }
        if !unsupported.isEmpty {
            problem += (allowed.isEmpty ? " Valid upstream here" : "; valid upstream")
                + " but not supported yet: \(unsupported.joined(separator: ", "))"
        }
        return fail(entry.key, problem)
    }

    private func fail(_ node: Node, _ problem: String) -> PolicyError { source.error(at: node, problem) }

    private func at(_ path: String) -> String { ManifestText.at(path) }

    private func join(_ path: String, _ field: String) -> String { ManifestText.join(path, field) }

    // MARK: YAML errors

    private func yamlError(_ error: any Error) -> PolicyError { source.error(for: error) }

    // MARK: Names

    /// Kubernetes object names: a DNS-1123 subdomain.
    static func isDNSSubdomain(_ name: String) -> Bool { ManifestText.isDNSSubdomain(name) }

    /// Kubernetes namespace names: a DNS-1123 label.
    static func isDNSLabel(_ name: String) -> Bool { ManifestText.isDNS1123Label(name) }
}

private extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}

// MARK: - IPv6 prefixes

/// IPv6 prefix text, checked (not enforced: see `PeerRule.ipv6Peers`).
private enum IPv6Prefix {
    /// nil when `text` is "address/length" (or a bare address, when allowed) with no host bits set.
    static func problem(_ text: String, bareAddressAllowed: Bool) -> String? {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        var bytes = [UInt8](repeating: 0, count: 16)
        guard let address = parts.first, inet_pton(AF_INET6, String(address), &bytes) == 1 else {
            return "\"\(Suggestion.excerpt(text))\" is not a valid IPv6 CIDR: expected an IPv6 address/n with n 0-128, e.g. 2001:db8::/32"
        }
        guard parts.count == 2 else {
            return bareAddressAllowed ? nil : "\(text) has no prefix length; write \(text)/128 for one address"
        }
        guard let length = Int(parts[1]), (0...128).contains(length), parts[1].allSatisfy(\.isASCIIDigit) else {
            return "\(text): the prefix length must be a number 0-128"
        }
        for bit in length..<128 where bytes[bit / 8] & (0x80 >> UInt8(bit % 8)) != 0 {
            return "\(text) has host bits set after /\(length)"
        }
        return nil
    }
}

// MARK: - IPv4 prefixes

/// An IPv4 network: address with host bits cleared, and prefix length.
private struct IPv4Prefix: CustomStringConvertible {
    struct Problem: Error {
        var message: String
    }

    var address: UInt32
    var bits: Int

    var mask: UInt32 { bits == 0 ? 0 : UInt32.max << (32 - bits) }

    var description: String { "\(Self.format(address))/\(bits)" }

    func contains(_ other: IPv4Prefix) -> Bool {
        other.bits >= bits && other.address & mask == address
    }

    static func format(_ address: UInt32) -> String {
        (0..<4).map { String((address >> (24 - 8 * $0)) & 0xFF) }.joined(separator: ".")
    }

    /// Parses "a.b.c.d/n" (or a bare "a.b.c.d", meaning /32, when allowed) with the project's one IPv4
    /// reading (`IPv4Text`). Host bits set, IPv6 and anything malformed are problems with a suggestion
    /// where one exists.
    static func parse(_ text: String, bareAddressAllowed: Bool) throws(Problem) -> IPv4Prefix {
        let expected = "expected a.b.c.d/n with each part 0-255 and n 0-32, e.g. 10.0.0.0/8"
        switch IPv4Text.prefix(text, bareAddress: bareAddressAllowed) {
        case .success(let p):
            return IPv4Prefix(address: p.address, bits: Int(p.length))
        case .failure(.ipv6):
            throw Problem(message: "IPv6 CIDR \(text): this datapath enforces IPv4 only")
        case .failure(let problem):
            switch problem {
            case .noLength, .badLength, .hostBits:
                throw Problem(message: problem.message(for: text))
            case let .leadingZero(part, fixed):
                throw Problem(message: "\"\(text)\" is not a valid IPv4 CIDR: \(part) has a leading zero, which some read "
                    + "as octal; write \(fixed)")
            default:
                let address = text.prefix { $0 != "/" }
                throw Problem(message: "\"\(text)\" is not a valid IPv4 CIDR: \"\(address)\" is not an IPv4 address; \(expected)")
            }
        }
    }
}
