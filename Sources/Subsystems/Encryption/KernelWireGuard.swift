import Glibc
import LinuxNet
import Spawning

/// `cilium_wg0` as the kernel's WireGuard device (what upstream Cilium uses): a link of kind "wireguard" made over
/// rtnetlink and configured over generic netlink, both by our own code. The device lives in `namespace` (nil: the
/// agent's own); it outlives the agent, and the next agent adopts it.
package struct KernelWireGuard: WireGuardDevice {
    package let name: String
    package let namespace: NetworkNamespace?
    private let netlink: Netlink
    private let genl: GenericNetlink

    package init(name: String = WireGuardConstants.device, namespace: NetworkNamespace? = nil) throws {
        self.name = name
        self.namespace = namespace
        netlink = try namespace.map { try Netlink(namespace: $0) } ?? Netlink()
        genl = try namespace.map { try GenericNetlink(namespace: $0) } ?? GenericNetlink()
    }

    /// True when the device answers WG_CMD_GET_DEVICE (which needs the link, and a WireGuard one).
    package var isRunning: Bool { (try? genl.wireGuardDevice(name)) != nil }
    package var implementation: String { "kernel WireGuard" }

    /// Throws, saying why, unless the running kernel has WireGuard: its generic netlink family resolves (the kernel
    /// loads the module for that itself where it may; `modprobe wireguard` is tried too).
    package static func checkKernelSupport() throws {
        let genl = try GenericNetlink()
        if (try? genl.familyID(WireGuardNetlink.family)) != nil { return }
        _ = try? ChildProcess.run(["modprobe", "wireguard"], output: "/dev/null")
        do {
            _ = try genl.familyID(WireGuardNetlink.family)
        } catch {
            throw WireGuardError("this kernel (\(kernelRelease())) has no WireGuard: no generic netlink family \"wireguard\" "
                + "after modprobe wireguard (\(error)); set encryption.wireguard.userspaceFallback=true to run cilium_wg0 with wireguard-go")
        }
    }

    /// Creates the device unless it exists; a WireGuard device of that name is adopted as it is.
    package func ensureCreated() throws {
        if let link = try netlink.link(.name(name)) {
            guard link.kind == "wireguard" else {
                throw WireGuardError("\(name) exists and is not a WireGuard device (kind \(link.kind ?? "none"))")
            }
            return
        }
        do {
            try netlink.createWireGuard(name: name)
        } catch let error as NetlinkError where error.code == EEXIST {
            return                                      // made meanwhile (another agent starting): adopted
        } catch let error as NetlinkError where error.code == EOPNOTSUPP {
            throw WireGuardError("cannot create \(name): this kernel (\(kernelRelease())) has no WireGuard (\(error))")
        }
    }

    /// Private key, port, fwmark, and exactly `peers` (others go), with UserspaceWireGuard's semantics.
    package func configure(key: WireGuardKey, port: UInt16, peers: [WireGuardPeer]) throws {
        // Peers are changed in place, not replaced (no WGDEVICE_F_REPLACE_PEERS): a peer that stays keeps its session.
        let current = Set(try genl.wireGuardDevice(name).peers.map(\.publicKey))
        let wanted = Set(peers.map(\.publicKey))
        var change = WireGuardNetlink.DeviceChange(name: name, privateKey: key.privateKey, listenPort: port,
                                                   fwmark: WireGuardConstants.fwmark)
        change.peers = current.subtracting(wanted).sorted { $0.lexicographicallyPrecedes($1) }
            .map { .init(publicKey: $0, remove: true) }
        for p in peers {
            guard let endpoint = WireGuardNetlink.Endpoint(p.endpoint) else {
                throw WireGuardError("peer \(WireGuardKey.hex(p.publicKey)): endpoint \(p.endpoint) is not a.b.c.d:port")
            }
            let allowed = try p.allowedIPs.map { text in
                guard let prefix = IPv4Prefix(text) else { throw WireGuardError("peer \(WireGuardKey.hex(p.publicKey)): allowed IP \(text) is not a.b.c.d/n") }
                return WireGuardNetlink.AllowedIP(prefix)
            }
            change.peers.append(.init(publicKey: p.publicKey, replaceAllowedIPs: true, endpoint: endpoint,
                                      persistentKeepalive: p.persistentKeepalive, allowedIPs: allowed))
        }
        // A new peer (or a peer's new key) gets a handshake now, not when its own retry comes (up to 5 s): the kernel
        // sends a keepalive when the interval goes from 0 to non-zero on a device that is up, and it is turned off
        // again. The kernel applies the peers of a message in order.
        for p in peers where !current.contains(p.publicKey) && p.persistentKeepalive == 0 {
            change.peers += [.init(publicKey: p.publicKey, updateOnly: true, persistentKeepalive: 1),
                             .init(publicKey: p.publicKey, updateOnly: true, persistentKeepalive: 0)]
        }
        try genl.setWireGuardDevice(change)
    }

    /// The device in the UAPI's `get=1` form (as wireguard-go answers it), so that status code is shared.
    package func state() throws -> [(key: String, value: String)] { Self.uapiState(try genl.wireGuardDevice(name)) }

    /// What wireguard-go answers to `get=1` for `device`: its private key (when set), port and fwmark (when not 0),
    /// then each peer's block from its `public_key`.
    static func uapiState(_ device: WireGuardNetlink.Device) -> [(key: String, value: String)] {
        var out: [(key: String, value: String)] = []
        if let key = device.privateKey { out.append(("private_key", WireGuardKey.hex(key))) }
        out.append(("listen_port", "\(device.listenPort)"))
        if device.fwmark != 0 { out.append(("fwmark", "\(device.fwmark)")) }
        for p in device.peers {
            out.append(("public_key", WireGuardKey.hex(p.publicKey)))
            if let endpoint = p.endpoint { out.append(("endpoint", "\(endpoint)")) }
            out += p.allowedIPs.map { ("allowed_ip", "\($0)") }
            out += [("rx_bytes", "\(p.rxBytes)"), ("tx_bytes", "\(p.txBytes)"),
                    ("last_handshake_time_sec", "\(p.lastHandshakeSeconds)"),
                    ("last_handshake_time_nsec", "\(p.lastHandshakeNanoseconds)"),
                    ("persistent_keepalive_interval", "\(p.persistentKeepalive)")]
        }
        return out
    }

    /// Removes the link (its peers and sessions go with it). `reaping` is unused: no process runs the device.
    package func delete(in netlink: Netlink, reaping pid: Int32?) {
        try? netlink.deleteLink(.name(name))
    }
}

private func kernelRelease() -> String {
    var u = utsname()
    uname(&u)
    return withUnsafeBytes(of: u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
}
