import CBPF
import Datapath

/// What a subsystem owns under the agent's bpf root. It is the only subsystem
/// that creates, fills, prunes or removes these pins; others reach a shared map
/// through a typed handle its owner exports (`NetworkingMaps`), never a path.
public struct PinOwnership: Sendable, Equatable {
    /// Maps pinned at `<bpf root>/<name>` (upstream's names; every BPF object that uses
    /// one shares the same pin by name).
    public var maps: [String]
    /// `<bpf root>/<directory>/`: its links and anything else it pins.
    public var directory: String

    public init(maps: [String], directory: String) {
        self.maps = maps
        self.directory = directory
    }

    /// Where it pins its BPF links.
    public func links(bpfRoot: String) -> String { "\(bpfRoot)/\(directory)/links" }
}

/// A map one subsystem owns and others may open, with its key and value types.
public struct PinnedMap<Key: BitwiseCopyable, Value: BitwiseCopyable>: Sendable {
    public let name: String

    public init(_ name: String) { self.name = name }

    public func open(bpfRoot: String) throws(BPFError) -> BPFMap<Key, Value> {
        try BPFMap<Key, Value>(pinned: "\(bpfRoot)/\(name)")
    }
}

/// The maps Networking owns that other subsystems read: the datapath's event
/// ring and its per-CPU drop/forward counters.
public enum NetworkingMaps {
    public static let events = "cilium_events"
    public static let metrics = PinnedMap<UInt32, metrics_value>("cilium_metrics")

    /// A reader of the datapath's event ring (Hubble).
    public static func openEvents(bpfRoot: String) throws(BPFError) -> RingBufferReader {
        try RingBufferReader(pinned: "\(bpfRoot)/\(events)")
    }
}
