import API
import LinuxNet
import Foundation

/// `hubble observe` filters, with upstream's semantics: the values of one
/// flag are OR-ed, different flags are AND-ed; a flow is shown when it
/// matches the allow filter and not the deny filter (`--not` sends the next
/// flag there).
public struct FlowFilter: Sendable, Equatable {
    public enum Side: Sendable, Equatable { case source, destination, either }

    public enum Field: String, Sendable, Equatable {
        case pod, namespace, label, ip, port, identity, proto = "protocol", verdict, type, direction = "traffic-direction"
        case dropReason = "drop-reason-desc", node = "node-name"
    }

    public struct Criterion: Sendable, Equatable {
        public var field: Field
        public var side: Side
        public var values: [String]
        public init(_ field: Field, _ side: Side = .either, _ values: [String]) {
            self.field = field
            self.side = side
            self.values = values
        }
    }

    public var criteria: [Criterion] = []
    public init(_ criteria: [Criterion] = []) { self.criteria = criteria }

    public var isEmpty: Bool { criteria.isEmpty }

    /// Adds values to a flag (a repeated flag adds to its own OR list).
    public mutating func add(_ field: Field, _ side: Side = .either, _ value: String) {
        if let i = criteria.firstIndex(where: { $0.field == field && $0.side == side }) {
            criteria[i].values.append(value)
        } else {
            criteria.append(Criterion(field, side, [value]))
        }
    }

    public func matches(_ flow: Flow) -> Bool {
        criteria.allSatisfy { c in c.values.contains { Self.match(c.field, c.side, $0, flow) } }
    }

    /// Checks a value is valid for a field (bad input gets a clear error before anything is fetched).
    public static func validate(_ field: Field, _ value: String) -> String? {
        switch field {
        case .port, .identity:
            return UInt32(value) == nil ? "--\(field.rawValue) \(value): not a number" : nil
        case .ip:
            return (IPv4Prefix(value.contains("/") ? value : value + "/32") == nil)
                ? "--ip \(value): not an IPv4 address or CIDR (e.g. 10.0.0.5 or 10.0.0.0/24)" : nil
        case .proto:
            return ["tcp", "udp", "icmp", "icmpv4"].contains(value.lowercased()) ? nil
                : "--protocol \(value): valid are tcp, udp, icmp"
        case .verdict:
            let all = ["FORWARDED", "DROPPED", "AUDIT", "REDIRECTED", "TRACED", "TRANSLATED", "ERROR"]
            return all.contains(value.uppercased()) ? nil : "--verdict \(value): valid are \(all.joined(separator: ", "))"
        case .type:
            let all = ["trace", "drop", "policy-verdict"]
            return all.contains(value.lowercased()) ? nil : "--type \(value): valid are \(all.joined(separator: ", "))"
        case .direction:
            return ["ingress", "egress"].contains(value.lowercased()) ? nil : "--traffic-direction \(value): valid are ingress, egress"
        default:
            return nil
        }
    }

    static func sides(_ side: Side, _ flow: Flow) -> [(Flow.Endpoint?, String?, UInt16?)] {
        let s = (flow.source, flow.IP?.source, flow.sourcePort), d = (flow.destination, flow.IP?.destination, flow.destinationPort)
        switch side {
        case .source: return [s]
        case .destination: return [d]
        case .either: return [s, d]
        }
    }

    static func match(_ field: Field, _ side: Side, _ value: String, _ flow: Flow) -> Bool {
        switch field {
        case .verdict: return flow.verdict == value.uppercased()
        case .type: return flow.eventTypeName == value.lowercased()
        case .direction: return flow.traffic_direction == value.uppercased()
        case .dropReason: return flow.drop_reason_desc == value.uppercased()
        case .node: return flow.node_name == value
        case .proto:
            let v = value.lowercased() == "icmpv4" ? "icmp" : value.lowercased()
            return flow.protocolName == v
        default: break
        }
        return sides(side, flow).contains { ep, ip, port in
            switch field {
            case .pod:
                // "[namespace/]pod-name-prefix"; without a namespace, any.
                guard let ep, let pod = ep.pod_name else { return false }
                let parts = value.split(separator: "/", maxSplits: 1).map(String.init)
                if parts.count == 2 { return ep.namespace == parts[0] && pod.hasPrefix(parts[1]) }
                return pod.hasPrefix(value)
            case .namespace:
                return ep?.namespace == value
            case .label:
                // "k=v,k2" : every term; a term matches a label with any source ("k8s:app=web" for app=web).
                guard let labels = ep?.labels else { return false }
                return value.split(separator: ",").allSatisfy { term in
                    let t = term.trimmingCharacters(in: .whitespaces)
                    return labels.contains { l in
                        let bare = l.split(separator: ":", maxSplits: 1).last.map(String.init) ?? l
                        return l == t || bare == t || (!t.contains("=") && bare.split(separator: "=").first.map(String.init) == t)
                    }
                }
            case .ip:
                guard let ip, let a = IPv4Address(ip) else { return false }
                if let p = IPv4Prefix(value.contains("/") ? value : value + "/32") {
                    let mask: UInt32 = p.length == 0 ? 0 : ~UInt32(0) << (32 - UInt32(p.length))
                    return a.value & mask == p.address.value & mask
                }
                return false
            case .port:
                return port.map(String.init) == value
            case .identity:
                return ep.map { String($0.identity) } == value
            default:
                return false
            }
        }
    }
}
