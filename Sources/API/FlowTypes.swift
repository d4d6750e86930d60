import Foundation

/// A flow as Hubble reports it: upstream's `flow.proto` field names and
/// meanings, in the JSON `hubble observe -o json` prints.
public struct Flow: Codable, Sendable, Equatable {
    public struct IP: Codable, Sendable, Equatable {
        public var source: String
        public var destination: String
        public var ipVersion = "IPv4"
        /// The packet left (or arrived at) the node encrypted; absent when it did not.
        public var encrypted: Bool?
        public init(source: String, destination: String, encrypted: Bool? = nil) {
            self.source = source
            self.destination = destination
            self.encrypted = encrypted
        }
    }

    public struct TCPFlags: Codable, Sendable, Equatable {
        public var FIN: Bool?, SYN: Bool?, RST: Bool?, PSH: Bool?, ACK: Bool?, URG: Bool?, ECE: Bool?, CWR: Bool?
        public init(byte: UInt8) {
            func bit(_ m: UInt8) -> Bool? { byte & m != 0 ? true : nil }
            FIN = bit(0x01); SYN = bit(0x02); RST = bit(0x04); PSH = bit(0x08)
            ACK = bit(0x10); URG = bit(0x20); ECE = bit(0x40); CWR = bit(0x80)
        }
        /// "SYN, ACK" in upstream's order.
        public var names: [String] {
            [("SYN", SYN), ("FIN", FIN), ("RST", RST), ("PSH", PSH), ("ACK", ACK), ("URG", URG), ("ECE", ECE), ("CWR", CWR)]
                .compactMap { $0.1 == true ? $0.0 : nil }
        }
    }

    public struct Ports: Codable, Sendable, Equatable {
        public var source_port: UInt16
        public var destination_port: UInt16
        public var flags: TCPFlags?
        public init(source_port: UInt16, destination_port: UInt16, flags: TCPFlags? = nil) {
            self.source_port = source_port
            self.destination_port = destination_port
            self.flags = flags
        }
    }

    public struct ICMP: Codable, Sendable, Equatable {
        public var type: UInt8
        public var code: UInt8 = 0
        public init(type: UInt8) { self.type = type }
    }

    public struct Layer4: Codable, Sendable, Equatable {
        public var TCP: Ports?
        public var UDP: Ports?
        public var ICMPv4: ICMP?
        public init(TCP: Ports? = nil, UDP: Ports? = nil, ICMPv4: ICMP? = nil) {
            self.TCP = TCP
            self.UDP = UDP
            self.ICMPv4 = ICMPv4
        }
    }

    public struct Endpoint: Codable, Sendable, Equatable {
        public var ID: UInt32?
        public var identity: UInt32
        public var namespace: String?
        public var labels: [String]
        public var pod_name: String?
        /// The remote cluster of the mesh the endpoint is in (upstream's field); nil for this cluster's.
        public var cluster_name: String?
        public init(ID: UInt32? = nil, identity: UInt32, namespace: String? = nil, labels: [String], pod_name: String? = nil,
                    cluster_name: String? = nil) {
            self.cluster_name = cluster_name
            self.ID = ID
            self.identity = identity
            self.namespace = namespace
            self.labels = labels
            self.pod_name = pod_name
        }
    }

    public struct EventType: Codable, Sendable, Equatable {
        /// Upstream's monitor message types: 1 drop, 4 trace, 5 policy verdict.
        public var type: Int
        public var sub_type: Int
        public init(type: Int, sub_type: Int) {
            self.type = type
            self.sub_type = sub_type
        }
    }

    public struct Policy: Codable, Sendable, Equatable {
        public var name: String
        public var namespace: String?
        public var kind: String
        public var revision: UInt64
        public init(name: String, namespace: String?, kind: String, revision: UInt64) {
            self.name = name
            self.namespace = namespace
            self.kind = kind
            self.revision = revision
        }
    }

    public var time: String
    public var uuid: String
    public var verdict: String
    public var drop_reason_desc: String?
    public var IP: IP?
    public var l4: Layer4?
    public var source: Endpoint?
    public var destination: Endpoint?
    public var type = "L3_L4"
    public var node_name: String
    public var event_type: EventType
    public var traffic_direction: String
    public var trace_observation_point: String?
    public var is_reply: Bool
    public var summary: String
    public var ingress_allowed_by: [Policy]?
    public var egress_allowed_by: [Policy]?
    public var ingress_denied_by: [Policy]?
    public var egress_denied_by: [Policy]?

    enum CodingKeys: String, CodingKey {
        case time, uuid, verdict, drop_reason_desc, IP, l4, source, destination, node_name, event_type, traffic_direction,
             trace_observation_point, is_reply, ingress_allowed_by, egress_allowed_by, ingress_denied_by, egress_denied_by
        case type = "Type"
        case summary = "Summary"
    }

    public init(time: String, uuid: String, verdict: String, drop_reason_desc: String? = nil, IP: IP?, l4: Layer4?,
                source: Endpoint?, destination: Endpoint?, node_name: String, event_type: EventType, traffic_direction: String,
                trace_observation_point: String? = nil, is_reply: Bool = false, summary: String) {
        self.time = time
        self.uuid = uuid
        self.verdict = verdict
        self.drop_reason_desc = drop_reason_desc
        self.IP = IP
        self.l4 = l4
        self.source = source
        self.destination = destination
        self.node_name = node_name
        self.event_type = event_type
        self.traffic_direction = traffic_direction
        self.trace_observation_point = trace_observation_point
        self.is_reply = is_reply
        self.summary = summary
    }

    public var sourcePort: UInt16? { l4?.TCP?.source_port ?? l4?.UDP?.source_port }
    public var destinationPort: UInt16? { l4?.TCP?.destination_port ?? l4?.UDP?.destination_port }
    public var protocolName: String? { l4?.TCP != nil ? "tcp" : l4?.UDP != nil ? "udp" : l4?.ICMPv4 != nil ? "icmp" : nil }

    /// Upstream's event type names, as `--type` takes them.
    public var eventTypeName: String {
        switch event_type.type {
        case 1: return "drop"
        case 5: return "policy-verdict"
        default: return "trace"
        }
    }
}

/// One flow in the agent's ring, with its sequence number (`after=` resumes after it).
public struct FlowRecord: Codable, Sendable {
    public var seq: UInt64
    public var flow: Flow
    public init(seq: UInt64, flow: Flow) {
        self.seq = seq
        self.flow = flow
    }
}

/// GET /v1/flows: the ring's flows after a sequence number, and its counters.
public struct FlowsResponse: Codable, Sendable {
    public var flows: [FlowRecord]
    public var status: HubbleStatusModel
    public init(flows: [FlowRecord], status: HubbleStatusModel) {
        self.flows = flows
        self.status = status
    }
}

/// GET /v1/hubble/status (and `hubble status`).
public struct HubbleStatusModel: Codable, Sendable {
    public var nodeName: String
    public var seenFlows: UInt64
    public var currentFlows: Int
    public var maxFlows: Int
    /// Events the agent could not decode or that the ring buffer reader missed.
    public var lostEvents: UInt64
    public var flowsPerSecond: Double
    public var uptimeSeconds: Double
    public init(nodeName: String, seenFlows: UInt64, currentFlows: Int, maxFlows: Int, lostEvents: UInt64,
                flowsPerSecond: Double, uptimeSeconds: Double) {
        self.nodeName = nodeName
        self.seenFlows = seenFlows
        self.currentFlows = currentFlows
        self.maxFlows = maxFlows
        self.lostEvents = lostEvents
        self.flowsPerSecond = flowsPerSecond
        self.uptimeSeconds = uptimeSeconds
    }
}

/// Drop reasons by upstream's numbers and `flow.proto` names (enum cilium_drop_reason in
/// bpf/include/cilium_maps.h; from 240 up, reasons upstream has no number for).
public enum DropReasons {
    public static let names: [UInt8: (name: String, text: String)] = [
        133: ("POLICY_DENIED", "Policy denied"),
        134: ("INVALID_PACKET_DROPPED", "Invalid packet"),
        141: ("ERROR_WRITING_TO_PACKET", "Error writing to packet"),
        147: ("ERROR_RETRIEVING_TUNNEL_KEY", "Error retrieving tunnel key"),
        153: ("ERROR_WHILE_CORRECTING_L3_CHECKSUM", "Error while correcting L3 checksum"),
        154: ("ERROR_WHILE_CORRECTING_L4_CHECKSUM", "Error while correcting L4 checksum"),
        158: ("SERVICE_BACKEND_NOT_FOUND", "Service backend not found"),
        181: ("POLICY_DENY", "Policy denied by denylist"),
        195: ("UNENCRYPTED_TRAFFIC", "Traffic is unencrypted"),
        240: ("DSR_IP_OPTIONS_PRESENT", "DSR option cannot be added: the packet already carries IP options"),
    ]
}
