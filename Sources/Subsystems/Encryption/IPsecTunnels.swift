import AgentModel
import CBPF
import Datapath
import Foundation
import Glibc
import LinuxNet
import Reconciler
import Spawning

/// IPsec between this node and the others (`encryption.type: ipsec`), with upstream's XFRM layout: per other node
/// an OUT and IN ESP state (tunnel mode between the node addresses, reqid 1) and OUT/IN policies whose marks name the
/// node (`0x0E00 | SPI << 12 | nodeID << 16` out, `0x0D00 | nodeID << 16` in), one FWD policy, a catch-all OUT block
/// policy (a marked packet without its node's policy is dropped, never sent in clear), and `ip rule` priority 1
/// `fwmark 0xd00/0xf00 lookup 200`. The Encryption stage marks the packets (its map `cilium_encrypt_nodes` gives
/// each node's ID and the SPI to send with).
///
/// Keys: the key file's last line is the key in use; after a rotation the previous key stays for
/// `keyRotationDuration`. Towards a node the OUT state uses the SPI that node advertises when this node holds that
/// key (so a node that has not got the new key yet can still decrypt), else this node's current one.
struct IPsecTunnels {
    struct Node: Equatable {
        var name: String
        var address: IPv4Address
        var podCIDR: IPv4Prefix?
        var id: UInt16
        var advertisedSPI: UInt8
        var bootID: String
    }

    struct Local: Equatable {
        var address: IPv4Address
        var bootID: String
    }

    struct Desired {
        var states: [XFRM.State] = []
        var policies: [XFRM.Policy] = []
        /// Per node address: its ID and the SPI to send to it with.
        var nodes: [IPv4Address: (id: UInt16, spi: UInt8)] = [:]
        /// Nodes left out, and why (a per-tunnel key without a boot ID).
        var problems: [String] = []
    }

    static let any = IPv4Prefix(IPv4Address(value: 0), length: 0)

    /// What the kernel should hold for `keys` (by SPI), `current` (the SPI in use) and the other nodes.
    static func desired(local: Local, keys: [UInt8: IPsecKey], current: UInt8, nodes: [Node]) -> Desired {
        var d = Desired()
        d.policies.append(XFRM.Policy(source: any, destination: any, direction: .out, action: .block,
                                      priority: IPsecMarks.defaultDropPriority, mark: IPsecMarks.defaultDrop))
        d.policies.append(XFRM.Policy(source: any, destination: any, direction: .fwd, priority: IPsecMarks.forwardPriority,
                                      templates: [XFRM.Template(source: IPv4Address(value: 0), destination: local.address, reqid: 1,
                                                                optional: true)]))
        for n in nodes.sorted(by: { $0.id < $1.id }) {
            let spi = keys[n.advertisedSPI] != nil ? n.advertisedSPI : current
            guard let outKey = keys[spi]?.tunnelKey(.out, localIP: local.address, remoteIP: n.address,
                                                   localBootID: local.bootID, remoteBootID: n.bootID) else {
                d.problems.append("\(n.name): no boot ID in its node record, which per-tunnel keys (+) need")
                continue
            }
            let outMark = IPsecMarks.out(spi: spi, nodeID: n.id), inMark = IPsecMarks.in(nodeID: n.id)
            d.states.append(outKey.state(source: local.address, destination: n.address, mark: outMark))
            for key in keys.values.sorted(by: { $0.spi < $1.spi }) {
                guard let inKey = key.tunnelKey(.in, localIP: local.address, remoteIP: n.address,
                                                localBootID: local.bootID, remoteBootID: n.bootID) else { continue }
                d.states.append(inKey.state(source: n.address, destination: local.address, mark: inMark))
            }
            let out = XFRM.Template(source: local.address, destination: n.address, reqid: 1)
            // The VXLAN packet to the node (tunnel mode), and its pods' traffic (native routing).
            for destination in [IPv4Prefix(n.address, length: 32)] + (n.podCIDR.map { [$0] } ?? []) {
                d.policies.append(XFRM.Policy(source: any, destination: destination, direction: .out, mark: outMark, templates: [out]))
            }
            d.policies.append(XFRM.Policy(source: any, destination: any, direction: .in, mark: inMark,
                                          templates: [XFRM.Template(source: n.address, destination: local.address, reqid: 1)]))
            d.nodes[n.address] = (n.id, spi)
        }
        return d
    }

    /// The decrypted packets' rule.
    static let rule = Netlink.Rule(priority: IPsecMarks.rulePriority, mark: IPsecMarks.decrypt, mask: IPsecMarks.bitMask,
                                   table: IPsecMarks.routeTable)

    /// Ours among what the kernel holds: marked with the encrypt or decrypt bits, or the FWD policy at its priority.
    static func isOurs(_ mark: XFRM.Mark?) -> Bool {
        guard let mark else { return false }
        return [IPsecMarks.encrypt, IPsecMarks.decrypt].contains(mark.value & IPsecMarks.bitMask)
    }

    static func isOurs(_ p: XFRM.Policy) -> Bool {
        isOurs(p.mark) || (p.direction == .fwd && p.priority == IPsecMarks.forwardPriority)
    }

    /// A state's identity for the kernel, and what it carries.
    static func same(_ a: XFRM.State, _ b: XFRM.State) -> Bool {
        a.destination == b.destination && a.source == b.source && a.spi == b.spi && a.mark == b.mark
            && a.algorithms == b.algorithms && a.esn == b.esn
    }

    static func sameSelector(_ a: XFRM.Policy, _ b: XFRM.Policy) -> Bool {
        a.source == b.source && a.destination == b.destination && a.direction == b.direction && a.mark == b.mark
    }

    /// Brings the kernel and `nodeMap` to `d`: what is added comes first, then the marks switch, then what is
    /// no longer wanted goes (a node whose SPI changes has both states and policies for a moment, never none).
    static func apply(_ d: Desired, xfrm: XFRM, nodeMap: BPFMap<UInt32, encrypt_node_value>) throws {
        let states = try xfrm.states().filter { isOurs($0.mark) }
        let policies = try xfrm.policies().filter(isOurs)
        // One node's failure does not hold up the others: the first error is thrown at the end.
        var firstError: (any Error)?
        func attempt(_ body: () throws -> Void) {
            do { try body() } catch { if firstError == nil { firstError = error } }
        }
        for s in d.states where !states.contains(where: { same($0, s) }) {
            attempt {
                // The same identity with other key material: replaced.
                if let old = states.first(where: { $0.destination == s.destination && $0.spi == s.spi && $0.mark == s.mark }) {
                    try? xfrm.deleteState(old)
                }
                try xfrm.addState(s)
            }
        }
        for p in d.policies {
            attempt {
                if let old = policies.first(where: { sameSelector($0, p) }) {
                    if old != p { try xfrm.updatePolicy(p) }
                } else {
                    try xfrm.addPolicy(p)
                }
            }
        }
        for (address, v) in d.nodes {
            var value = encrypt_node_value()
            value.node_id = v.id
            value.spi = v.spi
            attempt { try nodeMap.update(address.value.bigEndian, value) }
        }
        let wanted = Set(d.nodes.keys.map { $0.value.bigEndian })
        for (key, _) in nodeMap.entries() where !wanted.contains(key) { _ = try? nodeMap.delete(key) }
        for p in policies where !d.policies.contains(where: { sameSelector($0, p) }) { try? xfrm.deletePolicy(p) }
        for s in states where !d.states.contains(where: { same($0, s) }) { try? xfrm.deleteState(s) }
        if let firstError { throw firstError }
    }

    /// Removes every state and policy of ours and the rule.
    static func removeAll(xfrm: XFRM, netlink: Netlink) {
        for p in (try? xfrm.policies())?.filter(isOurs) ?? [] { try? xfrm.deletePolicy(p) }
        for s in (try? xfrm.states())?.filter({ isOurs($0.mark) }) ?? [] { try? xfrm.deleteState(s) }
        try? netlink.deleteRule(rule)
    }

    /// Throws, naming what is missing, unless this kernel can run ESP with `key`'s algorithms: a throwaway state is
    /// added and deleted again.
    static func checkKernelSupport(key: IPsecKey, xfrm: XFRM) throws {
        let probe = key.state(source: IPv4Address(value: 0x7F00_0001), destination: IPv4Address(value: 0x7F00_0002),
                              mark: XFRM.Mark(value: 0xFFFF_0E00, mask: 0xFFFF_FFFF))
        do {
            try xfrm.addState(probe)
            try? xfrm.deleteState(probe)
        } catch {
            let config = kernelConfig()
            let missing = ["CONFIG_XFRM_USER", "CONFIG_INET_ESP", "CONFIG_CRYPTO_GCM", "CONFIG_CRYPTO_SEQIV"]
                .filter { option in config.map { !$0.contains("\(option)=y") && !$0.contains("\(option)=m") } ?? false }
            let release = (try? String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
            throw SubsystemError("encryption.type=ipsec: this kernel (\(release)) cannot run ESP"
                + (missing.isEmpty ? "" : ": \(missing.joined(separator: ", ")) not set")
                + " (\(error)); IPsec does not start. Use a kernel with CONFIG_INET_ESP, or encryption.type=wireguard")
        }
    }

    /// The running kernel's config (/proc/config.gz, through zcat), when it is there.
    static func kernelConfig() -> String? {
        guard FileManager.default.fileExists(atPath: "/proc/config.gz"),
              let p = try? ChildProcess.spawnCapturing(["zcat", "/proc/config.gz"]) else { return nil }
        let text = String(decoding: ChildProcess.readAll(p.output), as: UTF8.self)
        close(p.output)
        _ = ChildProcess.wait(p.pid)
        return text.isEmpty ? nil : text
    }
}

/// Node IDs in this node's numbering (1...65535), kept in a file so that a restarted agent keeps them (its
/// XFRM states carry them in their marks).
struct NodeIDs {
    let path: String
    private(set) var ids: [String: UInt16]

    init(path: String) {
        self.path = path
        ids = (FileManager.default.contents(atPath: path)).flatMap { try? JSONDecoder().decode([String: UInt16].self, from: $0) } ?? [:]
    }

    /// Each of `names` gets its ID (new ones the lowest free); names not listed give theirs back.
    mutating func assign(_ names: [String]) {
        let before = ids
        ids = ids.filter { names.contains($0.key) }
        var used = Set(ids.values)
        for name in names.sorted() where ids[name] == nil {
            var id: UInt16 = 1
            while used.contains(id) { id += 1 }
            ids[name] = id
            used.insert(id)
        }
        if ids != before, let data = try? JSONEncoder().encode(ids) {
            try? data.write(to: URL(fileURLWithPath: path), options: .atomic)
        }
    }
}
