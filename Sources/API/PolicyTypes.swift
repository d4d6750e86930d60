/// The local API of the Policy subsystem (`cilium policy ...`, `cilium bpf policy get`).

/// PUT /v1/policy?source=NAME: the body is policy text (YAML or JSON).
public struct PolicyImportResponse: Codable, Sendable {
    public var revision: UInt64
    /// "namespace/name" (or "name" for cluster-wide ones) of what was imported.
    public var policies: [String]
    /// "KIND NAME" of the file's other objects, which were skipped; nil for none.
    public var skipped: [String]?
    public init(revision: UInt64, policies: [String], skipped: [String]? = nil) {
        self.revision = revision
        self.policies = policies
        self.skipped = skipped
    }
}

/// GET /v1/policy: the policies in force. `policies` holds each one as JSON.
public struct PolicyListResponse: Codable, Sendable {
    public var revision: UInt64
    public var policies: [PolicyDescription]
    public init(revision: UInt64, policies: [PolicyDescription]) {
        self.revision = revision
        self.policies = policies
    }
}

public struct PolicyDescription: Codable, Sendable {
    public var kind: String
    public var name: String
    public var namespace: String?
    /// Where it came from: "api" or a file of the resource directory.
    public var source: String
    public var rules: Int
    /// The parsed policy, as JSON text.
    public var json: String
    /// What it names that this agent does not match yet (IPv6 peers); nil for none.
    public var notes: [String]?
    public init(kind: String, name: String, namespace: String?, source: String, rules: Int, json: String, notes: [String]? = nil) {
        self.kind = kind
        self.name = name
        self.namespace = namespace
        self.source = source
        self.rules = rules
        self.json = json
        self.notes = notes
    }
}

/// DELETE /v1/policy?name=N[&namespace=NS] or ?all=true
public struct PolicyDeleteResponse: Codable, Sendable {
    public var revision: UInt64
    public var deleted: Int
    public init(revision: UInt64, deleted: Int) {
        self.revision = revision
        self.deleted = deleted
    }
}

/// POST /v1/policy/trace
public struct PolicyTraceRequest: Codable, Sendable {
    /// "k=v" labels of the source and destination (as `--src-labels`, `--dst-labels`).
    public var sourceLabels: [String]
    public var destinationLabels: [String]
    /// Destination port, 0 for any; ICMP: the type.
    public var port: UInt16
    /// "TCP", "UDP", "SCTP", "ICMP" or "ANY".
    public var proto: String
    public init(sourceLabels: [String], destinationLabels: [String], port: UInt16, proto: String) {
        self.sourceLabels = sourceLabels
        self.destinationLabels = destinationLabels
        self.port = port
        self.proto = proto
    }
}

public struct PolicyTraceResponse: Codable, Sendable {
    public struct Step: Codable, Sendable {
        /// "egress" (of the source) or "ingress" (of the destination).
        public var direction: String
        /// "ALLOWED", "DENIED" or "AUDIT" (audit mode: would be denied).
        public var verdict: String
        /// Why: the deciding rule, "default deny", or "no policy selects ...".
        public var reason: String
        public var rule: String?
        public init(direction: String, verdict: String, reason: String, rule: String?) {
            self.direction = direction
            self.verdict = verdict
            self.reason = reason
            self.rule = rule
        }
    }
    public var steps: [Step]
    /// "ALLOWED" or "DENIED".
    public var verdict: String
    public init(steps: [Step], verdict: String) {
        self.steps = steps
        self.verdict = verdict
    }
}

/// GET /v1/policy/endpoint/ID: the endpoint's policy map entries.
public struct PolicyMapEntryModel: Codable, Sendable, Equatable {
    /// "ingress" or "egress".
    public var direction: String
    /// 0 = any identity.
    public var identity: UInt32
    /// The identity's labels, when known.
    public var labels: [String]
    /// "ANY", "TCP", "UDP", "SCTP", "ICMP" or a number.
    public var proto: String
    /// "ANY", "80", "8000-8127" (one LPM block), or the ICMP type.
    public var port: String
    /// "allow" or "deny".
    public var verdict: String
    public var packets: UInt64
    public var bytes: UInt64
    public var rule: String?
    public init(direction: String, identity: UInt32, labels: [String], proto: String, port: String, verdict: String,
                packets: UInt64, bytes: UInt64, rule: String?) {
        self.direction = direction
        self.identity = identity
        self.labels = labels
        self.proto = proto
        self.port = port
        self.verdict = verdict
        self.packets = packets
        self.bytes = bytes
        self.rule = rule
    }
}

public struct EndpointPolicyResponse: Codable, Sendable {
    public var endpoint: UInt16
    public var ingressEnforced: Bool
    public var egressEnforced: Bool
    public var audit: Bool
    public var revision: UInt64
    public var entries: [PolicyMapEntryModel]
    public init(endpoint: UInt16, ingressEnforced: Bool, egressEnforced: Bool, audit: Bool, revision: UInt64,
                entries: [PolicyMapEntryModel]) {
        self.endpoint = endpoint
        self.ingressEnforced = ingressEnforced
        self.egressEnforced = egressEnforced
        self.audit = audit
        self.revision = revision
        self.entries = entries
    }
}
