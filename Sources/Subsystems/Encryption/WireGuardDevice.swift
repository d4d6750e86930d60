import CBPF
import Foundation
import Glibc
import LinuxNet
import Spawning

/// Upstream's WireGuard constants.
package enum WireGuardConstants {
    package static let device = "cilium_wg0"
    /// Upstream's port, from bpf/include/cilium_maps.h (the datapath knows it too).
    package static let port = UInt16(CILIUM_WG_PORT)
    /// The mark on the packets the device emits (so that they are not steered into it again).
    package static let fwmark = UInt32(CILIUM_MARK_WIREGUARD)
    /// WireGuard's own overhead over IPv4 (outer IP, UDP, WireGuard header and tag): device MTU - 80.
    package static let overhead: UInt32 = 80
}

/// One peer as the device should have it.
package struct WireGuardPeer: Equatable, Sendable {
    package var publicKey: [UInt8]
    package var endpoint: String
    package var allowedIPs: [String]
    package var persistentKeepalive: UInt16 = 0

    package init(publicKey: [UInt8], endpoint: String, allowedIPs: [String], persistentKeepalive: UInt16 = 0) {
        self.publicKey = publicKey
        self.endpoint = endpoint
        self.allowedIPs = allowedIPs
        self.persistentKeepalive = persistentKeepalive
    }
}

/// cilium_wg0, whoever runs it: wireguard-go (`UserspaceWireGuard`) or the kernel.
package protocol WireGuardDevice: Sendable {
    var name: String { get }
    /// True when the device exists and answers.
    var isRunning: Bool { get }
    /// What runs it, for `cilium status --verbose` ("wireguard-go (userspace fallback), UAPI socket ...").
    var implementation: String { get }
    /// Private key, port, fwmark, and exactly `peers` (others go). Peers that stay are changed in place (their
    /// sessions kept); a new peer, or one with a new key, gets a handshake at once.
    func configure(key: WireGuardKey, port: UInt16, peers: [WireGuardPeer]) throws
    /// The device's state in the UAPI's `get=1` form, whoever runs it: device keys (`private_key`, `listen_port`,
    /// `fwmark`), then per peer from its `public_key` (hex): `endpoint`, `allowed_ip`, `rx_bytes`, `tx_bytes`,
    /// `last_handshake_time_sec`/`_nsec`, `persistent_keepalive_interval`.
    func state() throws -> [(key: String, value: String)]
    /// Removes the device. `reaping`: a process of ours that ran it, waited for.
    func delete(in netlink: Netlink, reaping pid: Int32?)
}

extension WireGuardDevice {
    package func configure(key: WireGuardKey, peers: [WireGuardPeer]) throws {
        try configure(key: key, port: WireGuardConstants.port, peers: peers)
    }
}

/// `cilium_wg0` run by Debian's wireguard-go (the userspace fallback, `encryption.wireguard.userspaceFallback`), as a
/// process of its own: it outlives the agent, and the next agent adopts it through its UAPI socket.
///
/// wireguard-go puts its socket in the fixed /var/run/wireguard; each agent (several run on one machine in a
/// sandbox) gives it a private mount of its own directory there, so the socket is `<directory>/cilium_wg0.sock`.
/// The device lives in the network namespace of whoever starts it (the agent's).
package struct UserspaceWireGuard: WireGuardDevice {
    package let directory: String
    package let name: String

    package init(directory: String, name: String = WireGuardConstants.device) {
        self.directory = directory
        self.name = name
    }

    package var socketPath: String { "\(directory)/\(name).sock" }
    package var uapi: WireGuardUAPI { WireGuardUAPI(socketPath: socketPath) }

    /// True when a device answers on the socket.
    package var isRunning: Bool { (try? uapi.get()) != nil }
    package var implementation: String { "wireguard-go (userspace fallback), UAPI socket \(socketPath)" }
    package func state() throws -> [(key: String, value: String)] { try uapi.get() }

    /// Adopts the running device, or starts wireguard-go and waits for its socket. Returns the PID of the process it
    /// started (our child: `delete(in:reaping:)` reaps it), nil when it adopted a running device.
    @discardableResult
    package func ensureRunning(timeout: Duration = .seconds(10)) throws -> Int32? {
        if isRunning { return nil }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        unlink(socketPath) // a stale socket of a device that is gone
        try FileManager.default.createDirectory(atPath: "/var/run/wireguard", withIntermediateDirectories: true)
        // unshare's new mount namespace is private: the bind mount stays in it.
        let script = "mount --bind \"$0\" /var/run/wireguard && exec wireguard-go \"$1\""
        var env = ProcessInfo.processInfo.environment
        env["WG_PROCESS_FOREGROUND"] = "1"
        let pid: Int32
        do {
            pid = try ChildProcess.spawn(["unshare", "--mount", "sh", "-c", script, directory, name],
                                         output: directory + "/wireguard-go.log", newSession: true, environment: env)
        } catch {
            throw WireGuardError("cannot start wireguard-go (is it installed? apt-get install wireguard-go): \(error)")
        }
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if isRunning { return pid }
            usleep(20_000)
        }
        let log = (try? String(contentsOfFile: directory + "/wireguard-go.log", encoding: .utf8)) ?? ""
        throw WireGuardError("wireguard-go did not open \(socketPath) within \(timeout); its log: \(log.suffix(500))")
    }

    /// Private key, port, fwmark, and exactly `peers` (others go).
    package func configure(key: WireGuardKey, port: UInt16, peers: [WireGuardPeer]) throws {
        // Peers are changed in place, not replaced: a peer that stays keeps its session (no new handshake, nothing lost).
        let current = Set(try uapi.get().filter { $0.key == "public_key" }.map(\.value))
        defer { enlargeSocketBuffers() }
        let wanted = Set(peers.map { WireGuardKey.hex($0.publicKey) })
        // The device's own settings only when they differ: wireguard-go rebinds its socket on every listen_port.
        let device = try uapi.get()
        let have = { (k: String) in device.first { $0.key == k }?.value }
        var lines: [String] = []
        if have("private_key") != WireGuardKey.hex(key.privateKey) { lines.append("private_key=\(WireGuardKey.hex(key.privateKey))") }
        if have("listen_port") != String(port) { lines.append("listen_port=\(port)") }
        if have("fwmark") != String(WireGuardConstants.fwmark) { lines.append("fwmark=\(WireGuardConstants.fwmark)") }
        for gone in current.subtracting(wanted).sorted() {
            lines += ["public_key=\(gone)", "remove=true"]
        }
        for p in peers {
            lines.append("public_key=\(WireGuardKey.hex(p.publicKey))")
            lines.append("endpoint=\(p.endpoint)")
            lines.append("persistent_keepalive_interval=\(p.persistentKeepalive)")
            lines.append("replace_allowed_ips=true")
            lines += p.allowedIPs.map { "allowed_ip=\($0)" }
        }
        // A new peer (or a peer's new key) gets a handshake now, not when its own retry comes (up to 5 s): turning a
        // keepalive on sends one at once, and it is turned off again (or left as configured).
        for p in peers where !current.contains(WireGuardKey.hex(p.publicKey)) && p.persistentKeepalive == 0 {
            lines += ["public_key=\(WireGuardKey.hex(p.publicKey))", "update_only=true", "persistent_keepalive_interval=1",
                      "public_key=\(WireGuardKey.hex(p.publicKey))", "update_only=true", "persistent_keepalive_interval=0"]
        }
        try uapi.set(lines)
    }

    /// wireguard-go (before 0.0.20230223, as Debian's) leaves its UDP sockets at the kernel's default buffer (208 KiB):
    /// under load the receiving one overflows (UdpRcvbufErrors) and TCP through the tunnel loses ~10% of its packets.
    /// Newer wireguard-go sets 7 MiB itself; the agent does it for the one it runs, through a copy of the socket.
    package func enlargeSocketBuffers(bytes: Int32 = 7 << 20) {
        for pid in processes() {
            for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? [] {
                guard let fd = Int32(entry),
                      (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(entry)"))?.hasPrefix("socket:") == true
                else { continue }
                let copy = cil_copy_fd_of_process(pid, fd)
                guard copy >= 0 else { continue }
                var type: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                if getsockopt(copy, SOL_SOCKET, SO_TYPE, &type, &length) == 0, type == Int32(SOCK_DGRAM.rawValue) {
                    var size = bytes
                    _ = setsockopt(copy, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size))
                    _ = setsockopt(copy, SOL_SOCKET, SO_SNDBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size))
                }
                close(copy)
            }
        }
    }

    /// The wireguard-go processes running this device in this network namespace.
    private func processes() -> [Int32] {
        let ownNet = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/net")
        return ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { p -> Int32? in
            guard let pid = Int32(p),
                  (try? String(contentsOfFile: "/proc/\(p)/comm", encoding: .utf8))?.hasPrefix("wireguard-go") == true,
                  (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(p)/ns/net")) == ownNet,
                  let cmdline = FileManager.default.contents(atPath: "/proc/\(p)/cmdline"),
                  cmdline.split(separator: 0).last.map({ String(decoding: $0, as: UTF8.self) }) == name else { return nil }
            return pid
        }
    }

    /// Removes the device: wireguard-go exits when its link goes. `reaping`: the wireguard-go we started (our child),
    /// waited for (SIGTERM after 2 s) so that no zombie is left.
    package func delete(in netlink: Netlink, reaping pid: Int32?) {
        try? netlink.deleteLink(.name(name))
        unlink(socketPath)
        guard let pid else { return }
        var status: Int32 = 0
        let deadline = ContinuousClock.now + .seconds(2)
        while ContinuousClock.now < deadline {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid || (r < 0 && errno == ECHILD) { return }
            usleep(20_000)
        }
        kill(pid, SIGTERM)
        _ = ChildProcess.wait(pid)
    }
}
