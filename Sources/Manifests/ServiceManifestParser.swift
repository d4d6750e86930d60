import Addressing
import ManifestYAML
import Yams

/// Reads Kubernetes `v1 Service` and `discovery.k8s.io/v1 EndpointSlice` manifests into the load balancer's model.
///
/// Accepted shapes: one object, several `---`-separated documents, or a `kind: List` (as `kubectl get -o yaml`
/// prints it; `ServiceList` and `EndpointSliceList` too) with `items`. JSON is read as the YAML it is.
///
/// Objects of any other kind (Pod, Deployment, CiliumNetworkPolicy, ...) are skipped without a word, so one
/// resource directory can hold everything; so are a `Service` or an `EndpointSlice` of another API group
/// (a Knative `serving.knative.dev/v1 Service` is not a Kubernetes Service). The legacy `v1 Endpoints` kind is
/// an error: this agent reads EndpointSlices only.
///
/// The parser is strict the way the API server is: an unknown field, a value of the wrong type, an invalid
/// IPv4 address, port or name, or a combination the API server rejects (a node port on a ClusterIP Service,
/// two unnamed ports) is an error. IPv6 is an error where the author asked for it (an IPv6-only Service, an
/// IPv6 EndpointSlice): this datapath is IPv4 only. Every error carries the 1-based line and column of the
/// offending node.
///
/// A YAML `null` (`key:` with nothing after it) reads as if the key were absent, as the API server's JSON
/// decoding does; an empty string reads as absent where the API server defaults it (`type: ""`, `clusterIP: ""`,
/// `protocol: ""`, `targetPort: ""`).
public enum ServiceManifestParser {
    /// Kubernetes `v1 Service` and `discovery.k8s.io/v1 EndpointSlice` documents (YAML or JSON), several per file
    /// (`---`), or a `kind: List` with `items`. Other kinds (Pod, Deployment, CiliumNetworkPolicy...) are skipped silently
    /// so a resource directory can hold everything; `kind: Endpoints` (the legacy v1 kind) is reported as not supported
    /// ("use EndpointSlice").
    public static func parse(_ text: String, file: String) throws(ServiceManifestError) -> ServiceDocuments {
        try ManifestReader(file: file, text: text).readAll()
    }
}

// MARK: - Field tables

/// Field names per level, as the Kubernetes API defines them.
private enum ManifestFields {
    static let serviceVersion = "v1"
    static let sliceVersion = "discovery.k8s.io/v1"
    static let serviceLabel = "kubernetes.io/service-name"

    static let service = ["apiVersion", "kind", "metadata", "spec", "status"]
    static let slice = ["apiVersion", "kind", "metadata", "addressType", "ports", "endpoints"]
    static let list = ["apiVersion", "kind", "metadata", "items"]
    /// ObjectMeta: only name, namespace, labels and annotations are read; the rest is the cluster's.
    static let metadata = ["name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
                           "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
                           "annotations", "ownerReferences", "finalizers", "managedFields"]
    static let serviceSpec = ["ports", "selector", "clusterIP", "clusterIPs", "type", "externalIPs", "sessionAffinity",
                              "loadBalancerIP", "loadBalancerSourceRanges", "externalName", "externalTrafficPolicy",
                              "healthCheckNodePort", "publishNotReadyAddresses", "sessionAffinityConfig", "ipFamilies",
                              "ipFamilyPolicy", "allocateLoadBalancerNodePorts", "loadBalancerClass",
                              "internalTrafficPolicy", "trafficDistribution"]
    static let serviceSpecRemoved: KeyValuePairs<String, String> = [
        "topologyKeys": "topologyKeys was removed in Kubernetes 1.22; use trafficDistribution "
            + "(or the service.kubernetes.io/topology-mode annotation) instead",
        "ipFamily": "ipFamily was replaced by ipFamilies (a list, e.g. ipFamilies: [IPv4]) in Kubernetes 1.20",
    ]
    static let servicePort = ["name", "protocol", "appProtocol", "port", "targetPort", "nodePort"]
    static let sessionAffinityConfig = ["clientIP"]
    static let clientIPConfig = ["timeoutSeconds"]
    static let serviceStatus = ["loadBalancer", "conditions"]
    static let loadBalancerStatus = ["ingress"]
    static let loadBalancerIngress = ["ip", "hostname", "ipMode", "ports"]
    static let slicePort = ["name", "protocol", "port", "appProtocol"]
    static let endpoint = ["addresses", "conditions", "hostname", "targetRef", "nodeName", "zone", "hints",
                           "deprecatedTopology"]
    static let endpointRemoved: KeyValuePairs<String, String> = [
        "topology": "topology (discovery.k8s.io/v1beta1) was replaced in discovery.k8s.io/v1 by nodeName and zone; "
            + "write nodeName: and zone: instead",
    ]
    static let conditions = ["ready", "serving", "terminating"]

    static let types = ["ClusterIP", "NodePort", "LoadBalancer"]
    static let protocols = ["TCP", "UDP", "SCTP"]
    static let trafficPolicies = ["Cluster", "Local"]
    static let affinities = ["None", "ClientIP"]
    static let ipFamilies = ["IPv4", "IPv6"]
    static let ipFamilyPolicies = ["SingleStack", "PreferDualStack", "RequireDualStack"]
    static let addressTypes = ["IPv4", "IPv6", "FQDN"]
    /// Kinds this reader answers for, to catch a misspelt one instead of skipping it.
    static let kinds = ["Service", "EndpointSlice", "Endpoints", "List", "ServiceList", "EndpointSliceList"]
}

private extension KeyValuePairs where Key == String {
    subscript(name: String) -> Value? { first { $0.key == name }?.value }
}

// MARK: - Reader

private typealias Fields = YAMLFields

/// The `apiVersion` and `kind` an item of a typed list (`ServiceList`) has when it does not say.
private struct TypeMeta {
    var apiVersion: String
    var kind: String
}

private struct Metadata {
    var name: String
    var namespace: String
    var labels: [String: String]
    var labelsKey: Node?
    /// metadata.annotations (a Service's are read: the global-service annotations of cluster mesh).
    var annotations: [String: String]
    var key: Node
}

/// A parsed `spec.ports[]` entry and where it was written.
private struct PortEntry {
    var spec: ServicePortSpec
    var node: Node
    var path: String
    var nameNode: Node?
    var portNode: Node
    var nodePortNode: Node?
}

private struct ManifestReader {
    let file: String
    let text: String

    init(file: String, text: String) {
        self.file = file
        // A byte order mark (some Windows editors write one) is not part of the first key.
        self.text = text.first == "\u{FEFF}" ? String(text.dropFirst()) : text
    }

    func readAll() throws(ServiceManifestError) -> ServiceDocuments {
        try source.checkDocumentSizes()
        let parser: Parser
        do {
            parser = try Parser(yaml: text, resolver: .default, constructor: .default, encoding: .utf8)
        } catch {
            throw yamlError(error)
        }
        var documents = ServiceDocuments()
        while true {
            let root: Node?
            do {
                root = try parser.nextRoot()
            } catch {
                throw yamlError(error)
            }
            guard let root else { break }
            if let at = root.beyondExpansionBudget() { throw fail(at, Node.expansionProblem) }
            try document(root, into: &documents)
        }
        return documents
    }

    // MARK: Documents and objects

    private func document(_ root: Node, into documents: inout ServiceDocuments) throws(ServiceManifestError) {
        switch root {
        case .mapping:
            try object(root, path: "", itemDefault: nil, into: &documents)
        case .sequence:
            throw fail(root, "expected a Kubernetes object (a mapping with apiVersion and kind), got a list; "
                + "separate objects with --- lines, or put them under items: in a kind: List")
        default:
            if isNull(root) { return } // an empty document (comments only, a trailing ---)
            throw fail(root, "expected a Kubernetes object (a mapping with apiVersion and kind), got \(describe(root))")
        }
    }

    /// One object: a Service, an EndpointSlice, a list of objects, or anything else (skipped).
    private func object(_ node: Node, path: String, itemDefault: TypeMeta?,
                        into documents: inout ServiceDocuments) throws(ServiceManifestError) {
        let fields = try self.fields(node, path: path,
                                     what: "a Kubernetes object (a mapping with apiVersion, kind, metadata, ...)")
        let kindEntry = fields.value("kind")
        let versionEntry = fields.value("apiVersion")
        let kind: String
        if let kindEntry {
            kind = try text(kindEntry.value, path: join(path, "kind"), what: "a kind name")
        } else if let itemDefault {
            kind = itemDefault.kind
        } else {
            throw fail(node, "\(at(path))kind is required, e.g. kind: Service or kind: EndpointSlice")
        }
        var version: String?
        if let versionEntry {
            version = try text(versionEntry.value, path: join(path, "apiVersion"), what: "an API version")
        } else if let itemDefault, itemDefault.kind == kind {
            version = itemDefault.apiVersion
        }
        let kindNode = kindEntry?.value ?? node

        switch kind {
        case "Service":
            guard try isOurs(version, expected: ManifestFields.serviceVersion, kind: kind, fields: fields) else { return }
            documents.services.append(try service(fields))
        case "EndpointSlice":
            guard try isOurs(version, expected: ManifestFields.sliceVersion, kind: kind, fields: fields) else { return }
            documents.slices.append(try endpointSlice(fields))
        case "Endpoints":
            if let version, apiGroup(version).contains(".") { return } // another group's Endpoints
            throw fail(kindNode, "\(at(path))kind: Endpoints (the legacy v1 API) is not supported; use EndpointSlice "
                + "(apiVersion: \(ManifestFields.sliceVersion), kind: EndpointSlice) with the label "
                + "\(ManifestFields.serviceLabel) naming the Service")
        case "List":
            guard try isOurs(version, expected: "v1", kind: kind, fields: fields) else { return }
            try list(fields, itemDefault: nil, into: &documents)
        case "ServiceList":
            guard try isOurs(version, expected: ManifestFields.serviceVersion, kind: kind, fields: fields) else { return }
            try list(fields, itemDefault: TypeMeta(apiVersion: ManifestFields.serviceVersion, kind: "Service"),
                     into: &documents)
        case "EndpointSliceList":
            guard try isOurs(version, expected: ManifestFields.sliceVersion, kind: kind, fields: fields) else { return }
            try list(fields, itemDefault: TypeMeta(apiVersion: ManifestFields.sliceVersion, kind: "EndpointSlice"),
                     into: &documents)
        default:
            // Not ours, unless it is one of ours misspelt (in an API group where ours live).
            let ourGroup = version.map { $0 == "v1" || apiGroup($0) == "discovery.k8s.io" } ?? true
            if ourGroup, let near = ManifestText.suggestion(for: kind, among: ManifestFields.kinds) {
                throw fail(kindNode, "\(at(path))kind: \(kind) is not a Kubernetes kind; did you mean \(near)? "
                    + "(kinds are case-sensitive)")
            }
        }
    }

    /// Whether `version` is the one this reader reads `kind` as. The same kind name in another API group
    /// (a Knative Service) is someone else's: false. Another version of our group is an error.
    private func isOurs(_ version: String?, expected: String, kind: String,
                        fields: Fields) throws(ServiceManifestError) -> Bool {
        let path = fields.path
        guard let version else {
            throw fail(fields.node, "\(at(path))apiVersion is required; write apiVersion: \(expected)")
        }
        if version == expected { return true }
        let group = apiGroup(version)
        if group != apiGroup(expected), group.contains(".") { return false }
        let node = fields.value("apiVersion")?.value ?? fields.node
        var hint = ""
        if group == "discovery.k8s.io" {
            hint = " (discovery.k8s.io/v1beta1 was removed in Kubernetes 1.25; in v1, endpoints[].topology became "
                + "nodeName and zone)"
        }
        throw fail(node, "\(join(path, "apiVersion")): \(version) is not an API version of kind \(kind); "
            + "write apiVersion: \(expected)\(hint)")
    }

    /// "discovery.k8s.io" for "discovery.k8s.io/v1", "" for the core "v1".
    private func apiGroup(_ version: String) -> String {
        guard let slash = version.lastIndex(of: "/") else { return "" }
        return String(version[..<slash])
    }

    private func list(_ fields: Fields, itemDefault: TypeMeta?,
                      into documents: inout ServiceDocuments) throws(ServiceManifestError) {
        for entry in fields.entries {
            let path = join(fields.path, entry.name)
            switch entry.name {
            case "apiVersion", "kind", "metadata":
                break
            case "items":
                if isNull(entry.value) { continue }
                for (index, item) in try list(entry.value, path: path, of: "objects",
                                          example: "[{apiVersion: v1, kind: Service, ...}]").enumerated() {
                    try object(item, path: "\(path)[\(index)]", itemDefault: itemDefault, into: &documents)
                }
            default:
                throw unknownField(entry, in: fields.path, allowed: ManifestFields.list)
            }
        }
    }

    // MARK: Metadata

    private enum NameRule {
        /// A Service name: a DNS-1035 label.
        case service
        /// Other objects: a DNS-1123 subdomain.
        case object
    }

    private func metadata(_ entry: Fields.Entry, path: String, rule: NameRule) throws(ServiceManifestError) -> Metadata {
        if isNull(entry.value) {
            throw fail(entry.key, "\(path).name is required; add metadata: {name: ...}")
        }
        let fields = try self.fields(entry.value, path: path, what: "object metadata (a mapping with name, namespace, ...)")
        var name: String?
        var namespace = "default"
        var labels: [String: String] = [:]
        var labelsKey: Node?
        var annotations: [String: String] = [:]
        for field in fields.entries {
            guard ManifestFields.metadata.contains(field.name) else {
                throw unknownField(field, in: path, allowed: ManifestFields.metadata)
            }
            if isNull(field.value) { continue }
            let fieldPath = join(path, field.name)
            switch field.name {
            case "name":
                let value = try text(field.value, path: fieldPath, what: "a name")
                switch rule {
                case .service:
                    guard isDNS1035Label(value) else {
                        throw fail(field.value, "\(fieldPath): \"\(value)\" is not a valid Service name: use lowercase "
                            + "letters, digits and '-', starting with a letter and ending with a letter or digit "
                            + "(at most 63 characters)")
                    }
                case .object:
                    guard isDNSSubdomain(value) else {
                        throw fail(field.value, "\(fieldPath): \"\(value)\" is not a valid name: use lowercase letters, "
                            + "digits, '-' and '.', starting and ending with a letter or digit (at most 253 characters)")
                    }
                }
                name = value
            case "namespace":
                let value = try text(field.value, path: fieldPath, what: "a namespace name")
                if value.isEmpty { continue }
                guard isDNS1123Label(value) else {
                    throw fail(field.value, "\(fieldPath): \"\(value)\" is not a valid namespace name: use lowercase "
                        + "letters, digits and '-', starting and ending with a letter or digit (at most 63 characters)")
                }
                namespace = value
            case "labels":
                labelsKey = field.key
                labels = try stringMap(field.value, path: fieldPath, what: "labels")
            case "annotations":
                annotations = try stringMap(field.value, path: fieldPath, what: "annotations")
            default:
                break // generateName, uid, resourceVersion, managedFields, ...: the cluster's
            }
        }
        guard let name, !name.isEmpty else {
            throw fail(entry.key, "\(path).name is required")
        }
        return Metadata(name: name, namespace: namespace, labels: labels, labelsKey: labelsKey, annotations: annotations,
                        key: entry.key)
    }

    /// A mapping of string keys to string values (labels, a selector). A null value reads as "".
    private func stringMap(_ node: Node, path: String, what: String) throws(ServiceManifestError) -> [String: String] {
        let fields = try self.fields(node, path: path, what: "a mapping of \(what) (key: value)")
        var map: [String: String] = [:]
        for entry in fields.entries {
            guard !entry.name.isEmpty else {
                throw fail(entry.key, "\(path): a key cannot be empty")
            }
            map[entry.name] = isNull(entry.value)
                ? "" : try text(entry.value, path: join(path, entry.name), what: "a string value")
        }
        return map
    }

    // MARK: Service

    private func service(_ fields: Fields) throws(ServiceManifestError) -> ServiceManifest {
        let path = fields.path
        var metadata: Metadata?
        var spec: Fields.Entry?
        var status: Fields.Entry?
        for entry in fields.entries {
            switch entry.name {
            case "apiVersion", "kind":
                break // checked by the caller
            case "metadata":
                metadata = try self.metadata(entry, path: join(path, "metadata"), rule: .service)
            case "spec":
                if !isNull(entry.value) { spec = entry }
            case "status":
                if !isNull(entry.value) { status = entry }
            default:
                throw unknownField(entry, in: path, allowed: ManifestFields.service)
            }
        }
        guard let metadata else {
            throw fail(fields.node, "\(at(path))metadata.name is required; add metadata: {name: ...}")
        }
        guard let spec else {
            throw fail(fields.node, "\(at(path))spec is required: Service \(metadata.name) needs at least spec.ports")
        }
        var service = try serviceSpec(spec, path: join(path, "spec"), metadata: metadata)
        if let status {
            let ingress = try serviceStatus(status.value, path: join(path, "status"))
            if !ingress.ips.isEmpty, service.type != .loadBalancer, let node = ingress.node {
                throw fail(node, "\(join(path, "status.loadBalancer.ingress")): only a type: LoadBalancer Service has "
                    + "load balancer ingress addresses; this one is type \(service.type.rawValue)")
            }
            for ip in ingress.ips where !service.loadBalancerIPs.contains(ip) {
                service.loadBalancerIPs.append(ip)
            }
        }
        return service
    }

    private func serviceSpec(_ entry: Fields.Entry, path: String,
                             metadata: Metadata) throws(ServiceManifestError) -> ServiceManifest {
        let spec = try fields(entry.value, path: path, what: "a Service spec (a mapping with ports, selector, type, ...)")
        for field in spec.entries {
            if let why = ManifestFields.serviceSpecRemoved[field.name] {
                throw fail(field.key, "\(path): \(why)")
            }
            guard ManifestFields.serviceSpec.contains(field.name) else {
                throw unknownField(field, in: path, allowed: ManifestFields.serviceSpec)
            }
        }
        func fieldPath(_ name: String) -> String { join(path, name) }

        // type first: what else is allowed depends on it.
        var type = ServiceType.clusterIP
        if let field = spec.value("type") {
            let name = try text(field.value, path: fieldPath("type"), what: "a Service type")
            if name == "ExternalName" {
                throw fail(field.value, "\(fieldPath("type")): ExternalName is not supported: an ExternalName Service "
                    + "is a DNS alias (a CNAME record) with nothing to load-balance; to send traffic to fixed "
                    + "addresses, use a Service without a selector and an EndpointSlice listing them. "
                    + "Supported types: \(ManifestFields.types.joined(separator: ", "))")
            }
            if !name.isEmpty { // "" is defaulted to ClusterIP upstream
                guard let parsed = ServiceType(rawValue: name) else {
                    throw badEnum(field.value, path: fieldPath("type"), value: name, what: "Service type",
                                  valid: ManifestFields.types + ["ExternalName (not supported)"],
                                  candidates: ManifestFields.types + ["ExternalName"])
                }
                type = parsed
            }
        }
        if let field = spec.value("externalName") {
            let name = try text(field.value, path: fieldPath("externalName"), what: "a DNS name")
            if !name.isEmpty {
                throw fail(field.key, "\(fieldPath("externalName")): externalName belongs to type: ExternalName "
                    + "Services, which are not supported; remove it")
            }
        }

        // Addresses.
        let clusterIP = try self.clusterIP(spec, path: path, type: type)
        var externalIPs: [String] = []
        if let field = spec.value("externalIPs") {
            for (index, item) in try list(field.value, path: fieldPath("externalIPs"), of: "IPv4 addresses").enumerated() {
                let address = try ipv4(item, path: "\(fieldPath("externalIPs"))[\(index)]")
                if !externalIPs.contains(address) { externalIPs.append(address) }
            }
        }
        var loadBalancerIPs: [String] = []
        if let field = spec.value("loadBalancerIP") {
            let value = try text(field.value, path: fieldPath("loadBalancerIP"), what: "an IPv4 address")
            if !value.isEmpty {
                guard type == .loadBalancer else {
                    throw fail(field.key, "\(fieldPath("loadBalancerIP")): only a type: LoadBalancer Service has a load "
                        + "balancer IP; this one is type \(type.rawValue) (set spec.type: LoadBalancer, or use "
                        + "externalIPs)")
                }
                loadBalancerIPs.append(try ipv4(field.value, path: fieldPath("loadBalancerIP")))
            }
        }
        try checkIPFamilies(spec, path: path)

        // Ports.
        let ports = try servicePorts(spec, path: path, type: type)
        if ports.isEmpty, clusterIP != "None" {
            throw fail(spec.value("ports")?.value ?? entry.key, "\(fieldPath("ports")): Service \(metadata.name) needs "
                + "at least one port, e.g. ports: [{port: 80, targetPort: 8080}] (only a headless Service, "
                + "clusterIP: None, may have none)")
        }

        // Selector.
        var selector: [String: String]?
        if let field = spec.value("selector") {
            let map = try stringMap(field.value, path: fieldPath("selector"), what: "labels")
            selector = map.isEmpty ? nil : map // an empty selector selects nothing: no selector
        }

        // Session affinity.
        var affinityTimeout: UInt32?
        var clientIP = false
        if let field = spec.value("sessionAffinity") {
            let name = try text(field.value, path: fieldPath("sessionAffinity"), what: "a session affinity")
            switch name {
            case "ClientIP": clientIP = true
            case "None", "": break
            default:
                throw badEnum(field.value, path: fieldPath("sessionAffinity"), value: name, what: "session affinity",
                              valid: ManifestFields.affinities)
            }
        }
        if let field = spec.value("sessionAffinityConfig") {
            guard clientIP else {
                throw fail(field.key, "\(fieldPath("sessionAffinityConfig")) must not be set when sessionAffinity is "
                    + "None; set sessionAffinity: ClientIP, or remove sessionAffinityConfig")
            }
            affinityTimeout = try affinityConfig(field.value, path: fieldPath("sessionAffinityConfig"))
        }
        if clientIP, affinityTimeout == nil {
            affinityTimeout = 10800 // upstream's default: 3 hours
        }

        // Traffic policies.
        var externalPolicy = TrafficPolicy.cluster
        if let field = spec.value("externalTrafficPolicy") {
            externalPolicy = try trafficPolicy(field.value, path: fieldPath("externalTrafficPolicy"))
            let externallyAccessible = type != .clusterIP || !externalIPs.isEmpty
            if externalPolicy == .local, !externallyAccessible {
                throw fail(field.value, "\(fieldPath("externalTrafficPolicy")): Local applies to traffic from outside "
                    + "the cluster, which a type: ClusterIP Service without externalIPs does not receive; set "
                    + "spec.type: NodePort or LoadBalancer, or remove externalTrafficPolicy (or use "
                    + "internalTrafficPolicy: Local for traffic from inside the cluster)")
            }
        }
        var internalPolicy = TrafficPolicy.cluster
        if let field = spec.value("internalTrafficPolicy") {
            internalPolicy = try trafficPolicy(field.value, path: fieldPath("internalTrafficPolicy"))
        }

        // publishNotReadyAddresses, allocateLoadBalancerNodePorts, loadBalancerClass, loadBalancerSourceRanges,
        // healthCheckNodePort, trafficDistribution: accepted, not used by this datapath.

        return ServiceManifest(name: metadata.name, namespace: metadata.namespace, type: type, clusterIP: clusterIP,
                               externalIPs: externalIPs, loadBalancerIPs: loadBalancerIPs, ports: ports.map(\.spec),
                               selector: selector, affinityTimeout: affinityTimeout,
                               externalTrafficPolicy: externalPolicy, internalTrafficPolicy: internalPolicy,
                               labels: metadata.labels, annotations: metadata.annotations)
    }

    /// spec.clusterIP / spec.clusterIPs: "None" (headless), the first IPv4 address, or nil when neither is set.
    private func clusterIP(_ spec: Fields, path: String, type: ServiceType) throws(ServiceManifestError) -> String? {
        var written: [(address: String, node: Node, path: String)] = []
        var single: (address: String, node: Node)?
        if let field = spec.value("clusterIP") {
            let fieldPath = join(path, "clusterIP")
            let value = try text(field.value, path: fieldPath, what: "an IPv4 address or None")
            if !value.isEmpty {
                try checkClusterIP(value, node: field.value, path: fieldPath)
                single = (value, field.value)
                written.append((value, field.value, fieldPath))
            }
        }
        if let field = spec.value("clusterIPs") {
            let fieldPath = join(path, "clusterIPs")
            let items = try list(field.value, path: fieldPath, of: "cluster IPs")
            for (index, item) in items.enumerated() {
                let itemPath = "\(fieldPath)[\(index)]"
                let value = try text(item, path: itemPath, what: "an IPv4 address or None")
                try checkClusterIP(value, node: item, path: itemPath)
                if index == 0, let single, single.address != value {
                    throw fail(item, "\(itemPath): \(value) differs from spec.clusterIP \(single.address); "
                        + "clusterIPs[0] must be the same address as clusterIP")
                }
                if value == "None", index > 0 {
                    throw fail(item, "\(itemPath): None may only be the single entry of clusterIPs")
                }
                written.append((value, item, itemPath))
            }
        }
        guard let primary = written.first else { return nil }
        if primary.address == "None" {
            if type != .clusterIP {
                throw fail(primary.node, "\(primary.path): a headless Service (clusterIP: None) cannot be type "
                    + "\(type.rawValue); remove clusterIP: None, or use type: ClusterIP")
            }
            return "None"
        }
        if let address = written.first(where: { !$0.address.contains(":") }) {
            return address.address
        }
        throw fail(primary.node, "\(primary.path): \(primary.address) is an IPv6 address and the Service has no IPv4 "
            + "cluster IP; this datapath is IPv4 only")
    }

    /// "None", a strict IPv4 address, or an IPv6 address (accepted here, used only if no IPv4 one is given).
    private func checkClusterIP(_ value: String, node: Node, path: String) throws(ServiceManifestError) {
        if value == "None" { return }
        if value.contains(":") {
            guard isIPv6(value) else {
                throw fail(node, "\(path): \"\(value)\" is not a valid IP address; write an IPv4 address such as "
                    + "10.96.0.10, or None for a headless Service")
            }
            return
        }
        if value.lowercased() == "none" {
            throw fail(node, "\(path): \"\(value)\" is not valid; write None (capital N, the rest lowercase) for a "
                + "headless Service")
        }
        if case .failure(let problem) = IPv4Address.parse(value) {
            throw fail(node, "\(path): \(problem.message) (or None for a headless Service)")
        }
    }

    /// ipFamilies / ipFamilyPolicy: accepted, unless they make an IPv6-only Service.
    private func checkIPFamilies(_ spec: Fields, path: String) throws(ServiceManifestError) {
        if let field = spec.value("ipFamilyPolicy") {
            let fieldPath = join(path, "ipFamilyPolicy")
            let name = try text(field.value, path: fieldPath, what: "an IP family policy")
            if !name.isEmpty, !ManifestFields.ipFamilyPolicies.contains(name) {
                throw badEnum(field.value, path: fieldPath, value: name, what: "IP family policy",
                              valid: ManifestFields.ipFamilyPolicies)
            }
        }
        guard let field = spec.value("ipFamilies") else { return }
        let fieldPath = join(path, "ipFamilies")
        var families: [String] = []
        for (index, item) in try list(field.value, path: fieldPath, of: "IP families").enumerated() {
            let itemPath = "\(fieldPath)[\(index)]"
            let name = try text(item, path: itemPath, what: "an IP family")
            guard ManifestFields.ipFamilies.contains(name) else {
                throw badEnum(item, path: itemPath, value: name, what: "IP family", valid: ManifestFields.ipFamilies)
            }
            families.append(name)
        }
        if !families.isEmpty, !families.contains("IPv4") {
            throw fail(field.value, "\(fieldPath): [\(families.joined(separator: ", "))] makes an IPv6-only Service; "
                + "this datapath is IPv4 only (use ipFamilies: [IPv4], or list IPv4 with ipFamilyPolicy: "
                + "PreferDualStack)")
        }
    }

    private func servicePorts(_ spec: Fields, path: String,
                              type: ServiceType) throws(ServiceManifestError) -> [PortEntry] {
        guard let field = spec.value("ports") else { return [] }
        let listPath = join(path, "ports")
        var ports: [PortEntry] = []
        for (index, item) in try list(field.value, path: listPath, of: "ports", example: "[{port: 80}]").enumerated() {
            ports.append(try servicePort(item, path: "\(listPath)[\(index)]", type: type))
        }
        if ports.count > 1, let unnamed = ports.first(where: { $0.spec.name == nil }) {
            throw fail(unnamed.node, "\(unnamed.path): name is required when a Service has more than one port "
                + "(this one has \(ports.count)); give each port a unique name, e.g. name: http")
        }
        for (index, port) in ports.enumerated() {
            for earlier in ports[..<index] {
                if let name = port.spec.name, name == earlier.spec.name {
                    throw fail(port.nameNode ?? port.node, "\(port.path).name: duplicate port name \"\(name)\" "
                        + "(\(earlier.path) has it); port names must be unique")
                }
                if port.spec.port == earlier.spec.port, port.spec.proto == earlier.spec.proto {
                    throw fail(port.portNode, "\(port.path).port: duplicate port \(port.spec.port)/"
                        + "\(port.spec.proto.rawValue) (\(earlier.path) has it); each port and protocol may be listed once")
                }
                if let nodePort = port.spec.nodePort, nodePort == earlier.spec.nodePort,
                   port.spec.proto == earlier.spec.proto {
                    throw fail(port.nodePortNode ?? port.node, "\(port.path).nodePort: duplicate node port \(nodePort)/"
                        + "\(port.spec.proto.rawValue) (\(earlier.path) has it)")
                }
            }
        }
        return ports
    }

    private func servicePort(_ node: Node, path: String, type: ServiceType) throws(ServiceManifestError) -> PortEntry {
        let fields = try self.fields(node, path: path, what: "a port (a mapping such as {port: 80, targetPort: 8080})")
        var name: String?
        var nameNode: Node?
        var proto = ServiceProtocol.tcp
        var port: (value: UInt16, node: Node)?
        var targetPort: ServicePortSpec.TargetPort?
        var nodePort: UInt16?
        var nodePortNode: Node?
        for entry in fields.entries {
            guard ManifestFields.servicePort.contains(entry.name) else {
                throw unknownField(entry, in: path, allowed: ManifestFields.servicePort)
            }
            if isNull(entry.value) { continue }
            let fieldPath = join(path, entry.name)
            switch entry.name {
            case "name":
                name = try portName(entry.value, path: fieldPath)
                nameNode = entry.value
            case "protocol":
                proto = try serviceProtocol(entry.value, path: fieldPath)
            case "appProtocol":
                _ = try text(entry.value, path: fieldPath, what: "an application protocol name")
            case "port":
                port = (UInt16(try integer(entry.value, path: fieldPath, what: "a port number", range: 1...65535)),
                        entry.value)
            case "targetPort":
                targetPort = try self.targetPort(entry.value, path: fieldPath)
            case "nodePort":
                let value = try integer(entry.value, path: fieldPath, what: "a node port number", range: 0...65535)
                guard type != .clusterIP else {
                    throw fail(entry.key, "\(fieldPath): a node port needs type: NodePort or LoadBalancer, and this "
                        + "Service is type ClusterIP; remove nodePort, or set spec.type: NodePort")
                }
                nodePort = value == 0 ? nil : UInt16(value) // 0: let the cluster allocate one
                nodePortNode = entry.value
            default:
                break
            }
        }
        guard let port else {
            throw fail(node, "\(path): port is required: the port the Service listens on (1-65535), "
                + "e.g. port: 80")
        }
        return PortEntry(spec: ServicePortSpec(name: name, port: port.value, proto: proto, targetPort: targetPort,
                                               nodePort: nodePort),
                         node: node, path: path, nameNode: nameNode, portNode: port.node, nodePortNode: nodePortNode)
    }

    /// A Service or EndpointSlice port name: a DNS-1123 label; "" reads as no name.
    private func portName(_ node: Node, path: String) throws(ServiceManifestError) -> String? {
        let value = try text(node, path: path, what: "a port name")
        if value.isEmpty { return nil }
        guard isDNS1123Label(value) else {
            throw fail(node, "\(path): \"\(value)\" is not a valid port name: use lowercase letters, digits and '-', "
                + "starting and ending with a letter or digit (at most 63 characters)")
        }
        return value
    }

    private func serviceProtocol(_ node: Node, path: String) throws(ServiceManifestError) -> ServiceProtocol {
        let name = try text(node, path: path, what: "a protocol (TCP, UDP or SCTP)")
        if name.isEmpty { return .tcp } // upstream defaults "" to TCP
        if let proto = ServiceProtocol(rawValue: name) { return proto }
        if let proto = ServiceProtocol(rawValue: name.uppercased()) {
            throw fail(node, "\(path): protocol \"\(name)\" is not valid; did you mean \(proto.rawValue)? "
                + "Protocols are case-sensitive: TCP, UDP, SCTP")
        }
        var hint = ""
        if ["HTTP", "HTTPS", "HTTP2", "H2C", "GRPC", "TLS", "WS", "WSS"].contains(name.uppercased()) {
            hint = "; \(name) is an application protocol: write protocol: TCP with appProtocol: \(name.lowercased())"
        }
        throw fail(node, "\(path): protocol \"\(name)\" is not valid; expected TCP, UDP or SCTP\(hint)")
    }

    /// An int (a port number) or a string (a container port name). 0 and "" read as absent (= port).
    private func targetPort(_ node: Node, path: String) throws(ServiceManifestError) -> ServicePortSpec.TargetPort? {
        guard case .scalar(let scalar) = node else {
            throw fail(node, "\(path): expected a port number (1-65535) or a port name, got \(describe(node))")
        }
        let raw = scalar.string
        let plainDigits = scalar.style == .plain && !raw.isEmpty && raw.allSatisfy(\.isASCIIDigit)
        if tagName(node) == .int || ((tagName(node) == .str || tagName(node) == .float) && plainDigits) {
            let value = try integer(node, path: path, what: "a port number", range: 0...65535)
            return value == 0 ? nil : .number(UInt16(value))
        }
        let name = try text(node, path: path, what: "a port number (1-65535) or a port name")
        if name.isEmpty { return nil }
        if name.allSatisfy(\.isASCIIDigit) {
            throw fail(node, "\(path): \"\(name)\" is a string, which names a container port, and a port name must "
                + "contain a letter; write the number without quotes: targetPort: \(name)")
        }
        guard isIANAServiceName(name) else {
            throw fail(node, "\(path): \"\(name)\" is not a valid port name: at most 15 characters, lowercase "
                + "letters, digits and '-', with at least one letter, not starting or ending with '-' and without '--'")
        }
        return .name(name)
    }

    private func affinityConfig(_ node: Node, path: String) throws(ServiceManifestError) -> UInt32? {
        let fields = try self.fields(node, path: path, what: "a mapping {clientIP: {timeoutSeconds: ...}}")
        var timeout: UInt32?
        for entry in fields.entries {
            guard entry.name == "clientIP" else {
                throw unknownField(entry, in: path, allowed: ManifestFields.sessionAffinityConfig)
            }
            if isNull(entry.value) { continue }
            let clientPath = join(path, "clientIP")
            let config = try self.fields(entry.value, path: clientPath, what: "a mapping {timeoutSeconds: ...}")
            for field in config.entries {
                guard field.name == "timeoutSeconds" else {
                    throw unknownField(field, in: clientPath, allowed: ManifestFields.clientIPConfig)
                }
                if isNull(field.value) { continue }
                timeout = UInt32(try integer(field.value, path: join(clientPath, "timeoutSeconds"),
                                             what: "a timeout in seconds", range: 1...86400))
            }
        }
        return timeout
    }

    private func trafficPolicy(_ node: Node, path: String) throws(ServiceManifestError) -> TrafficPolicy {
        let name = try text(node, path: path, what: "a traffic policy (Cluster or Local)")
        if name.isEmpty { return .cluster }
        guard let policy = TrafficPolicy(rawValue: name) else {
            throw badEnum(node, path: path, value: name, what: "traffic policy",
                          valid: ManifestFields.trafficPolicies)
        }
        return policy
    }

    /// status.loadBalancer.ingress[].ip: the IPv4 addresses, and the node to point at.
    private func serviceStatus(_ node: Node, path: String) throws(ServiceManifestError) -> (ips: [String], node: Node?) {
        let status = try fields(node, path: path, what: "a Service status (a mapping with loadBalancer)")
        var ips: [String] = []
        var ingressNode: Node?
        for entry in status.entries {
            guard ManifestFields.serviceStatus.contains(entry.name) else {
                throw unknownField(entry, in: path, allowed: ManifestFields.serviceStatus)
            }
            guard entry.name == "loadBalancer", !isNull(entry.value) else { continue } // conditions: the cluster's
            let lbPath = join(path, "loadBalancer")
            let loadBalancer = try fields(entry.value, path: lbPath, what: "a mapping {ingress: [...]}")
            for lbEntry in loadBalancer.entries {
                guard lbEntry.name == "ingress" else {
                    throw unknownField(lbEntry, in: lbPath, allowed: ManifestFields.loadBalancerStatus)
                }
                if isNull(lbEntry.value) { continue }
                let ingressPath = join(lbPath, "ingress")
                let items = try list(lbEntry.value, path: ingressPath, of: "ingress points", example: "[{ip: 192.0.2.127}]")
                if !items.isEmpty { ingressNode = lbEntry.key }
                for (index, item) in items.enumerated() {
                    let itemPath = "\(ingressPath)[\(index)]"
                    let ingress = try fields(item, path: itemPath, what: "an ingress point (a mapping such as {ip: ...})")
                    for field in ingress.entries {
                        guard ManifestFields.loadBalancerIngress.contains(field.name) else {
                            throw unknownField(field, in: itemPath, allowed: ManifestFields.loadBalancerIngress)
                        }
                        guard field.name == "ip", !isNull(field.value) else { continue } // hostname, ipMode, ports
                        let ipPath = join(itemPath, "ip")
                        let value = try text(field.value, path: ipPath, what: "an IP address")
                        if value.isEmpty { continue }
                        if value.contains(":") {
                            // The cluster's dual-stack answer: the IPv6 side is not served, the IPv4 side is.
                            guard isIPv6(value) else {
                                throw fail(field.value, "\(ipPath): \"\(value)\" is not a valid IP address")
                            }
                            continue
                        }
                        let address = try ipv4(field.value, path: ipPath)
                        if !ips.contains(address) { ips.append(address) }
                    }
                }
            }
        }
        return (ips, ingressNode)
    }

    // MARK: EndpointSlice

    private func endpointSlice(_ fields: Fields) throws(ServiceManifestError) -> EndpointSliceManifest {
        let path = fields.path
        for entry in fields.entries where !ManifestFields.slice.contains(entry.name) {
            throw unknownField(entry, in: path, allowed: ManifestFields.slice)
        }
        guard let metadataEntry = fields.entry("metadata") else {
            throw fail(fields.node, "\(at(path))metadata is required: a name and the label "
                + "\(ManifestFields.serviceLabel) naming the Service")
        }
        let metadata = try self.metadata(metadataEntry, path: join(path, "metadata"), rule: .object)
        let labelsPath = join(path, "metadata.labels")
        guard let serviceName = metadata.labels[ManifestFields.serviceLabel] else {
            throw fail(metadata.labelsKey ?? metadata.key, "\(labelsPath): the label \(ManifestFields.serviceLabel) "
                + "is missing; it names the Service whose backends this EndpointSlice lists, e.g. labels: "
                + "{\(ManifestFields.serviceLabel): my-service}")
        }
        guard isDNS1035Label(serviceName) else {
            let node = labelValueNode(metadataEntry.value, label: ManifestFields.serviceLabel) ?? metadata.key
            throw fail(node, "\(labelsPath).\(ManifestFields.serviceLabel): \"\(serviceName)\" is not a Service name: "
                + "use lowercase letters, digits and '-', starting with a letter (at most 63 characters)")
        }

        // addressType before the addresses: an IPv6 slice is one error, not one per address.
        guard let typeEntry = fields.value("addressType") else {
            throw fail(fields.node, "\(at(path))addressType is required; write addressType: IPv4")
        }
        let typePath = join(path, "addressType")
        let addressType = try text(typeEntry.value, path: typePath, what: "an address type")
        switch addressType {
        case "IPv4":
            break
        case "IPv6", "FQDN":
            throw fail(typeEntry.value, "\(typePath): \(addressType) EndpointSlices are not supported: this datapath "
                + "is IPv4 only; use addressType: IPv4 with IPv4 addresses")
        default:
            throw badEnum(typeEntry.value, path: typePath, value: addressType, what: "address type",
                          valid: ManifestFields.addressTypes)
        }

        var ports: [EndpointSliceManifest.Port] = []
        if let entry = fields.value("ports") {
            ports = try slicePorts(entry.value, path: join(path, "ports"))
        }
        var endpoints: [EndpointSliceManifest.Endpoint] = []
        if let entry = fields.value("endpoints") { // absent or null: no endpoints (a Service without ready pods)
            let listPath = join(path, "endpoints")
            for (index, item) in try list(entry.value, path: listPath, of: "endpoints",
                                          example: "[{addresses: [\"10.1.2.3\"]}]").enumerated() {
                endpoints.append(try endpoint(item, path: "\(listPath)[\(index)]"))
            }
        }
        return EndpointSliceManifest(name: metadata.name, namespace: metadata.namespace, serviceName: serviceName,
                                     ports: ports, endpoints: endpoints)
    }

    /// The value node of one label in a metadata mapping, to point at.
    private func labelValueNode(_ metadata: Node, label: String) -> Node? {
        guard case .mapping(let mapping) = metadata,
              let labels = mapping.first(where: { $0.key.string == "labels" })?.value,
              case .mapping(let labelMap) = labels else { return nil }
        return labelMap.first(where: { $0.key.string == label })?.value
    }

    private func slicePorts(_ node: Node, path: String) throws(ServiceManifestError) -> [EndpointSliceManifest.Port] {
        var ports: [(port: EndpointSliceManifest.Port, node: Node, path: String)] = []
        for (index, item) in try list(node, path: path, of: "ports", example: "[{name: http, port: 8080}]").enumerated() {
            let itemPath = "\(path)[\(index)]"
            let fields = try self.fields(item, path: itemPath, what: "a port (a mapping such as {name: http, port: 8080})")
            var name: String?
            var proto = ServiceProtocol.tcp
            var number: UInt16?
            for entry in fields.entries {
                guard ManifestFields.slicePort.contains(entry.name) else {
                    throw unknownField(entry, in: itemPath, allowed: ManifestFields.slicePort)
                }
                if isNull(entry.value) { continue }
                let fieldPath = join(itemPath, entry.name)
                switch entry.name {
                case "name": name = try portName(entry.value, path: fieldPath)
                case "protocol": proto = try serviceProtocol(entry.value, path: fieldPath)
                case "port":
                    number = UInt16(try integer(entry.value, path: fieldPath, what: "a port number", range: 1...65535))
                default: _ = try text(entry.value, path: fieldPath, what: "an application protocol name")
                }
            }
            guard let number else {
                throw fail(item, "\(itemPath): port is required: the port the endpoints listen on (1-65535); a slice "
                    + "port without a number (meaning every port) is not supported")
            }
            let port = EndpointSliceManifest.Port(name: name, port: number, proto: proto)
            if let earlier = ports.first(where: { $0.port.name == name }) {
                let what = name.map { "duplicate port name \"\($0)\"" } ?? "a second port without a name"
                throw fail(item, "\(itemPath): \(what) (\(earlier.path) has it); the ports of an EndpointSlice "
                    + "need unique names")
            }
            ports.append((port, item, itemPath))
        }
        return ports.map(\.port)
    }

    private func endpoint(_ node: Node, path: String) throws(ServiceManifestError) -> EndpointSliceManifest.Endpoint {
        let fields = try self.fields(node, path: path, what: "an endpoint (a mapping such as {addresses: [10.0.0.1]})")
        var addresses: [String] = []
        var sawAddresses = false
        var ready: Bool?
        var serving: Bool?
        var terminating: Bool?
        var nodeName: String?
        for entry in fields.entries {
            if let why = ManifestFields.endpointRemoved[entry.name] {
                throw fail(entry.key, "\(path): \(why)")
            }
            guard ManifestFields.endpoint.contains(entry.name) else {
                throw unknownField(entry, in: path, allowed: ManifestFields.endpoint)
            }
            if isNull(entry.value) { continue }
            let fieldPath = join(path, entry.name)
            switch entry.name {
            case "addresses":
                sawAddresses = true
                let items = try list(entry.value, path: fieldPath, of: "IPv4 addresses")
                guard !items.isEmpty else {
                    throw fail(entry.value, "\(fieldPath): an endpoint needs at least one address")
                }
                guard items.count <= 100 else {
                    throw fail(entry.value, "\(fieldPath): \(items.count) addresses; an endpoint has at most 100")
                }
                for (index, item) in items.enumerated() {
                    let address = try ipv4(item, path: "\(fieldPath)[\(index)]")
                    if !addresses.contains(address) { addresses.append(address) }
                }
            case "conditions":
                let conditions = try self.fields(entry.value, path: fieldPath,
                                                 what: "a mapping {ready, serving, terminating}")
                for condition in conditions.entries {
                    guard ManifestFields.conditions.contains(condition.name) else {
                        throw unknownField(condition, in: fieldPath, allowed: ManifestFields.conditions)
                    }
                    if isNull(condition.value) { continue }
                    let value = try bool(condition.value, path: join(fieldPath, condition.name))
                    switch condition.name {
                    case "ready": ready = value
                    case "serving": serving = value
                    default: terminating = value
                    }
                }
            case "nodeName":
                let value = try text(entry.value, path: fieldPath, what: "a node name")
                nodeName = value.isEmpty ? nil : value
            case "hostname", "zone":
                _ = try text(entry.value, path: fieldPath, what: "a name")
            default:
                break // targetRef, hints, deprecatedTopology: not used by this datapath
            }
        }
        guard sawAddresses else {
            throw fail(node, "\(path): addresses is required: the endpoint's IPv4 address, e.g. "
                + "addresses: [\"10.1.2.3\"]")
        }
        // Upstream: a nil ready means ready; a nil serving means the same as ready.
        let isReady = ready ?? true
        return EndpointSliceManifest.Endpoint(addresses: addresses, ready: isReady, serving: serving ?? isReady,
                                              terminating: terminating ?? false, nodeName: nodeName)
    }

    // MARK: Node helpers

    private var source: ManifestSource { ManifestSource(file: file, text: text) }

    private func fields(_ node: Node, path: String, what: String) throws(ServiceManifestError) -> Fields {
        try source.fields(node, path: path, what: what)
    }


    /// A string-typed field: a YAML string. A number or a boolean is an error, as in the API server's JSON
    /// decoding (`version: 2` in a selector is not the string "2").
    private func text(_ node: Node, path: String, what: String) throws(ServiceManifestError) -> String {
        guard case .scalar(let scalar) = node, !isNull(node) else {
            throw fail(node, "\(at(path))expected \(what), got \(describe(node))")
        }
        guard tagName(node) == .str else {
            throw fail(node, "\(at(path))expected \(what), got \(describe(node)); quote it if it is meant as text: "
                + "\"\(scalar.string)\"")
        }
        return scalar.string
    }

    private func list(_ node: Node, path: String, of what: String, example: String? = nil) throws(ServiceManifestError) -> [Node] {
        try source.list(node, path: path, of: what, example: example)
    }

    private func bool(_ node: Node, path: String) throws(ServiceManifestError) -> Bool { try source.bool(node, path: path) }

    /// A decimal integer within `range`.
    private func integer(_ node: Node, path: String, what: String,
                         range: ClosedRange<Int>) throws(ServiceManifestError) -> Int {
        let expected = "expected \(what) (\(range.lowerBound)-\(range.upperBound))"
        guard case .scalar(let scalar) = node else {
            throw fail(node, "\(path): \(expected), got \(describe(node))")
        }
        let raw = scalar.string
        let digits = raw.hasPrefix("-") ? raw.dropFirst() : Substring(raw)
        let decimal = !digits.isEmpty && digits.allSatisfy(\.isASCIIDigit)
        // A plain "080" resolves as a YAML 1.1 float, "09" as a string: read both as the number meant.
        let plain = scalar.style == .plain
        switch tagName(node) {
        case .int where decimal, .float where decimal && plain, .str where decimal && plain:
            if digits.count > 1, digits.hasPrefix("0") {
                let trimmed = digits.drop { $0 == "0" }
                throw fail(node, "\(path): \(raw) has a leading zero; write \(raw.hasPrefix("-") ? "-" : "")"
                    + "\(trimmed.isEmpty ? "0" : trimmed)")
            }
            guard let value = Int(raw), range.contains(value) else {
                throw fail(node, "\(path): \(raw) is out of range; \(what) is \(range.lowerBound)-\(range.upperBound)")
            }
            return value
        case .int:
            throw fail(node, "\(path): \(raw) must be written in decimal (\(range.lowerBound)-\(range.upperBound))")
        case .str where decimal:
            throw fail(node, "\(path): \(expected), got the string \"\(raw)\"; write the number without quotes")
        default:
            throw fail(node, "\(path): \(expected), got \(describe(node))")
        }
    }

    /// A strict dotted-quad IPv4 address.
    private func ipv4(_ node: Node, path: String) throws(ServiceManifestError) -> String {
        let value = try text(node, path: path, what: "an IPv4 address")
        switch IPv4Address.parse(value) {
        case .success(let address): return address
        case .failure(let problem): throw fail(node, "\(path): \(problem.message)")
        }
    }

    private func badEnum(_ node: Node, path: String, value: String, what: String, valid: [String],
                         candidates: [String]? = nil) -> ServiceManifestError {
        let hint = ManifestText.endOfSentence(suggesting: ManifestText.suggestion(for: value, among: candidates ?? valid))
        return fail(node, "\(path): \"\(value)\" is not a valid \(what)\(hint) Valid: \(valid.joined(separator: ", ")) "
            + "(case-sensitive)")
    }

    /// The resolved tag (str, int, bool, null, ...); quoted scalars are always str.
    private func tagName(_ node: Node) -> Tag.Name { node.tagName }

    private func isNull(_ node: Node) -> Bool { node.isNullScalar }

    private func describe(_ node: Node) -> String { node.described }

    private func unknownField(_ entry: Fields.Entry, in path: String, allowed: [String]) -> ServiceManifestError {
        fail(entry.key, "\(at(path))unknown field \"\(entry.name)\""
            + ManifestText.endOfSentence(suggesting: ManifestText.suggestion(for: entry.name, among: allowed))
            + " Allowed here: \(allowed.joined(separator: ", "))")
    }

    private func fail(_ node: Node, _ problem: String) -> ServiceManifestError { source.error(at: node, problem) }

    private func at(_ path: String) -> String { ManifestText.at(path) }

    private func join(_ path: String, _ field: String) -> String { ManifestText.join(path, field) }

    // MARK: YAML errors

    private func yamlError(_ error: any Error) -> ServiceManifestError { source.error(for: error) }
}

// MARK: - Names

private func isDNS1123Label(_ name: String) -> Bool { ManifestText.isDNS1123Label(name) }

/// A DNS-1035 label (Service names): a DNS-1123 label that starts with a letter.
private func isDNS1035Label(_ name: String) -> Bool {
    guard let first = name.first, first.isASCII, first.isLetter else { return false }
    return isDNS1123Label(name)
}

private func isDNSSubdomain(_ name: String) -> Bool { ManifestText.isDNSSubdomain(name) }

/// An IANA service name (a named targetPort): <= 15 characters, lowercase alphanumerics and '-', at least one
/// letter, no '-' at either end, no "--".
private func isIANAServiceName(_ name: String) -> Bool {
    guard !name.isEmpty, name.count <= 15, name.first != "-", name.last != "-", !name.contains("--") else {
        return false
    }
    return name.allSatisfy { $0.isLowerAlphanumeric || $0 == "-" } && name.contains { $0.isASCII && $0.isLetter }
}

private extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
    var isLowerAlphanumeric: Bool { isASCII && (isLowercase || isNumber) }
}

// MARK: - Addresses

private enum IPv4Address {
    struct Problem: Error {
        var message: String
    }

    /// A strict dotted quad (`IPv4Text`, the project's one reading). Returns the address as written.
    static func parse(_ text: String) -> Result<String, Problem> {
        switch IPv4Text.address(text) {
        case .success: return .success(text)
        case .failure(let problem): return .failure(Problem(message: problem.message(for: text)))
        }
    }
}

/// Whether `text` is an IPv6 address (eight hex groups, "::" once at most, an IPv4 tail allowed).
private func isIPv6(_ text: String) -> Bool {
    let halves = text.split(separator: "::", omittingEmptySubsequences: false)
    guard halves.count <= 2 else { return false }
    var groups = 0
    for (halfIndex, half) in halves.enumerated() where !half.isEmpty {
        let parts = half.split(separator: ":", omittingEmptySubsequences: false)
        for (index, part) in parts.enumerated() {
            let isTail = halfIndex == halves.count - 1 && index == parts.count - 1
            if isTail, part.contains("."), case .success = IPv4Address.parse(String(part)) {
                groups += 2
                continue
            }
            guard (1...4).contains(part.count), part.allSatisfy(\.isHexDigit) else { return false }
            groups += 1
        }
    }
    return halves.count == 2 ? groups < 8 : groups == 8
}

