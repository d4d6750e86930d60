import AgentModel
import API
import CBPF
import Config
import Datapath
import Diagnostics
import Foundation
import HTTPTransport
import LinuxNet
import Reconciler

/// Transparent encryption (`encryption.enabled`, `encryption.type`). The encryption stage sits in the pipeline while
/// enabled. With WireGuard, the node's key pair (`<agent.stateDir>/cilium_wg0.key`) and the `cilium_wg0` device exist:
/// the kernel's WireGuard device (our own rtnetlink and generic netlink), or wireguard-go where the kernel has none
/// (`encryption.wireguard.userspaceFallback`, configured over its UAPI socket); the next agent adopts either. The stage steers traffic for keyed nodes into the device
/// (`cilium_encrypt_state` says which device and how strict). IPsec needs ESP, which this kernel lacks.
public actor EncryptionSubsystem: StageSubsystem {
    public nonisolated let name = "encryption"
    public nonisolated let owns = PinOwnership(maps: ["cilium_encrypt_state", "cilium_encrypt_nodes"], directory: "encryption")
    public nonisolated let dependencies = ["networking"]
    public nonisolated let apiPrefixes = ["/v1/encrypt"]
    public private(set) var context: SubsystemContext<Section>?
    public nonisolated let stage = PipelineStage(object: "encrypt", program: "cil_stage_encrypt", slot: CILIUM_STAGE_ENCRYPT)

    /// The running device and its key (WireGuard), once started.
    private var device: (any WireGuardDevice)?
    /// wireguard-go's PID when this agent started it (it is our child: reaped when the device goes).
    private var startedPID: Int32?
    private var key: WireGuardKey?
    /// Why the key was made anew (its file was corrupt), for the status.
    private var keyNote: String?
    /// Follows the other nodes' records into the device's peers.
    private var peerWatcher: Task<Void, Never>?
    /// Nodes left out because they publish the same public key ("node1, node2 share a key").
    private var refusedPeers: [String] = []
    private var lastPeerError: String?
    /// IPsec: the keys held (by SPI), the one in use, when the previous ones go, and the loop that follows the key
    /// file, the other nodes and the expiries.
    private var ipsecKeys: [UInt8: IPsecKey] = [:]
    private var currentSPI: UInt8 = 0
    private var keyExpiry: [UInt8: ContinuousClock.Instant] = [:]
    private var keyFileText: String?
    private var ipsecLoop: Task<Void, Never>?
    private var ipsecActive = false
    /// The last start failed: stopping then keeps the datapath (see start()).
    private var startFailed = false
    private var ipsecApplied: (local: IPsecTunnels.Local, keys: [UInt8: IPsecKey], current: UInt8, nodes: [IPsecTunnels.Node])?
    private var ipsecProblems: [String] = []
    private var keyFileError: String?
    /// A new SPI waits to be advertised until its states are in.
    private var spiToPublish = false
    private var nodeIDs: NodeIDs?

    public init() {}

    /// The settings Encryption reads (`encryption.enabled` switches it; the host reads that).
    public struct Section: Equatable, Sendable {
        public var type: EncryptionType
        public var nodeEncryption: Bool
        public var userspaceFallback: Bool
        public var persistentKeepalive: Int
        public var strictMode: AgentConfig.Encryption.StrictMode
        public var ipsec: AgentConfig.Encryption.IPsec
        /// The node's devices (`devices`): the first sizes cilium_wg0.
        public var devices: [String]
    }

    public static func section(of c: AgentConfig) -> Section {
        Section(type: c.encryption.type, nodeEncryption: c.encryption.nodeEncryption,
                userspaceFallback: c.encryption.wireguard.userspaceFallback,
                persistentKeepalive: c.encryption.wireguard.persistentKeepalive, strictMode: c.encryption.strictMode,
                ipsec: c.encryption.ipsec, devices: c.devices)
    }

    public func configure(_ context: SubsystemContext<Section>) { self.context = context }

    public func start() async throws {
        guard let context else { throw SubsystemError("\(name): not configured") }
        // A failed start leaves the datapath as it was (an earlier agent's keys, states and marks go on encrypting);
        // only turning encryption off removes it.
        startFailed = false
        do {
            try await stage.install(bpfRoot: context.bpfRoot)
            guard context.section.type == .wireguard else {
                deleteDevice()
                try await startIPsec(context)
                return
            }
            try startWireGuard(context)
            let wg = try Netlink().link(.name(WireGuardConstants.device))
            // What comes out of the device is marked decrypted (flows say it arrived encrypted).
            if let wg {
                try BPFFS.makeDirectories(owns.links(bpfRoot: context.bpfRoot))
                _ = try Attach.tcx(try await stage.otherProgram("cil_from_wireguard"), ifindex: wg.index, direction: .ingress,
                                   pinPath: decryptLinkPin(context.bpfRoot))
            }
            // The marks change first (no IPsec flag), then what IPsec left goes: no marked packet meets no policy.
            try writeState(context, deviceIndex: wg.map { UInt32($0.index) })
            clearNodeMap(context)
            if let xfrm = try? XFRM(), let nl = try? Netlink() { IPsecTunnels.removeAll(xfrm: xfrm, netlink: nl) }
            await context.shared.localEncryption.upsert(LocalEncryptionRecord(wireguardPubKey: key?.publicKeyBase64, encryptionKey: 255,
                                                                                     overhead: WireGuardConstants.overhead))
            // Peers follow the other nodes once their first listing is in (before it, the device keeps the peers it has).
            let nodes = context.shared.remoteNodes
            peerWatcher = Task { [weak self] in
                for await _ in await nodes.initialization() {}
                for await _ in await nodes.changes() {
                    guard let self else { return }
                    await self.configurePeers(await nodes.all())
                }
            }
        } catch {
            startFailed = true
            throw error
        }
    }

    /// Turned off while running: the stage leaves its slot and the device goes (nothing is left behind).
    public func stop() async {
        // After a failed start (the host stops a subsystem whose start failed): keep what encrypts now.
        if startFailed {
            startFailed = false
            await shutdown()
            return
        }
        await stage.uninstall()
        if let context { try? writeState(context, deviceIndex: nil) }
        await stopWireGuard(deleting: true)
        await stopIPsec(removing: true)
    }

    // MARK: IPsec

    /// The key file's key, a kernel that runs ESP with it (or a start error naming what is missing), the rule, and
    /// the loop that keeps the states and policies (adopting what an earlier agent left).
    private func startIPsec(_ c: SubsystemContext<Section>) async throws {
        let path = c.section.ipsec.keyFile
        let key: IPsecKey
        do {
            key = try IPsecKeyFile.load(path: path)
        } catch {
            throw SubsystemError("encryption.ipsec.keyFile: \(error)")
        }
        let xfrm = try XFRM(), nl = try Netlink()
        try IPsecTunnels.checkKernelSupport(key: key, xfrm: xfrm)
        ipsecKeys = [key.spi: key]
        currentSPI = key.spi
        keyExpiry = [:]
        keyFileText = try? String(contentsOfFile: path, encoding: .utf8)
        keyFileError = nil
        ipsecApplied = nil
        nodeIDs = NodeIDs(path: c.stateDir + "/ipsec_node_ids.json")
        if !((try? nl.rules()) ?? []).contains(where: { $0.priority == IPsecTunnels.rule.priority && $0.mark == IPsecTunnels.rule.mark
                                                 && $0.table == IPsecTunnels.rule.table }) {
            try nl.addRule(IPsecTunnels.rule)
        }
        try writeState(c, deviceIndex: nil)
        await publishSPI(c)
        ipsecActive = true
        try await ipsecTick()
        ipsecLoop = Task { [weak self] in
            while true {
                do { try await Task.sleep(for: .milliseconds(200)) } catch { return }
                guard let self else { return }
                _ = try? await self.ipsecTick()
            }
        }
    }

    private func clearNodeMap(_ c: SubsystemContext<Section>) {
        guard let map = try? BPFMap<UInt32, encrypt_node_value>(pinned: c.bpfRoot + "/cilium_encrypt_nodes") else { return }
        for (k, _) in map.entries() { _ = try? map.delete(k) }
    }

    private func publishSPI(_ c: SubsystemContext<Section>) async {
        await c.shared.localEncryption.upsert(LocalEncryptionRecord(wireguardPubKey: nil, encryptionKey: currentSPI,
                                                                    overhead: ipsecKeys[currentSPI].map(Self.espOverhead) ?? 0))
    }

    /// ESP in tunnel mode adds an outer IPv4 header, the ESP header, the IV, the ICV, the trailer and padding.
    static func espOverhead(_ key: IPsecKey) -> UInt32 {
        switch key.algorithms {
        case .aead: 20 + 8 + 8 + 16 + 2 + 3
        case .authenticated: 20 + 8 + 16 + 32 + 2 + 15
        }
    }

    /// One round: a changed key file (a new SPI rotates; a bad file or a new key under the same SPI is refused and
    /// the keys in force stay), expired previous keys, then the kernel brought to what the keys and nodes ask for.
    private func ipsecTick() async throws {
        // Not after stopIPsec (a round already on its way when the loop was cancelled).
        guard let c = context, c.section.type == .ipsec, ipsecActive else { return }
        let path = c.section.ipsec.keyFile
        if let text = try? String(contentsOfFile: path, encoding: .utf8), text != keyFileText {
            keyFileText = text
            do {
                let key = try IPsecKeyFile.parse(text, path: path)
                if let current = ipsecKeys[currentSPI] { try IPsecKeyFile.checkRotation(from: current, to: key, path: path) }
                keyFileError = nil
                if key.spi != currentSPI {
                    let keep = GoDuration.seconds(c.section.ipsec.keyRotationDuration) ?? 300
                    keyExpiry[currentSPI] = .now + .milliseconds(Int64(keep * 1000))
                    ipsecKeys[key.spi] = key
                    keyExpiry[key.spi] = nil
                    currentSPI = key.spi
                    // Advertised once its IN states exist (below), so no peer sends with it before it can be decrypted.
                    spiToPublish = true
                }
            } catch {
                keyFileError = "\(error) (the keys in force stay)"
            }
        }
        for (spi, when) in keyExpiry where when <= .now && spi != currentSPI {
            ipsecKeys[spi] = nil
            keyExpiry[spi] = nil
        }
        guard let me = await c.shared.localNode.get(0), let address = IPv4Address(me.address) else {
            ipsecProblems = ["any node: this node's address is not known yet (Networking has not published it)"]
            return
        }
        // Before the other nodes' first listing the kernel keeps what it has (an earlier agent's tunnels).
        guard await c.shared.remoteNodes.isInitialized else {
            ipsecProblems = ["any node: waiting for the first listing of the other nodes"]
            return
        }
        let local = IPsecTunnels.Local(address: address, bootID: me.bootID)
        // Nodes that advertise an SPI (1-15; 255 is WireGuard's).
        let remote = await c.shared.remoteNodes.all().filter { (1...15).contains($0.encryptionKey) }
        nodeIDs?.assign(remote.map(\.name))
        let nodes = remote.compactMap { r -> IPsecTunnels.Node? in
            guard let a = IPv4Address(r.address), let id = nodeIDs?.ids[r.name] else { return nil }
            return IPsecTunnels.Node(name: r.name, address: a, podCIDR: IPv4Prefix(r.podCIDR), id: id,
                                     advertisedSPI: r.encryptionKey, bootID: r.bootID ?? "")
        }
        if let a = ipsecApplied, a.local == local, a.keys == ipsecKeys, a.current == currentSPI, a.nodes == nodes, !spiToPublish { return }
        // Checked again after the awaits above: stopIPsec may have run meanwhile.
        guard ipsecActive else { return }
        let desired = IPsecTunnels.desired(local: local, keys: ipsecKeys, current: currentSPI, nodes: nodes)
        ipsecProblems = desired.problems
        do {
            try IPsecTunnels.apply(desired, xfrm: try XFRM(),
                                   nodeMap: try BPFMap<UInt32, encrypt_node_value>(pinned: c.bpfRoot + "/cilium_encrypt_nodes"))
            ipsecApplied = (local, ipsecKeys, currentSPI, nodes)
            lastPeerError = nil
            if spiToPublish {
                spiToPublish = false
                await publishSPI(c)
            }
        } catch {
            lastPeerError = "\(error)"
            throw error
        }
    }

    private func stopIPsec(removing: Bool) async {
        ipsecActive = false
        ipsecLoop?.cancel()
        ipsecLoop = nil
        ipsecApplied = nil
        guard removing, let c = context else { return }
        if let xfrm = try? XFRM(), let nl = try? Netlink() { IPsecTunnels.removeAll(xfrm: xfrm, netlink: nl) }
        clearNodeMap(c)
        if c.section.type == .ipsec { await c.shared.localEncryption.delete(key: 0) }
    }

    /// What the stage reads: the device to steer into (none: nothing is steered) and how strict to be.
    private func writeState(_ c: SubsystemContext<Section>, deviceIndex: UInt32?) throws {
        var v = encrypt_config()
        v.wg_ifindex = deviceIndex ?? 0
        if c.section.nodeEncryption { v.flags |= CILIUM_ENCRYPT_F_NODE.rawValue }
        if c.section.type == .ipsec { v.flags |= CILIUM_ENCRYPT_F_IPSEC.rawValue }
        let strict = c.section.strictMode
        if strict.enabled, let cidr = IPv4Prefix(strict.cidr) {
            v.flags |= CILIUM_ENCRYPT_F_STRICT.rawValue
            if strict.allowRemoteNodeIdentities { v.flags |= CILIUM_ENCRYPT_F_STRICT_REMOTE_NODE.rawValue }
            let mask: UInt32 = cidr.length == 0 ? 0 : ~UInt32(0) << (32 - UInt32(cidr.length))
            v.strict_addr = (cidr.address.value & mask).bigEndian
            v.strict_mask = mask.bigEndian
        }
        try BPFMap<UInt32, encrypt_config>(pinned: c.bpfRoot + "/cilium_encrypt_state").update(0, v)
    }

    /// Agent shutdown: the device keeps running (the next agent adopts it); only our handles go.
    public func shutdown() async {
        await stage.release()
        await stopWireGuard(deleting: false)
        await stopIPsec(removing: false)
    }

    private func stopWireGuard(deleting: Bool) async {
        peerWatcher?.cancel()
        peerWatcher = nil
        if deleting {
            deleteDevice()
            await context?.shared.localEncryption.delete(key: 0)
        }
        device = nil
    }

    /// One peer per other node that publishes a WireGuard key: its address and its whole pod CIDR as allowed IPs
    /// (one prefix, not one per pod). Nodes that publish the same key are all left out, and the status names them.
    private func configurePeers(_ nodes: [RemoteNodeRecord]) {
        guard let device, let key else { return }
        do {
            try device.configure(key: key, peers: desiredPeers(nodes, key: key))
            lastPeerError = nil
        } catch {
            lastPeerError = "\(error)"
        }
    }

    /// One peer per other node that publishes a key, unless it shares that key with another node or with `key`.
    private func desiredPeers(_ nodes: [RemoteNodeRecord], key: WireGuardKey) -> [WireGuardPeer] {
        let keyed = nodes.compactMap { n in n.wireguardPubKey.flatMap { Data(base64Encoded: $0) }.map { (n, [UInt8]($0)) } }
            .filter { $0.1.count == 32 }
        let counts = Dictionary(keyed.map { ($0.1, 1) }, uniquingKeysWith: +)
        refusedPeers = keyed.filter { counts[$0.1]! > 1 || $0.1 == key.publicKey }.map(\.0.name).sorted()
        return keyed.filter { counts[$0.1]! == 1 && $0.1 != key.publicKey }.sorted { $0.0.name < $1.0.name }.map { n, pub in
            WireGuardPeer(publicKey: pub, endpoint: "\(n.address):\(WireGuardConstants.port)", allowedIPs: ["\(n.address)/32", n.podCIDR],
                          persistentKeepalive: UInt16(context?.section.persistentKeepalive ?? 0))
        }
    }

    /// Disabled at start: a device a previous agent left goes too.
    public func removeLeftovers(bpfRoot: String) async {
        await stage.removeLeftover(bpfRoot: bpfRoot)
        deleteDevice(bpfRoot: bpfRoot)
        if let xfrm = try? XFRM(), let nl = try? Netlink() { IPsecTunnels.removeAll(xfrm: xfrm, netlink: nl) }
    }

    /// The pinned link of cilium_from_wireguard on the device's ingress.
    private func decryptLinkPin(_ bpfRoot: String) -> String { owns.links(bpfRoot: bpfRoot) + "/ingress-cilium_wg0" }

    private func deleteDevice(bpfRoot: String? = nil) {
        if let root = bpfRoot ?? context?.bpfRoot {
            BPFLink.openPinned(decryptLinkPin(root))?.detach()
            unlink(decryptLinkPin(root))
        }
        guard let nl = try? Netlink(), (try? nl.link(.name(WireGuardConstants.device))) != nil else { return }
        (device ?? UserspaceWireGuard(directory: (context?.stateDir ?? "/var/run/cilium") + "/wireguard")).delete(in: nl, reaping: startedPID)
        device = nil
        startedPID = nil
    }

    /// The key pair, then cilium_wg0 (adopted when it runs already), configured with the key, port and fwmark.
    private func startWireGuard(_ c: SubsystemContext<Section>) throws {
        let (key, note) = try WireGuardKey.loadOrCreate(path: c.stateDir + "/cilium_wg0.key")
        self.key = key
        keyNote = note
        let nl = try Netlink()
        let existing = try nl.link(.name(WireGuardConstants.device))
        let dev: any WireGuardDevice
        // The kernel's WireGuard where it has one (a kernel device left running is adopted); wireguard-go where it
        // has none and the fallback is on (a wireguard-go device left running is adopted).
        if existing?.kind == "wireguard" || (existing == nil && (try? KernelWireGuard.checkKernelSupport()) != nil) {
            let kernel = try KernelWireGuard()
            try kernel.ensureCreated()
            dev = kernel
            startedPID = nil
        } else {
            guard c.section.userspaceFallback else {
                do {
                    try KernelWireGuard.checkKernelSupport()
                } catch {
                    throw SubsystemError("encryption.type=wireguard: \(error)")
                }
                throw SubsystemError("encryption.type=wireguard: \(WireGuardConstants.device) exists and is not a kernel WireGuard device; "
                                     + "delete it, or set encryption.wireguard.userspaceFallback=true to adopt it")
            }
            let userspace = UserspaceWireGuard(directory: c.stateDir + "/wireguard")
            startedPID = try userspace.ensureRunning()
            dev = userspace
        }
        // The node's uplink sizes cilium_wg0 (its MTU - 80). Up before the peers: a new peer gets its handshake at once.
        let base = nl.uplinkMTU(devices: c.section.devices) ?? 1500
        try nl.setLinkMTU(.name(dev.name), mtu: base - WireGuardConstants.overhead)
        try nl.setLinkUp(.name(dev.name))
        // Decrypted packets come out of cilium_wg0 with sources the routes send elsewhere; the kernel checks the larger
        // of the device's and `all`'s setting, so both are off in this namespace (as upstream's agent sets them).
        for conf in [dev.name, "all"] {
            try? "0".write(toFile: "/proc/sys/net/ipv4/conf/\(conf)/rp_filter", atomically: false, encoding: .utf8)
        }
        // An adopted device keeps its peers (the peer watcher updates them once the other nodes are listed).
        try dev.configure(key: key, peers: Self.wireGuardPeers((try? dev.state()) ?? []))
        device = dev
    }

    public func health() async -> Health {
        let h = await stage.health
        guard h.state == .ok else { return h }
        if context?.section.type == .ipsec {
            if let keyFileError { return Health(.degraded, keyFileError) }
            if let lastPeerError { return Health(.degraded, "IPsec states: \(lastPeerError)") }
            if !ipsecProblems.isEmpty { return Health(.degraded, "no IPsec tunnel to " + ipsecProblems.joined(separator: "; ")) }
            return ipsecLoop == nil ? .stopped : .ok
        }
        guard let device, device.isRunning else {
            return Health(.degraded, "cilium_wg0 is not running; traffic is not encrypted")
        }
        if let lastPeerError { return Health(.degraded, "cilium_wg0 peers: \(lastPeerError)") }
        if !refusedPeers.isEmpty {
            return Health(.degraded, "nodes \(refusedPeers.joined(separator: ", ")) publish the same WireGuard public key (or this node's): no peer for them")
        }
        return .ok
    }

    public func status() async -> SubsystemStatus {
        let h = await health()
        let node = context?.section.nodeEncryption == true ? "Enabled" : "Disabled"
        if context?.section.type == .ipsec, ipsecLoop != nil {
            let st = encryptStatus().ipsec
            return SubsystemStatus(enabled: true, state: h.state, message: h.message,
                                   summary: "IPsec [SPI: \(currentSPI), Keys in use: \(st?.keysInUse ?? 0), Nodes: \(ipsecApplied?.nodes.count ?? 0)]",
                                   details: (ipsecApplied?.nodes ?? []).map { "node \($0.name) \($0.address): node ID \($0.id), advertises SPI \($0.advertisedSPI)" })
        }
        guard context?.section.type == .wireguard, let key, let device else {
            let type = context?.section.type == .ipsec ? "IPsec" : "Wireguard"
            return SubsystemStatus(enabled: true, state: h.state, message: h.message, summary: "\(type)   [not encrypting: \(h.message)]")
        }
        let state = (try? device.state()) ?? []
        let peers = Self.peers(state)
        let port = state.first { $0.key == "listen_port" }?.value ?? "?"
        // One line per peer, as the device has it (`cilium status --verbose`).
        let peerLines = peers.map { p in
            "peer \(p.publicKey): endpoint=\(p.endpoint) " + p.allowedIPs.map { "allowed_ip=\($0)" }.joined(separator: " ")
                + " last-handshake=\(p.lastHandshakeTime)"
        }
        return SubsystemStatus(
            enabled: true, state: h.state, message: h.message,
            summary: "Wireguard [NodeEncryption: \(node), \(device.name) (Pubkey: \(key.publicKeyBase64), Port: \(port), Peers: \(peers.count))]",
            details: ["device: \(device.implementation)"] + peerLines + (keyNote.map { [$0] } ?? []))
    }

    /// The peers a device has, as `configure` takes them.
    static func wireGuardPeers(_ state: [(key: String, value: String)]) -> [WireGuardPeer] {
        var peers: [WireGuardPeer] = []
        for (k, v) in state {
            if k == "public_key", let key = WireGuardKey.bytes(hex: v) {
                peers.append(WireGuardPeer(publicKey: key, endpoint: "", allowedIPs: []))
                continue
            }
            guard !peers.isEmpty else { continue }
            switch k {
            case "endpoint": peers[peers.count - 1].endpoint = v
            case "allowed_ip": peers[peers.count - 1].allowedIPs.append(v)
            case "persistent_keepalive_interval": peers[peers.count - 1].persistentKeepalive = UInt16(v) ?? 0
            default: break
            }
        }
        return peers
    }

    /// The device's peers as its UAPI `get` lists them (keys in base64, as users see them).
    static func peers(_ state: [(key: String, value: String)]) -> [EncryptionStatusResponse.Peer] {
        var peers: [EncryptionStatusResponse.Peer] = []
        var handshake = (sec: 0, nsec: 0)
        func finish() {
            guard !peers.isEmpty else { return }
            peers[peers.count - 1].lastHandshakeTime = handshake.sec == 0 ? "0001-01-01T00:00:00Z"
                : RFC3339.text(nanoseconds: Int64(handshake.sec) * 1_000_000_000 + Int64(handshake.nsec))
        }
        for (k, v) in state {
            switch k {
            case "public_key":
                finish()
                handshake = (0, 0)
                peers.append(.init(publicKey: WireGuardKey.bytes(hex: v).map { Data($0).base64EncodedString() } ?? v, endpoint: "",
                                   allowedIPs: [], lastHandshakeTime: "", transferRx: 0, transferTx: 0))
            case _ where peers.isEmpty: continue
            case "endpoint": peers[peers.count - 1].endpoint = v
            case "allowed_ip": peers[peers.count - 1].allowedIPs.append(v)
            case "rx_bytes": peers[peers.count - 1].transferRx = Int(v) ?? 0
            case "tx_bytes": peers[peers.count - 1].transferTx = Int(v) ?? 0
            case "last_handshake_time_sec": handshake.sec = Int(v) ?? 0
            case "last_handshake_time_nsec": handshake.nsec = Int(v) ?? 0
            default: break
            }
        }
        finish()
        return peers
    }

    /// `cilium encrypt status`, and `cilium encrypt rotate-key`.
    public func handle(_ request: HTTPRequest) async -> HTTPResponse {
        switch (request.method, request.path) {
        case ("GET", "/v1/encrypt/status"):
            return .json(encryptStatus())
        case ("POST", "/v1/encrypt/rotate-key"):
            do {
                return .json(try await rotateKey())
            } catch {
                return .error(status: 409, message: "\(error)")
            }
        default:
            return .error(status: 404, message: "no API endpoint \(request.method) \(request.path)")
        }
    }

    private func encryptStatus() -> EncryptionStatusResponse {
        guard let context else { return EncryptionStatusResponse(mode: "Disabled") }
        guard context.section.type == .wireguard else {
            let xfrm = try? XFRM()
            let states = ((try? xfrm?.states()) ?? []).filter { IPsecTunnels.isOurs($0.mark) }
            let stats = (try? xfrm?.statistics()) ?? [:]
            let out = states.filter { ($0.mark?.value ?? 0) & IPsecMarks.bitMask == IPsecMarks.encrypt }
            let limit: UInt64 = out.contains { $0.esn } ? UInt64.max : UInt64(UInt32.max)
            let seq = out.map(\.outputSequence).max() ?? 0
            let devices = context.section.devices.isEmpty ? ["(the node's uplink)"] : context.section.devices
            return EncryptionStatusResponse(mode: "IPsec", ipsec: .init(
                decryptInterfaces: devices, keysInUse: Set(states.map(\.spi)).count,
                maxSeqNumber: "0x\(String(seq, radix: 16))/0x\(String(limit, radix: 16))",
                errorCount: stats.values.reduce(0, +), xfrmErrors: stats.filter { $0.value != 0 }),
                msg: keyFileError)
        }
        let node = context.section.nodeEncryption ? "Enabled" : "Disabled"
        guard let device, let key, let state = try? device.state() else {
            return EncryptionStatusResponse(mode: "Wireguard", wireguard: .init(interfaces: [], nodeEncryption: node),
                                            msg: "cilium_wg0 is not running; traffic is not encrypted")
        }
        let port = state.first { $0.key == "listen_port" }.flatMap { Int($0.value) } ?? 0
        return EncryptionStatusResponse(mode: "Wireguard", wireguard: .init(
            interfaces: [.init(name: device.name, publicKey: key.publicKeyBase64, listenPort: port, peers: Self.peers(state))],
            nodeEncryption: node))
    }

    /// A new key pair, written to the key file, put into the device (the peers stay) and published: each peer
    /// replaces this node's key as soon as its agent sees the node record, and WireGuard shakes hands anew.
    func rotateKey() async throws -> KeyRotationResponse {
        guard let context, context.section.type == .wireguard else {
            throw SubsystemError("rotate-key rotates the WireGuard key; IPsec keys change through encryption.ipsec.keyFile (a new SPI)")
        }
        let nodes = await context.shared.remoteNodes.all()
        // Checked after the await: the device may have gone meanwhile.
        guard let device, let old = key, self.context?.section.type == .wireguard else {
            throw SubsystemError("cilium_wg0 is not running; nothing to rotate")
        }
        let new = WireGuardKey.generate()
        let peers = desiredPeers(nodes, key: new)
        // The device first: if it refuses, nothing changed. Then the file; if that fails, the device goes back.
        try device.configure(key: new, peers: peers)
        do {
            try WireGuardKey.write(new, to: context.stateDir + "/cilium_wg0.key")
        } catch {
            try? device.configure(key: old, peers: desiredPeers(nodes, key: old))
            throw error
        }
        key = new
        keyNote = nil
        await context.shared.localEncryption.upsert(LocalEncryptionRecord(wireguardPubKey: new.publicKeyBase64, encryptionKey: 255,
                                                                          overhead: WireGuardConstants.overhead))
        return KeyRotationResponse(previousPublicKey: old.publicKeyBase64, publicKey: new.publicKeyBase64)
    }
}
