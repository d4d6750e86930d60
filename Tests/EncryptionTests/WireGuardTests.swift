import Foundation
import Glibc
import LinuxNet
import Spawning
import Testing
import TestSupport
@testable import Encryption

private func bytes(_ hex: String) -> [UInt8] { WireGuardKey.bytes(hex: hex)! }

/// X25519 against RFC 7748's vectors and against `wg pubkey` (wireguard-tools).
@Suite struct X25519Tests {
    @Test func rfc7748Vectors() {
        let alice = bytes("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
        let bob = bytes("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
        #expect(X25519.publicKey(alice) == bytes("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"))
        #expect(X25519.publicKey(bob) == bytes("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"))
        let shared = bytes("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
        #expect(X25519.scalarMult(alice, X25519.publicKey(bob)) == shared)
        #expect(X25519.scalarMult(bob, X25519.publicKey(alice)) == shared)
        // Section 5.2: one iteration of the scalar-times-u test.
        let k = bytes("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4")
        let u = bytes("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c")
        #expect(X25519.scalarMult(k, u) == bytes("c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"))
    }

    @Test func matchesWgPubkey() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/wg") else {
            print("skipped: wireguard-tools is not installed (scripts/install-deps.sh installs it)")
            return
        }
        for _ in 0..<5 {
            let key = WireGuardKey.generate()
            let input = Data(key.privateKey).base64EncodedString()
            let (code, out) = try runCapturing(["sh", "-c", "echo \(input) | wg pubkey"])
            #expect(code == 0)
            #expect(out.trimmingCharacters(in: .whitespacesAndNewlines) == key.publicKeyBase64)
        }
    }
}

/// The key file: 32 bytes, 0600, made once and reused; a corrupt file gives a new key and says so.
@Suite struct WireGuardKeyFileTests {
    @Test func madeOnceReusedAndReplacedWhenCorrupt() throws {
        let dir = NSTemporaryDirectory() + "wgkey-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/cilium_wg0.key"
        let (first, note1) = try WireGuardKey.loadOrCreate(path: path)
        #expect(note1 == nil)
        var st = stat()
        #expect(stat(path, &st) == 0 && st.st_mode & 0o777 == 0o600 && st.st_size == 32)
        let (again, note2) = try WireGuardKey.loadOrCreate(path: path)
        #expect(again == first && note2 == nil)
        try Data("not a key".utf8).write(to: URL(fileURLWithPath: path))
        let (fresh, note3) = try WireGuardKey.loadOrCreate(path: path)
        #expect(fresh != first)
        #expect(note3?.contains("not a 32-byte key") == true)
        #expect(try WireGuardKey.loadOrCreate(path: path).key == fresh)
    }
}

/// Two namespaces joined by a veth, each with cilium_wg0 run by wireguard-go and configured by our code through
/// its UAPI socket: they ping each other through the tunnel, the handshake shows, and deleting the link stops
/// wireguard-go.
@Suite(.serialized) struct UserspaceWireGuardTests {
    @Test func twoDevicesConfiguredOverUAPITalk() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/wireguard-go") else {
            print("skipped: wireguard-go is not installed (scripts/install-deps.sh installs it)")
            return
        }
        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let names = ["wga\(tag)", "wgb\(tag)"]
        let spaces = try names.map { try NetworkNamespace.create(named: $0) }
        let dirs = names.map { NSTemporaryDirectory() + $0 }
        var pids: [Int32?] = [nil, nil]
        defer {
            for (i, (ns, dir)) in zip(spaces, dirs).enumerated() {
                if let nl = try? Netlink(namespace: ns) { UserspaceWireGuard(directory: dir).delete(in: nl, reaping: pids[i]) }
                try? ns.delete()
                try? FileManager.default.removeItem(atPath: dir)
            }
        }
        let a = try Netlink(namespace: spaces[0]), b = try Netlink(namespace: spaces[1])
        try spaces[1].withFD { fd in try a.createVeth(name: "ul0", peerName: "ul0", peerNamespaceFD: fd, mtu: 1500) }
        let underlay = ["192.168.77.1", "192.168.77.2"], inner = ["10.77.0.1", "10.77.0.2"]
        for (i, nl) in [a, b].enumerated() {
            try nl.setLinkUp("lo")
            try nl.addAddress(Netlink.IPv4Prefix(underlay[i] + "/24")!, to: "ul0")
            try nl.setLinkUp("ul0")
        }
        let keys = [WireGuardKey.generate(), WireGuardKey.generate()]
        let devices = dirs.map { UserspaceWireGuard(directory: $0) }
        for i in 0..<2 {
            pids[i] = try spaces[i].run { try devices[i].ensureRunning() }
            #expect(pids[i] != nil)
            #expect(try spaces[i].run { try devices[i].ensureRunning() } == nil, "a running device is adopted, not started again")
            let peer = WireGuardPeer(publicKey: keys[1 - i].publicKey, endpoint: "\(underlay[1 - i]):\(WireGuardConstants.port)",
                                     allowedIPs: ["\(inner[1 - i])/32"])
            try devices[i].configure(key: keys[i], peers: [peer])
            let nl = [a, b][i]
            try nl.setLinkMTU(.name(WireGuardConstants.device), mtu: 1500 - WireGuardConstants.overhead)
            try nl.addAddress(Netlink.IPv4Prefix(inner[i] + "/24")!, to: .name(WireGuardConstants.device))
            try nl.setLinkUp(.name(WireGuardConstants.device))
        }
        // Through ChildProcess: busybox ping times out with SIGALRM, which Foundation's Process leaves blocked.
        let (pid, out) = try ChildProcess.spawnCapturing(["nsenter", "--net=/run/netns/\(names[0])", "busybox", "ping", "-c", "2", "-W", "3", inner[1]])
        let text = String(decoding: ChildProcess.readAll(out), as: UTF8.self)
        #expect(ChildProcess.wait(pid) == 0, "\(text)")
        let state = try devices[0].uapi.get()
        #expect(state.contains { $0.key == "listen_port" && $0.value == "\(WireGuardConstants.port)" })
        #expect(state.contains { $0.key == "fwmark" && $0.value == "\(WireGuardConstants.fwmark)" })
        #expect(state.contains { $0.key == "public_key" && $0.value == WireGuardKey.hex(keys[1].publicKey) })
        let handshake = state.first { $0.key == "last_handshake_time_sec" }.flatMap { Int($0.value) } ?? 0
        #expect(handshake > 0, "\(state)")
        // Deleting the link ends wireguard-go.
        devices[0].delete(in: a, reaping: pids[0])
        pids[0] = nil
        #expect(!devices[0].isRunning)
    }
}
