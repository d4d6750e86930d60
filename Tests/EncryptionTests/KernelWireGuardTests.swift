import Foundation
import Glibc
import Spawning
import Testing
import TestSupport
@testable import Encryption
@testable import LinuxNet

/// A netlink attribute as the kernel writes it (host byte order, padded to 4 bytes).
private func nla(_ type: UInt16, _ payload: [UInt8], nested: Bool = false) -> [UInt8] {
    var out = native(UInt16(4 + payload.count)) + native(type | (nested ? 0x8000 : 0)) + payload
    out += [UInt8](repeating: 0, count: (4 - out.count % 4) % 4)
    return out
}

private func native<T: FixedWidthInteger>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value) { Array($0) } }
private func key(_ byte: UInt8) -> [UInt8] { [UInt8](repeating: byte, count: 32) }
private func allowedIP(_ family: UInt16, _ address: [UInt8], _ length: UInt8) -> [UInt8] {
    nla(0, nla(1, native(family)) + nla(2, address) + nla(3, [length]), nested: true)
}

/// WireGuard's generic netlink messages, encoded and decoded without a kernel.
@Suite struct WireGuardNetlinkTests {
    /// A GET_DEVICE dump as the kernel sends a big device: the second message repeats the device's name only, and
    /// continues the last peer (same key, more allowed IPs) before the next one. IPv6 parts are read, not fatal.
    @Test func decodesADumpSpreadOverMessages() throws {
        let sockaddrIn = native(UInt16(AF_INET)) + [0xca, 0x9f] + [192, 168, 1, 2] + [UInt8](repeating: 0, count: 8)
        let sockaddrIn6 = native(UInt16(AF_INET6)) + [0xca, 0x9f] + [0, 0, 0, 0] + [0xfd] + [UInt8](repeating: 0, count: 14) + [2] + [0, 0, 0, 0]
        let peer1 = nla(0, nla(1, key(0xb1)) + nla(4, sockaddrIn) + nla(5, native(UInt16(25)))
                        + nla(6, native(Int64(1_700_000_000)) + native(Int64(123_456_789)))
                        + nla(7, native(UInt64(1000))) + nla(8, native(UInt64(2000)))
                        + nla(9, allowedIP(2, [10, 1, 0, 0], 24) + allowedIP(10, [0xfd] + [UInt8](repeating: 0, count: 15), 64), nested: true)
                        + nla(10, native(UInt32(1))), nested: true)
        let peer2 = nla(0, nla(1, key(0xb2)) + nla(4, sockaddrIn6) + nla(9, allowedIP(2, [10, 2, 0, 1], 32), nested: true), nested: true)
        let first = [0, 1, 0, 0] + nla(1, native(UInt32(7))) + nla(2, Array("cilium_wg0".utf8) + [0]) + nla(3, key(0xa1))
            + nla(4, key(0xa2)) + nla(6, native(UInt16(51871))) + nla(7, native(UInt32(0x1E00))) + nla(8, peer1 + peer2, nested: true)
        let peer2More = nla(0, nla(1, key(0xb2)) + nla(9, allowedIP(2, [10, 2, 1, 0], 24), nested: true), nested: true)
        let peer3 = nla(0, nla(1, key(0xb3)) + nla(4, [0, 0]), nested: true)     // a truncated endpoint: ignored
        let second = [0, 1, 0, 0] + nla(2, Array("cilium_wg0".utf8) + [0]) + nla(8, peer2More + peer3, nested: true)

        let device = try #require(WireGuardNetlink.decodeDevice([first[...], second[...]]))
        #expect(device.index == 7 && device.name == "cilium_wg0")
        #expect(device.privateKey == key(0xa1) && device.publicKey == key(0xa2))
        #expect(device.listenPort == 51871 && device.fwmark == 0x1E00)
        #expect(device.peers.map(\.publicKey) == [key(0xb1), key(0xb2), key(0xb3)])
        let p1 = device.peers[0]
        #expect(p1.endpoint?.description == "192.168.1.2:51871")
        #expect(p1.persistentKeepalive == 25 && p1.rxBytes == 1000 && p1.txBytes == 2000)
        #expect(p1.lastHandshakeSeconds == 1_700_000_000 && p1.lastHandshakeNanoseconds == 123_456_789)
        #expect(p1.allowedIPs.map(\.description) == ["10.1.0.0/24", "fd00::/64"])
        #expect(device.peers[1].endpoint?.description == "[fd00::2]:51871")
        #expect(device.peers[1].allowedIPs.map(\.description) == ["10.2.0.1/32", "10.2.1.0/24"])
        #expect(device.peers[2].endpoint == nil && device.peers[2].allowedIPs.isEmpty)
        #expect(WireGuardNetlink.decodeDevice([]) == nil)

        // The UAPI form KernelWireGuard.state() gives, which the status code reads like wireguard-go's.
        let state = KernelWireGuard.uapiState(device)
        #expect(state.prefix(3).map { "\($0.key)=\($0.value)" } == ["private_key=" + String(repeating: "a1", count: 32),
                                                                  "listen_port=51871", "fwmark=7680"])
        #expect(state.dropFirst(3).prefix(10).map { "\($0.key)=\($0.value)" } == [
            "public_key=" + String(repeating: "b1", count: 32), "endpoint=192.168.1.2:51871",
            "allowed_ip=10.1.0.0/24", "allowed_ip=fd00::/64", "rx_bytes=1000", "tx_bytes=2000",
            "last_handshake_time_sec=1700000000", "last_handshake_time_nsec=123456789",
            "persistent_keepalive_interval=25", "public_key=" + String(repeating: "b2", count: 32)])
        let peers = EncryptionSubsystem.peers(state)
        #expect(peers.count == 3)
        #expect(peers[0].endpoint == "192.168.1.2:51871" && peers[0].transferRx == 1000 && peers[0].transferTx == 2000)
        #expect(peers[0].lastHandshakeTime.hasPrefix("2023-11-14T22:13:20"))
        #expect(peers[2].lastHandshakeTime == "0001-01-01T00:00:00Z")
    }

    /// SET_DEVICE: device attributes, peers in order with their flags, every nest flagged NLA_F_NESTED; read back
    /// through the GET decoder (the attribute trees agree).
    @Test func encodesASetDevice() throws {
        let change = WireGuardNetlink.DeviceChange(
            name: "cilium_wg0", privateKey: key(0xa1), listenPort: 51871, fwmark: 0x1E00,
            peers: [.init(publicKey: key(0xb0), remove: true),
                    .init(publicKey: key(0xb1), replaceAllowedIPs: true, endpoint: .init("192.168.1.2:51871"), persistentKeepalive: 0,
                          allowedIPs: [.init(IPv4Prefix("10.1.0.1/32")!), .init(IPv4Prefix("10.1.1.0/24")!)]),
                    .init(publicKey: key(0xb1), updateOnly: true, persistentKeepalive: 1)])
        let messages = WireGuardNetlink.setPayloads(change)
        try #require(messages.count == 1)
        let message = messages[0]
        #expect(Array(message.prefix(4)) == [1, 1, 0, 0], "genlmsghdr: WG_CMD_SET_DEVICE, version 1")
        let top = NetlinkAttributes.list(message.dropFirst(4))
        #expect(top.map(\.type) == [2, 3, 6, 7, 8], "no WGDEVICE_A_FLAGS: peers are not replaced")
        // The raw type of WGDEVICE_A_PEERS and of its elements carry NLA_F_NESTED.
        let peersAt = message.startIndex + 4 + top.prefix(4).map { netlinkAlign($0.payload.count + 4) }.reduce(0, +)
        #expect(message.loadNative(UInt16.self, at: peersAt + 2) == 8 | 0x8000)
        #expect(message.loadNative(UInt16.self, at: peersAt + 6) == 0x8000)
        let elements = NetlinkAttributes.list(top[4].payload).map { NetlinkAttributes($0.payload) }
        #expect(elements.map { $0.integer(3, as: UInt32.self) } == [1, 2, 4], "REMOVE_ME, REPLACE_ALLOWEDIPS, UPDATE_ONLY")
        #expect(elements[1][4].map(Array.init) == native(UInt16(AF_INET)) + [0xca, 0x9f, 192, 168, 1, 2] + [UInt8](repeating: 0, count: 8))
        #expect(elements[2].integer(5, as: UInt16.self) == 1 && elements[2][9] == nil)

        let back = try #require(WireGuardNetlink.decodeDevice(messages))
        #expect(back.name == "cilium_wg0" && back.privateKey == key(0xa1) && back.listenPort == 51871 && back.fwmark == 0x1E00)
        #expect(back.peers.map(\.publicKey) == [key(0xb0), key(0xb1)], "the same key twice in a row reads as one peer")
        #expect(back.peers[1].endpoint?.description == "192.168.1.2:51871")
        #expect(back.peers[1].allowedIPs.map(\.description) == ["10.1.0.1/32", "10.1.1.0/24"])
    }

    /// A SET_DEVICE bigger than the limit is split between peers: the device attributes in the first message, the
    /// name and further peers in the next ones.
    @Test func splitsABigSetBetweenPeers() throws {
        let peers = (0..<200).map { i in
            WireGuardNetlink.PeerChange(publicKey: key(UInt8(i)), replaceAllowedIPs: true,
                                        endpoint: .init(IPv4Address(10, 9, UInt8(i), 1), port: 51871),
                                        allowedIPs: [.init(IPv4Prefix("10.9.\(i).1/32")!), .init(IPv4Prefix("10.10.\(i).0/24")!)])
        }
        let change = WireGuardNetlink.DeviceChange(name: "wg9", privateKey: key(0xa1), listenPort: 1, fwmark: 2, peers: peers)
        let messages = WireGuardNetlink.setPayloads(change, limit: 4096)
        #expect(messages.count > 5)
        #expect(messages.allSatisfy { $0.count <= 4096 })
        for (i, m) in messages.enumerated() {
            #expect(NetlinkAttributes.list(m.dropFirst(4)).map(\.type) == (i == 0 ? [2, 3, 6, 7, 8] : [2, 8]))
        }
        let back = try #require(WireGuardNetlink.decodeDevice(messages))
        #expect(back.peers.map(\.publicKey) == peers.map(\.publicKey))
        #expect(back.peers.map { $0.allowedIPs.count } == Array(repeating: 2, count: 200))
        #expect(WireGuardNetlink.setPayloads(WireGuardNetlink.DeviceChange(name: "wg9")).count == 1)
    }

    /// On a kernel without WireGuard (this host's), the check and the device both say so.
    @Test func aKernelWithoutWireGuardIsNamed() throws {
        if (try? GenericNetlink().familyID(WireGuardNetlink.family)) != nil || FileManager.default.fileExists(atPath: "/sys/module/wireguard") {
            print("skipped: this kernel has WireGuard (KernelWireGuardTests covers it)")
            return
        }
        let checked = #expect(throws: WireGuardError.self) { try KernelWireGuard.checkKernelSupport() }
        #expect(checked?.description.contains("has no WireGuard") == true, "\(String(describing: checked))")
        let ns = try NetworkNamespace.create(named: "kwn\(String(UInt32.random(in: 0...UInt32.max), radix: 16))")
        defer { try? ns.delete() }
        let device = try KernelWireGuard(namespace: ns)
        let created = #expect(throws: WireGuardError.self) { try device.ensureCreated() }
        #expect(created?.description.contains("has no WireGuard") == true, "\(String(describing: created))")
        #expect(!device.isRunning)
    }
}

/// Tier 4 (under the second kernel, `scripts/kernel-vm`): two namespaces joined by a veth, each with a kernel
/// cilium_wg0 made and configured by our own netlink code.
@Suite(.serialized) struct KernelWireGuardTests {
    static let suite = "KernelWireGuardTests"

    /// They ping each other through the tunnel, state() shows the handshake and the transfer as `wg` does; a
    /// configuration repeated keeps the session; a new key pair on one side (the old peer goes on the other) works
    /// again at once, not after the 5 s handshake retry; a device of 400 peers is set and read over several messages.
    @Test func twoKernelDevicesTalkAndRekey() throws {
        let run = try SecondKernel.run(suite: Self.suite, test: "twoKernelDevicesTalkAndRekey") {
            try KernelWireGuard.checkKernelSupport()
            let tag = String(UInt32.random(in: 0...UInt32.max), radix: 16)
            let spaces = try ["kwa\(tag)", "kwb\(tag)"].map { try NetworkNamespace.create(named: $0) }
            let nl = try spaces.map { try Netlink(namespace: $0) }
            let devices = try spaces.map { try KernelWireGuard(namespace: $0) }
            let big = try KernelWireGuard(name: "kwbig\(tag)", namespace: spaces[0])
            let veth = "kwv\(tag)"
            defer {
                big.delete(in: nl[0], reaping: nil)
                for i in 0..<2 { devices[i].delete(in: nl[i], reaping: nil) }
                try? nl[0].deleteLink(.name(veth))
                for ns in spaces { try? ns.delete() }
            }
            let y = Int.random(in: 1...250)
            let underlay = ["10.231.\(y).1", "10.231.\(y).2"], inner = ["10.232.\(y).1", "10.232.\(y).2"]
            try spaces[1].withFD { fd in try nl[0].createVeth(name: veth, peerName: veth, peerNamespaceFD: fd, mtu: 1500) }
            var keys = [WireGuardKey.generate(), WireGuardKey.generate()]
            let peer = { (i: Int) in
                WireGuardPeer(publicKey: keys[i].publicKey, endpoint: "\(underlay[i]):\(WireGuardConstants.port)", allowedIPs: ["\(inner[i])/32"])
            }
            for i in 0..<2 {
                try nl[i].setLinkUp("lo")
                try nl[i].addAddress(IPv4Prefix(underlay[i] + "/24")!, to: .name(veth))
                try nl[i].setLinkUp(.name(veth))
                try devices[i].ensureCreated()
                let index = try nl[i].index(of: .name(WireGuardConstants.device))
                try devices[i].ensureCreated()
                #expect(try nl[i].index(of: .name(WireGuardConstants.device)) == index, "an existing device is adopted")
                #expect(try nl[i].link(.name(WireGuardConstants.device))?.kind == "wireguard")
                try devices[i].configure(key: keys[i], peers: [peer(1 - i)])
                try nl[i].setLinkMTU(.name(WireGuardConstants.device), mtu: 1500 - WireGuardConstants.overhead)
                try nl[i].addAddress(IPv4Prefix(inner[i] + "/24")!, to: .name(WireGuardConstants.device))
                try nl[i].setLinkUp(.name(WireGuardConstants.device))
                #expect(devices[i].isRunning && devices[i].implementation == "kernel WireGuard")
            }
            let first = try ping(spaces[0], inner[1], count: 2, wait: 3)
            #expect(first.ok, "\(first.output)")

            let value = { (state: [(key: String, value: String)], key: String) in state.first { $0.key == key }?.value }
            let state = try devices[0].state()
            print("state of A: " + state.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
            #expect(value(state, "private_key") == WireGuardKey.hex(keys[0].privateKey))
            #expect(value(state, "listen_port") == "51871" && value(state, "fwmark") == "7680")
            #expect(state.filter { $0.key == "public_key" }.map(\.value) == [WireGuardKey.hex(keys[1].publicKey)])
            #expect(value(state, "endpoint") == "\(underlay[1]):51871" && value(state, "allowed_ip") == "\(inner[1])/32")
            #expect((value(state, "last_handshake_time_sec").flatMap { Int($0) } ?? 0) > 0, "a handshake")
            #expect((value(state, "rx_bytes").flatMap { Int($0) } ?? 0) > 0 && (value(state, "tx_bytes").flatMap { Int($0) } ?? 0) > 0)
            #expect(value(state, "persistent_keepalive_interval") == "0")
            // wireguard-tools reads the same device over the same API.
            let dump = try runCapturing(["nsenter", "--net=" + spaces[0].path, "wg", "show", WireGuardConstants.device, "dump"]).1
            let lines = dump.split(separator: "\n").map { $0.split(separator: "\t").map(String.init) }
            #expect(lines.count == 2, "\(dump)")
            #expect(lines.first == [Data(keys[0].privateKey).base64EncodedString(), keys[0].publicKeyBase64, "51871", "0x1e00"], "\(dump)")
            #expect(lines.last.map { Array($0.prefix(4)) } == [keys[1].publicKeyBase64, "(none)", "\(underlay[1]):51871", "\(inner[1])/32"], "\(dump)")

            // The same configuration again: the session stays (no new handshake).
            try devices[0].configure(key: keys[0], peers: [peer(1)])
            let again = try devices[0].state()
            #expect(value(again, "last_handshake_time_sec") == value(state, "last_handshake_time_sec")
                    && value(again, "last_handshake_time_nsec") == value(state, "last_handshake_time_nsec"))
            #expect(try ping(spaces[0], inner[1]).ok)

            // A new key pair on A. Until B knows it, A's handshakes are dropped (and A retries only after 5 s); when
            // B learns it, B's new peer gets a handshake at once, and A's next ping goes through.
            let oldA = keys[0]
            keys[0] = WireGuardKey.generate()
            try devices[0].configure(key: keys[0], peers: [peer(1)])
            let refused = try ping(spaces[0], inner[1], wait: 1)
            #expect(!refused.ok, "B does not know A's new key yet: \(refused.output)")
            try devices[1].configure(key: keys[1], peers: [peer(0)])
            let rekeyed = try ping(spaces[0], inner[1], wait: 3)
            print("ping after the new key: \(rekeyed.ok ? "ok" : "failed") after \(rekeyed.seconds) s")
            #expect(rekeyed.ok && rekeyed.seconds < 3.5, "\(rekeyed.output)")
            let b = try devices[1].state()
            #expect(b.filter { $0.key == "public_key" }.map(\.value) == [WireGuardKey.hex(keys[0].publicKey)], "the old peer is gone")
            #expect(!b.contains { $0.value == WireGuardKey.hex(oldA.publicKey) })
            #expect(value(b, "persistent_keepalive_interval") == "0", "the keepalive that made the handshake is off again")
            let a = try devices[0].state()
            #expect(value(a, "private_key") == WireGuardKey.hex(keys[0].privateKey))
            #expect(value(a, "listen_port") == "51871" && value(a, "fwmark") == "7680")

            // 400 peers (3 allowed IPs each): several SET and GET messages; then 100 of them stay.
            try big.ensureCreated()
            let many = (0..<400).map { i in
                WireGuardPeer(publicKey: (0..<32).map { _ in UInt8.random(in: 0...255) }, endpoint: "10.240.\(i / 200).\(i % 200 + 1):51871",
                              allowedIPs: ["10.241.\(i / 200).\(i % 200 + 1)/32", "10.\(100 + i / 250).\(i % 250).0/24", "10.243.\(i % 250).\(i / 250 * 128)/25"])
            }
            try big.configure(key: WireGuardKey.generate(), port: 51999, peers: many)
            let bigState = try big.state()
            #expect(bigState.filter { $0.key == "public_key" }.map(\.value) .sorted() == many.map { WireGuardKey.hex($0.publicKey) }.sorted())
            #expect(bigState.filter { $0.key == "allowed_ip" }.count == 1200)
            let wgLines = try runCapturing(["nsenter", "--net=" + spaces[0].path, "wg", "show", big.name, "dump"]).1.split(separator: "\n")
            #expect(wgLines.count == 401)
            try big.configure(key: WireGuardKey.generate(), port: 51999, peers: Array(many.suffix(100)))
            #expect(try big.state().filter { $0.key == "public_key" }.map(\.value).sorted()
                    == many.suffix(100).map { WireGuardKey.hex($0.publicKey) }.sorted())
        }
        if let run { #expect(run.passed, "under the second kernel (exit \(run.status))") }
    }
}

/// busybox ping from inside `ns` (through ChildProcess: its SIGALRM timeout needs an unblocked signal mask).
private func ping(_ ns: NetworkNamespace, _ address: String, count: Int = 1, wait: Int = 2) throws -> (ok: Bool, output: String, seconds: Double) {
    let start = ContinuousClock.now
    let (pid, out) = try ChildProcess.spawnCapturing(["nsenter", "--net=" + ns.path, "busybox", "ping", "-c", "\(count)", "-W", "\(wait)", address])
    let text = String(decoding: ChildProcess.readAll(out), as: UTF8.self)
    let ok = ChildProcess.wait(pid) == 0
    let elapsed = ContinuousClock.now - start
    return (ok, text, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
}
