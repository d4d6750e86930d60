extension Netlink {
    /// An IPv4 routing policy rule (`ip rule`): packets it selects are looked up in `table`.
    /// E.g. upstream's IPsec rule `priority 1 fwmark 0xd00/0xf00 lookup 200`.
    public struct Rule: Sendable, Hashable, CustomStringConvertible {
        /// Rules are tried in ascending priority; nil lets the kernel pick one (on add) or matches any (on delete).
        public var priority: UInt32?
        /// Selects packets whose `mark & mask == mark`.
        public var mark: UInt32?
        /// nil: all bits (the kernel's default, 0xffffffff).
        public var mask: UInt32?
        public var source: IPv4Prefix?
        public var destination: IPv4Prefix?
        public var table: UInt32

        public init(priority: UInt32? = nil, mark: UInt32? = nil, mask: UInt32? = nil,
                    source: IPv4Prefix? = nil, destination: IPv4Prefix? = nil, table: UInt32) {
            self.priority = priority
            self.mark = mark
            self.mask = mask == UInt32.max ? nil : mask
            self.source = source
            self.destination = destination
            self.table = table
        }

        public var description: String {
            var text = priority.map { "priority \($0) " } ?? ""
            text += "from \(source.map { "\($0)" } ?? "all")"
            if let destination { text += " to \(destination)" }
            if let mark { text += " fwmark 0x\(String(mark, radix: 16))" + (mask.map { "/0x\(String($0, radix: 16))" } ?? "") }
            return text + " lookup \(table)"
        }
    }

    /// Adds a rule; EEXIST if an equal one exists.
    public func addRule(_ rule: Rule) throws {
        try send(rule, type: NetlinkABI.newRule, flags: NetlinkABI.fCreate | NetlinkABI.fExcl, "add rule \(rule)")
    }

    /// Deletes the first rule matching the fields that are set (ENOENT if none does).
    public func deleteRule(_ rule: Rule) throws {
        try send(rule, type: NetlinkABI.delRule, flags: 0, "delete rule \(rule)")
    }

    /// The IPv4 rules that look up a table, in priority order (the kernel's own included: local, main, default).
    public func rules() throws -> [Rule] {
        var request = NetlinkRequest(type: NetlinkABI.getRule, flags: NetlinkABI.fDump)
        request.appendRuleHeader(table: 0, sourceLength: 0, destinationLength: 0)
        return try query(request, dump: true, "list rules").compactMap(Rule.init(reply:))
    }

    private func send(_ rule: Rule, type: UInt16, flags: UInt16, _ operation: String) throws {
        var request = NetlinkRequest(type: type, flags: flags)
        // Tables above 255 only fit in FRA_TABLE; the header then says RT_TABLE_UNSPEC.
        request.appendRuleHeader(table: rule.table < 256 ? UInt8(rule.table) : 0,
                                 sourceLength: rule.source?.length ?? 0, destinationLength: rule.destination?.length ?? 0)
        if let priority = rule.priority { request.attribute(NetlinkABI.fraPriority, priority) }
        if let mark = rule.mark {
            request.attribute(NetlinkABI.fraFwmark, mark)
            if let mask = rule.mask { request.attribute(NetlinkABI.fraFwmask, mask) }
        }
        if let source = rule.source { request.attribute(NetlinkABI.fraSrc, bytes: source.network.address.bytes) }
        if let destination = rule.destination { request.attribute(NetlinkABI.fraDst, bytes: destination.network.address.bytes) }
        request.attribute(NetlinkABI.fraTable, rule.table)
        try execute(request, operation)
    }
}

extension NetlinkRequest {
    /// struct fib_rule_hdr: family, dst_len, src_len, tos, table, res1, res2, action; flags (u32). The action is
    /// always FR_ACT_TO_TBL.
    mutating func appendRuleHeader(table: UInt8, sourceLength: UInt8, destinationLength: UInt8) {
        append(NetlinkABI.afInet); append(destinationLength); append(sourceLength); append(UInt8(0))
        append(table); append(UInt8(0)); append(UInt8(0)); append(NetlinkABI.frActToTable)
        append(UInt32(0))
    }
}

extension Netlink.Rule {
    init?(reply: NetlinkReply) {
        let p = reply.payload, s = p.startIndex
        guard reply.type == NetlinkABI.newRule, p.count >= 12, p[s] == NetlinkABI.afInet,
              p[s + 7] == NetlinkABI.frActToTable else { return nil }
        let attributes = NetlinkAttributes(p.dropFirst(12))
        let prefix = { (type: UInt16, length: UInt8) in
            Netlink.IPv4Address(bytes: attributes[type]).map { Netlink.IPv4Prefix($0, length: min(32, length)) }
        }
        self.init(priority: attributes.integer(NetlinkABI.fraPriority),
                  mark: attributes.integer(NetlinkABI.fraFwmark), mask: attributes.integer(NetlinkABI.fraFwmask),
                  source: prefix(NetlinkABI.fraSrc, p[s + 2]), destination: prefix(NetlinkABI.fraDst, p[s + 1]),
                  table: attributes.integer(NetlinkABI.fraTable) ?? UInt32(p[s + 4]))
    }
}
