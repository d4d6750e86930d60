import CBPF
import Reconciler

/// One entry of the `cilium_policy` LPM map: for one endpoint and direction,
/// a peer identity (0 = any) and a protocol/port block, allow or deny.
public struct PolicyMapEntry: TableObject, Hashable {
    public struct Key: Hashable, Sendable, Comparable {
        public var endpoint: UInt16
        public var direction: UInt8
        public var identity: UInt32
        /// IP protocol, 0 = any (then `prefixLength` is 64).
        public var proto: UInt8
        /// 64: any protocol; 72: every port of `proto`; 80 + n: the first n bits of `port`.
        public var prefixLength: UInt8
        /// Host order, bits past the prefix cleared. ICMP: the type.
        public var port: UInt16

        public init(endpoint: UInt16, direction: UInt8, identity: UInt32, proto: UInt8, prefixLength: UInt8, port: UInt16) {
            self.endpoint = endpoint
            self.direction = direction
            self.identity = identity
            self.proto = proto
            self.prefixLength = prefixLength
            self.port = port
        }

        public static func < (a: Key, b: Key) -> Bool {
            (a.endpoint, a.direction, a.identity, a.proto, a.port, a.prefixLength)
                < (b.endpoint, b.direction, b.identity, b.proto, b.port, b.prefixLength)
        }

        /// Number of port bits the entry fixes (0...16); -1 for "any protocol".
        package var portBits: Int {
            prefixLength < 72 ? -1 : Int(prefixLength) - 80
        }

        /// Ports the entry covers.
        public var portRange: ClosedRange<UInt16> {
            let bits = max(portBits, 0)
            let span = UInt32(1) << UInt32(16 - bits)
            return port...UInt16(UInt32(port) + span - 1)
        }

        /// True when every packet this key matches is also matched by `self`
        /// (same endpoint, direction and identity; a wider or equal block).
        package func covers(_ other: Key) -> Bool {
            guard endpoint == other.endpoint, direction == other.direction, identity == other.identity else { return false }
            if prefixLength == UInt8(CILIUM_POLICY_PREFIX_ANY_PROTO) { return true }
            guard proto == other.proto, other.prefixLength >= prefixLength else { return false }
            let r = portRange, o = other.portRange
            return r.lowerBound <= o.lowerBound && o.upperBound <= r.upperBound
        }

        package var mapKey: policy_key {
            var k = policy_key()
            k.prefixlen = UInt32(prefixLength)
            k.endpoint_id = endpoint.bigEndian
            k.direction = direction
            k.identity = identity.bigEndian
            k.protocol = proto
            k.dport = port.bigEndian
            return k
        }

        package init(_ k: policy_key) {
            self.init(endpoint: UInt16(bigEndian: k.endpoint_id), direction: k.direction, identity: UInt32(bigEndian: k.identity),
                      proto: k.protocol, prefixLength: UInt8(k.prefixlen), port: UInt16(bigEndian: k.dport))
        }
    }

    public var key: Key
    public var deny: Bool
    /// The rule that produced the entry (PolicyRepository's rule table).
    public var ruleID: UInt32

    public init(key: Key, deny: Bool, ruleID: UInt32) {
        self.key = key
        self.deny = deny
        self.ruleID = ruleID
    }

    package var mapValue: policy_entry {
        var v = policy_entry()
        v.verdict = UInt8(deny ? CILIUM_POLICY_DENY.rawValue : CILIUM_POLICY_ALLOW.rawValue)
        v.rule_id = ruleID
        return v
    }
}

/// A port range as LPM blocks: aligned power-of-two spans, each a port and
/// the number of leading bits that fix it (16 = one port).
func portBlocks(_ range: ClosedRange<UInt16>) -> [(port: UInt16, bits: Int)] {
    var out: [(UInt16, Int)] = []
    var lo = UInt32(range.lowerBound)
    let hi = UInt32(range.upperBound)
    while lo <= hi {
        // The largest aligned block starting at lo that stays within hi.
        var size: UInt32 = lo == 0 ? 1 << 16 : lo & (~lo &+ 1)
        while lo + size - 1 > hi { size >>= 1 }
        out.append((UInt16(lo), 16 - size.trailingZeroBitCount))
        lo += size
    }
    return out
}

/// Per endpoint: which directions default to deny, and whether entries exist.
package struct EndpointPolicyFlags: TableObject, Equatable {
    package var endpoint: UInt16
    package var flags: UInt32
    package var revision: UInt32
    package var key: UInt16 { endpoint }

    package var mapValue: policy_ep_value { policy_ep_value(flags: flags, revision: revision) }
}
