extension Netlink {
    /// An IPv4 route. Only the fields that are set take part in a request.
    public struct Route: Sendable, Hashable, CustomStringConvertible {
        public static let mainTable: UInt32 = 254
        public static let unicast: UInt8 = 1           // RTN_UNICAST
        public static let protocolBoot: UInt8 = 3       // RTPROT_BOOT, what `ip route add` uses

        public var destination: IPv4Prefix
        public var gateway: IPv4Address?
        /// The output device (RTA_OIF).
        public var outputIndex: Int32?
        /// Preferred source address for locally generated traffic (RTA_PREFSRC, `ip route ... src`).
        public var source: IPv4Address?
        public var scope: Scope
        public var table: UInt32
        public var priority: UInt32?
        /// The path MTU of the route (RTA_METRICS RTAX_MTU, `ip route ... mtu N`): packets it routes are sized to it.
        public var mtu: UInt32?
        /// Who installed the route (RTPROT_*); requests use `protocolBoot`.
        public var protocolNumber: UInt8
        /// RTN_* route type; requests use `unicast`.
        public var type: UInt8

        /// Without an explicit scope, a route with no gateway is scope link (directly reachable on the
        /// device) and one with a gateway is scope universe, the same default iproute2 applies.
        public init(destination: IPv4Prefix, gateway: IPv4Address? = nil, outputIndex: Int32? = nil,
                    source: IPv4Address? = nil, scope: Scope? = nil, table: UInt32 = mainTable,
                    priority: UInt32? = nil, mtu: UInt32? = nil) {
            self.destination = destination
            self.mtu = mtu
            self.gateway = gateway
            self.outputIndex = outputIndex
            self.source = source
            self.scope = scope ?? (gateway == nil ? .link : .universe)
            self.table = table
            self.priority = priority
            self.protocolNumber = Route.protocolBoot
            self.type = Route.unicast
        }

        public var description: String {
            var text = destination.length == 0 ? "default" : "\(destination)"
            if let gateway { text += " via \(gateway)" }
            if let outputIndex { text += " dev ifindex \(outputIndex)" }
            if let source { text += " src \(source)" }
            if scope != .universe { text += " scope \(scope)" }
            if table != Route.mainTable { text += " table \(table)" }
            if let priority { text += " metric \(priority)" }
            if let mtu { text += " mtu \(mtu)" }
            return text
        }
    }

    /// Adds a route; EEXIST if an equal route (same destination, table, metric) exists.
    public func addRoute(_ route: Route) throws {
        try send(route, type: NetlinkABI.newRoute, flags: NetlinkABI.fCreate | NetlinkABI.fExcl, "add route \(route)")
    }

    /// Adds a route or replaces the one with the same destination, table and metric.
    public func replaceRoute(_ route: Route) throws {
        try send(route, type: NetlinkABI.newRoute, flags: NetlinkABI.fCreate | NetlinkABI.fReplace, "replace route \(route)")
    }

    /// Deletes the route matching the fields that are set (ESRCH if none matches).
    public func deleteRoute(_ route: Route) throws {
        try send(route, type: NetlinkABI.delRoute, flags: 0, "delete route \(route)")
    }

    /// IPv4 routes of one table (the main table by default), or of all tables with `table: nil`.
    public func routes(table: UInt32? = Route.mainTable) throws -> [Route] {
        var request = NetlinkRequest(type: NetlinkABI.getRoute, flags: NetlinkABI.fDump)
        request.appendRouteHeader(destinationLength: 0, table: 0, protocolNumber: 0, scope: 0, type: 0)
        return try query(request, dump: true, "list routes").compactMap(Route.init(reply:))
            .filter { table == nil || $0.table == table }
    }

    /// The MTU of the node's uplink: the first of `devices` that exists (the agent's `devices`), else the device
    /// the default route leaves through (nil: neither).
    public func uplinkMTU(devices: [String]) -> UInt32? {
        if let named = devices.lazy.compactMap({ try? self.link(.name($0)) }).first { return named.mtu }
        let uplink = (try? routes())?.first { $0.destination.length == 0 }?.outputIndex
        return uplink.flatMap { try? link(.index($0)) }?.mtu
    }

    private func send(_ route: Route, type: UInt16, flags: UInt16, _ operation: String) throws {
        var request = NetlinkRequest(type: type, flags: flags)
        let deleting = type == NetlinkABI.delRoute
        // Tables above 255 only fit in RTA_TABLE; the header then says RT_TABLE_UNSPEC.
        let headerTable = route.table < 256 ? UInt8(route.table) : 0
        // For deletion, iproute2 leaves protocol and type unspecified and uses scope "nowhere":
        // the kernel then matches any value of those fields.
        request.appendRouteHeader(destinationLength: route.destination.length, table: headerTable,
                                  protocolNumber: deleting ? 0 : route.protocolNumber,
                                  scope: deleting ? Scope.nowhere.rawValue : route.scope.rawValue,
                                  type: deleting ? 0 : route.type)
        if route.destination.length > 0 { request.attribute(NetlinkABI.rtaDst, bytes: route.destination.address.bytes) }
        if let gateway = route.gateway { request.attribute(NetlinkABI.rtaGateway, bytes: gateway.bytes) }
        if let index = route.outputIndex { request.attribute(NetlinkABI.rtaOif, UInt32(bitPattern: index)) }
        if let source = route.source { request.attribute(NetlinkABI.rtaPrefsrc, bytes: source.bytes) }
        if let priority = route.priority { request.attribute(NetlinkABI.rtaPriority, priority) }
        if let mtu = route.mtu, !deleting { request.nested(NetlinkABI.rtaMetrics) { $0.attribute(NetlinkABI.rtaxMTU, mtu) } }
        request.attribute(NetlinkABI.rtaTable, route.table)
        try execute(request, operation)
    }
}

extension Netlink.Route {
    init?(reply: NetlinkReply) {
        let p = reply.payload, s = p.startIndex
        guard reply.type == NetlinkABI.newRoute, p.count >= 12, p[s] == NetlinkABI.afInet else { return nil }
        let attributes = NetlinkAttributes(p.dropFirst(12))
        let destination = Netlink.IPv4Address(bytes: attributes[NetlinkABI.rtaDst]) ?? Netlink.IPv4Address(value: 0)
        self.init(destination: Netlink.IPv4Prefix(destination, length: p[s + 1]),
                  gateway: Netlink.IPv4Address(bytes: attributes[NetlinkABI.rtaGateway]),
                  outputIndex: attributes.integer(NetlinkABI.rtaOif, as: Int32.self),
                  source: Netlink.IPv4Address(bytes: attributes[NetlinkABI.rtaPrefsrc]),
                  scope: Netlink.Scope(rawValue: p[s + 6]),
                  table: attributes.integer(NetlinkABI.rtaTable) ?? UInt32(p[s + 4]),
                  priority: attributes.integer(NetlinkABI.rtaPriority),
                  mtu: attributes.nested(NetlinkABI.rtaMetrics)?.integer(NetlinkABI.rtaxMTU))
        protocolNumber = p[s + 5]
        type = p[s + 7]
    }
}
