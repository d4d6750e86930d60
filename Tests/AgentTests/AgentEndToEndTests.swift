import API
import Agent
import CBPF
import Datapath
import LinuxNet
import Foundation
import Glibc
@testable import Networking
import Testing
import TestSupport

/// A cilium-agent started the way systemd starts it: in a namespace of the
/// test's own, with a NOTIFY_SOCKET the test listens on.
final class AgentUnderTest {
    let dir: TempDir
    let namespace: NetworkNamespace
    let configPath: String
    let socket: String
    let bpfRoot: String
    let notify: NotifyListener
    private(set) var process: Process?

    init(_ tag: String, extraConfig: String = "") throws {
        dir = try TempDir("cilium-e2e-\(tag)")
        let id = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        namespace = try NetworkNamespace.create(named: "cat-\(tag)-\(id)")
        configPath = dir.path + "/values.yaml"
        socket = dir.path + "/cilium.sock"
        bpfRoot = "/sys/fs/bpf/cilium-e2e-\(tag)-\(id)"
        notify = try NotifyListener(path: dir.path + "/notify.sock")
        try """
        agent:
          socketPath: \(socket)
          stateDir: \(dir.path)/state
          nodeName: e2e-\(tag)
        bpf:
          root: \(bpfRoot)
        \(extraConfig)
        """.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    deinit {
        stop(signal: SIGKILL)
        // What the agent left running in its namespace (a wireguard-go device outlives it by design).
        for pid in processes(in: namespace) { kill(pid, SIGKILL) }
        try? namespace.delete()
        BPFFS.removeTree(bpfRoot)
    }

    /// Starts the agent; returns the sd_notify messages up to READY=1.
    @discardableResult
    func start(timeout: Duration = .seconds(20), arguments: [String] = []) throws -> [String] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
        p.arguments = ["--net=\(namespace.path)", buildDirectory() + "/cilium-agent", "--config", configPath] + arguments
        var env = ProcessInfo.processInfo.environment
        env["NOTIFY_SOCKET"] = notify.path
        p.environment = env
        if !FileManager.default.fileExists(atPath: dir.path + "/agent.log") {
            _ = FileManager.default.createFile(atPath: dir.path + "/agent.log", contents: nil)
        }
        let log = FileHandle(forWritingAtPath: dir.path + "/agent.log")!
        log.seekToEndOfFile()
        p.standardOutput = log
        p.standardError = log
        notify.drain()
        try p.run()
        process = p
        let (ready, messages) = notify.waitReady(pid: p.processIdentifier, timeout: timeout)
        guard ready else { throw TestFailure("agent not READY; messages \(messages); log:\n\(self.log.suffix(3000))") }
        return messages
    }

    var log: String { (try? String(contentsOfFile: dir.path + "/agent.log", encoding: .utf8)) ?? "" }

    func stop(signal: Int32 = SIGTERM) {
        guard let p = process, p.isRunning else { return }
        kill(p.processIdentifier, signal)
        p.waitUntilExit()
    }

    /// Runs the cilium CLI against this agent.
    func cilium(_ args: [String]) throws -> (status: Int32, output: String) {
        try runCapturing([buildDirectory() + "/cilium"] + args, environment: ["CILIUM_SOCK": "unix://" + socket])
    }

    func status() throws -> StatusResponse {
        let (code, out) = try cilium(["status", "-o", "json"])
        guard code == 0 else { throw TestFailure("cilium status failed (\(code)): \(out)") }
        return try JSONDecoder().decode(StatusResponse.self, from: Data(out.utf8))
    }

    var calls: ProgramArray { get throws { try ProgramArray(pinned: bpfRoot + "/cilium_calls") } }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

func slotID(_ agent: AgentUnderTest, _ stage: cilium_stage) throws -> UInt32? {
    try agent.calls.programID(slot: stage.rawValue)
}

@Suite(.serialized) struct AgentEndToEndTests {
    @Test func readyStatusLiveToggleAndRefusedReloads() throws {
        let agent = try AgentUnderTest("toggle")
        let messages = try agent.start()
        #expect(messages.joined().contains("STATUS=Ok"))

        var st = try agent.status()
        #expect(Set(st.subsystems.keys) == ["networking", "loadbalancer", "policy", "hostfirewall", "encryption", "clustermesh", "hubble"])
        #expect(st.subsystems["networking"]?.state == .ok)
        #expect(st.subsystems["policy"]?.state == .ok)
        #expect(st.subsystems["hubble"]?.state == .ok)
        #expect(st.subsystems["hostfirewall"]?.state == .disabled)
        #expect(st.subsystems["hostfirewall"]?.enabled == false)
        #expect(st.state == .ok)
        let text = try agent.cilium(["status"])
        #expect(text.status == 0)
        #expect(text.output.contains("KubeProxyReplacement:    False"))
        #expect(text.output.contains("Host firewall:           Disabled"))
        #expect(try agent.cilium(["status", "--brief"]).output == "OK\n")

        // Live toggle: the host firewall's stage fills its slot; policy's slot is untouched.
        let policyProgram = try slotID(agent, CILIUM_STAGE_POLICY)
        #expect(policyProgram != nil)
        #expect(try slotID(agent, CILIUM_STAGE_HOSTFW) == nil)
        let set = try agent.cilium(["config", "set", "hostFirewall.enabled=true"])
        #expect(set.status == 0, "\(set.output)")
        st = try agent.status()
        #expect(st.subsystems["hostfirewall"]?.state == .ok)
        #expect(try slotID(agent, CILIUM_STAGE_HOSTFW) != nil)
        #expect(try slotID(agent, CILIUM_STAGE_POLICY) == policyProgram)
        #expect(try String(contentsOfFile: agent.configPath, encoding: .utf8).contains("enabled: true"))
        let reload = agent.notify.wait(for: "READY=1", pid: nil, timeout: .seconds(2))
        #expect(reload.messages.joined().contains("RELOADING=1"))
        #expect(reload.messages.joined().contains("MONOTONIC_USEC="))
        #expect(try agent.cilium(["config", "get", "hostFirewall.enabled"]).output == "true\n")

        // Off again: the slot empties.
        #expect(try agent.cilium(["config", "set", "hostFirewall.enabled=false"]).status == 0)
        #expect(try slotID(agent, CILIUM_STAGE_HOSTFW) == nil)

        // A bad value through the API is refused; the file and the agent stay as they were.
        let before = try String(contentsOfFile: agent.configPath, encoding: .utf8)
        let bad = try agent.cilium(["config", "set", "hubble.enabled=maybe"])
        #expect(bad.status != 0)
        #expect(bad.output.contains("hubble.enabled"))
        #expect(try String(contentsOfFile: agent.configPath, encoding: .utf8) == before)
        #expect(try agent.status().subsystems["hubble"]?.state == .ok)

        // A bad file on SIGHUP is refused with its line and column; the agent keeps running.
        try (before + "hubbel:\n  enabled: true\n").write(toFile: agent.configPath, atomically: true, encoding: .utf8)
        kill(agent.process!.processIdentifier, SIGHUP)
        _ = agent.notify.wait(for: "READY=1", pid: nil, timeout: .seconds(5))
        st = try agent.status()
        let err = try #require(st.lastReloadError)
        #expect(err.contains("values.yaml:"))
        #expect(err.contains("hubbel"))
        #expect(st.subsystems["hubble"]?.state == .ok)
        try before.write(toFile: agent.configPath, atomically: true, encoding: .utf8)

        // SIGTERM: STOPPING=1, exit 0, and the datapath stays in place.
        kill(agent.process!.processIdentifier, SIGTERM)
        let stopping = agent.notify.wait(for: "STOPPING=1", pid: nil, timeout: .seconds(10))
        #expect(stopping.ready)
        agent.process!.waitUntilExit()
        #expect(agent.process!.terminationStatus == 0, "\(agent.log.suffix(2000))")
        #expect(try slotID(agent, CILIUM_STAGE_POLICY) != nil)
        #expect(!FileManager.default.fileExists(atPath: agent.socket))
    }

    /// Issue 14, defect 3: `agent.resourceDirectory` was in no subsystem's hand-kept key list, so a live
    /// change was written and reported as applied while nothing followed it. Now Policy's (and the
    /// load balancer's and Networking's) section holds it, and the change restarts them on it.
    @Test func resourceDirectorySetLiveIsFollowed() throws {
        let agent = try AgentUnderTest("resdir")
        try agent.start()
        let dir = try TempDir("resdir")
        try """
            apiVersion: cilium.io/v2
            kind: CiliumNetworkPolicy
            metadata: {name: from-the-directory}
            spec:
              endpointSelector: {matchLabels: {app: web}}
              ingress: [{fromEndpoints: [{matchLabels: {app: client}}]}]
            ---
            # kubectl apply -f files mix kinds: the other objects are skipped and named.
            apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: k8s-one}
            spec: {podSelector: {}}
            """.write(toFile: dir.path + "/web.yaml", atomically: true, encoding: .utf8)
        let set = try agent.cilium(["config", "set", "agent.resourceDirectory=\(dir.path)"])
        #expect(set.status == 0, "\(set.output)")
        var listed = ""
        for _ in 0..<50 {
            listed = try agent.cilium(["policy", "get"]).output
            if listed.contains("from-the-directory") { break }
            usleep(100_000)
        }
        #expect(listed.contains("from-the-directory"), "\(listed)")
        let status = try agent.cilium(["status", "--verbose"]).output
        #expect(status.contains("resource directory: \(dir.path)"), "\(status)")
        #expect(status.contains("resource directory: skipped (not policies): NetworkPolicy k8s-one (\(dir.path)/web.yaml)"), "\(status)")
        #expect(try agent.status().state == .ok)
        agent.stop()
    }

    @Test func killedAgentIsReplacedAndAdoptsItsPins() throws {
        let agent = try AgentUnderTest("adopt")
        try agent.start()
        let ipcache = try BPFMap<ipcache_key, ipcache_value>(pinned: agent.bpfRoot + "/cilium_ipcache")
        let mapID = try mapID(ipcache.fd)
        let firstPolicy = try #require(try slotID(agent, CILIUM_STAGE_POLICY))
        // Something the agent's tables do not want, as a crashed agent might leave behind.
        var stale = ipcache_value()
        stale.identity = 999
        let staleKey = ipcache_key(prefixlen: 16, addr: (UInt32(10) << 24 | UInt32(99) << 16).bigEndian)
        let live = ipcache.count // the world and the node's router address (host)
        try ipcache.update(staleKey, stale)
        #expect(ipcache.count == live + 1)

        agent.stop(signal: SIGKILL)
        // The datapath keeps working without the agent.
        #expect(try slotID(agent, CILIUM_STAGE_POLICY) == firstPolicy)

        try agent.start()
        let adopted = try BPFMap<ipcache_key, ipcache_value>(pinned: agent.bpfRoot + "/cilium_ipcache")
        #expect(try self.mapID(adopted.fd) == mapID)
        // Prune dropped the stale entry and kept the live ones (0.0.0.0/0 -> world).
        #expect(adopted.count == live)
        #expect(!adopted.keys().contains { $0.prefixlen == staleKey.prefixlen && $0.addr == staleKey.addr })
        #expect(adopted.lookup(ipcache_key(prefixlen: 0, addr: 0))?.identity == UInt32(CILIUM_ID_WORLD.rawValue))
        let secondPolicy = try #require(try slotID(agent, CILIUM_STAGE_POLICY))
        #expect(secondPolicy != firstPolicy)
        #expect(try agent.status().state == .ok)
        agent.stop()
    }

    @Test func trafficThroughAttachedDeviceSurvivesAgentCrash() throws {
        let agent = try AgentUnderTest("traffic", extraConfig: "devices: [eth-t]\n")
        let peer = try NetworkNamespace.create(named: "cat-peer-\(UInt32.random(in: 0...UInt32.max))")
        defer { try? peer.delete() }
        let nl = try Netlink(namespace: agent.namespace)
        try peer.withFD { try nl.createVeth(name: "eth-t", peerName: "peer0", peerNamespaceFD: $0) }
        try nl.addAddress(IPv4Prefix("10.252.0.1/24")!, to: "eth-t")
        try nl.setLinkUp("eth-t")
        let pnl = try Netlink(namespace: peer)
        try pnl.addAddress(IPv4Prefix("10.252.0.2/24")!, to: "peer0")
        try pnl.setLinkUp("peer0")

        try agent.start()
        let ifindex = try nl.index(of: "eth-t")
        let attached = try agent.namespace.run { Attach.tcxProgramIDs(ifindex: ifindex, direction: .ingress) }
        #expect(attached.count == 1)
        #expect(FileManager.default.fileExists(atPath: agent.bpfRoot + "/networking/links/ingress-eth-t"))
        // Two directions on eth-t, plus cilium_vxlan and cilium_net of tunnel mode (the default).
        #expect(try agent.status().reconcilers.contains { $0.name == "devices" && $0.objects == 4 && $0.state == .ok })

        // A steady UDP stream into the agent's node while the agent is killed and replaced.
        let stream = try UDPStream(from: peer, to: agent.namespace, address: "10.252.0.1")
        stream.start(interval: .microseconds(500))
        Thread.sleep(forTimeInterval: 0.3)
        agent.stop(signal: SIGKILL)
        // The killed agent is one of before Networking had a directory of its own: its device links
        // were pinned under <bpf root>/links. The new one adopts them there (no second program).
        try BPFFS.makeDirectories(agent.bpfRoot + "/links")
        for name in try FileManager.default.contentsOfDirectory(atPath: agent.bpfRoot + "/networking/links") {
            #expect(rename(agent.bpfRoot + "/networking/links/" + name, agent.bpfRoot + "/links/" + name) == 0)
        }
        Thread.sleep(forTimeInterval: 0.2)
        try agent.start()
        Thread.sleep(forTimeInterval: 0.3)
        #expect(FileManager.default.fileExists(atPath: agent.bpfRoot + "/networking/links/ingress-eth-t"))
        #expect(!FileManager.default.fileExists(atPath: agent.bpfRoot + "/links/ingress-eth-t"))
        let (sent, received) = stream.finish()
        print("datagrams across kill -9 and restart of the agent: sent \(sent), received \(received)")
        #expect(sent > 500)
        #expect(received == sent, "lost \(sent - received) of \(sent) datagrams across the agent restart")

        // The new agent adopted the pinned link and swapped in its own program.
        let after = try agent.namespace.run { Attach.tcxProgramIDs(ifindex: ifindex, direction: .ingress) }
        #expect(after.count == 1)
        #expect(after != attached)
        // Every datagram went through the entry program (counted as forwarded, ingress).
        let metrics = try BPFMap<UInt32, metrics_value>(pinned: agent.bpfRoot + "/cilium_metrics")
        let key = ciliumMetricsIndex(reason: 0, direction: UInt8(CILIUM_DIR_INGRESS.rawValue))
        let counted = metrics.lookupPerCPU(key)?.reduce(0) { $0 + $1.packets } ?? 0
        #expect(counted >= UInt64(sent))
        agent.stop()
    }

    /// Networking prunes only the links it owns: the LoadBalancer's socket-LB and XDP pins beside
    /// them stay (before, a periodic refresh detached them while status still said Socket LB: Enabled).
    @Test func networkingPrunesOnlyItsOwnLinks() async throws {
        let root = try PinRoot("owned-links")
        let entry = try BPFObject(embedded: "entry", pinRoot: root.path)
        try BPFFS.makeDirectories(root.path + "/links")
        // Stand-ins (pinned maps) for another subsystem's links and for an earlier agent's device link.
        let standIn = try BPFMap<UInt32, UInt32>.create(type: BPF_MAP_TYPE_ARRAY, name: "stand_in", maxEntries: 1)
        for pin in ["/links/sock4-connect", "/links/xdp-eth0", "/links/ingress-gone"] {
            #expect(bpf_obj_pin(standIn.fd, root.path + pin) == 0)
        }
        let ops = try await DeviceLinkOperations(entry: entry, bpfRoot: root.path)
        #expect(FileManager.default.fileExists(atPath: root.path + "/networking/links/ingress-gone"))
        try await ops.prune(desired: [])
        #expect(!FileManager.default.fileExists(atPath: root.path + "/networking/links/ingress-gone"))
        #expect(FileManager.default.fileExists(atPath: root.path + "/links/sock4-connect"))
        #expect(FileManager.default.fileExists(atPath: root.path + "/links/xdp-eth0"))
    }

    @Test func missingDeviceIsRetriedUntilItAppears() throws {
        let agent = try AgentUnderTest("late", extraConfig: "devices: [late0]\n")
        try agent.start()
        var st = try agent.status()
        #expect(st.state == .degraded)
        #expect(st.subsystems["networking"]?.message.contains("device late0 not found") == true)
        // The device appears; the reconciler's retry (with backoff) attaches to it.
        let nl = try Netlink(namespace: agent.namespace)
        try nl.createVeth(name: "late0", peerName: "late1")
        let deadline = Date().addingTimeInterval(10)
        repeat {
            Thread.sleep(forTimeInterval: 0.1)
            st = try agent.status()
        } while st.state != .ok && Date() < deadline
        #expect(st.state == .ok, "\(st.message)")
        let ifindex = try nl.index(of: "late0")
        #expect(try agent.namespace.run { Attach.tcxProgramIDs(ifindex: ifindex, direction: .egress) }.count == 1)
        agent.stop()
    }

    @Test func badConfigRefusesToStart() throws {
        let agent = try AgentUnderTest("badstart", extraConfig: "maglev:\n  tableSize: 1000\n")
        #expect(throws: TestFailure.self) { try agent.start(timeout: .seconds(10)) }
        #expect(agent.process?.terminationStatus == 1)
        #expect(agent.log.contains("values.yaml:"))
        #expect(agent.log.contains("maglev.tableSize"))
    }

    /// Issue 16: an unwritable state directory printed Foundation's NSCocoaErrorDomain dump and no key.
    @Test func anUnwritableStateDirIsNamedInWords() throws {
        let agent = try AgentUnderTest("statedir")
        #expect(throws: TestFailure.self) { try agent.start(timeout: .seconds(10), arguments: ["--set", "agent.stateDir=/dev/null/state"]) }
        #expect(agent.process?.terminationStatus == 1)
        #expect(agent.log.contains("agent.stateDir: cannot create /dev/null/state: Not a directory"), "\(agent.log.suffix(500))")
        #expect(!agent.log.contains("NSCocoaErrorDomain"))
    }

    @Test func setOverridesTheFileAndABadSetRefusesToStart() throws {
        let agent = try AgentUnderTest("setflag")
        try agent.start(arguments: ["--set", "hubble.enabled=false", "--set", "hostFirewall.enabled=true"])
        let st = try agent.status()
        #expect(st.subsystems["hubble"]?.state == .disabled)
        #expect(st.subsystems["hostfirewall"]?.state == .ok)
        agent.stop()
        #expect(agent.process?.terminationStatus == 0)

        let bad = try AgentUnderTest("badset")
        #expect(throws: TestFailure.self) { try bad.start(timeout: .seconds(10), arguments: ["--set", "loadBalancer.mode=fast"]) }
        #expect(bad.process?.terminationStatus == 1)
        #expect(bad.log.contains("--set loadBalancer.mode=fast"))
    }

    @Test func unreachableAgentGivesAClearErrorAndNonZeroExit() throws {
        let (code, out) = try runCapturing([buildDirectory() + "/cilium", "status"],
                                           environment: ["CILIUM_SOCK": "unix:///tmp/no-such-agent-\(getpid()).sock"])
        #expect(code != 0)
        #expect(out.contains("/tmp/no-such-agent"))
        #expect(out.contains("cilium-agent running"))
    }

    func mapID(_ fd: Int32) throws -> UInt32 {
        var info = bpf_map_info()
        var len = UInt32(MemoryLayout<bpf_map_info>.size)
        guard bpf_obj_get_info_by_fd(fd, &info, &len) == 0 else { throw TestFailure("map info") }
        return info.id
    }
}

@Suite(.serialized) struct SandboxTests {
    /// `down` finds what a sandbox made by its name when its state is gone (an `up` or a test that
    /// died half-way, a cleaned /run): agents, namespaces, pins; and says so when there is nothing.
    /// The node's agent turned forwarding on in its namespace, whatever the host's setting.
    @Test func downRemovesWhatCarriesTheSandboxNameEvenWithoutItsState() throws {
        let name = "d" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let sandbox = buildDirectory() + "/cilium-sandbox"
        defer { _ = try? runCapturing([sandbox, "down", "--name", name]) }
        let up = try runCapturing([sandbox, "up", "--name", name, "--nodes", "1"])
        try #require(up.0 == 0, "\(up.1)")
        let verbose = try runCapturing([sandbox, "cilium", "--name", name, "node1", "--", "status", "--verbose"]).1
        #expect(verbose.contains("IPv4 forwarding: on"), "\(verbose)")
        #expect(try NetworkNamespace(named: "csbx-\(name)-node1").sysctl("net.ipv4.ip_forward") == "1")

        try FileManager.default.removeItem(atPath: "/run/cilium-sandbox/\(name)/state.json")
        let down = try runCapturing([sandbox, "down", "--name", name])
        #expect(down.0 == 0, "\(down.1)")
        #expect(down.1.contains("sandbox \(name) removed"), "\(down.1)")
        let netns = (try? FileManager.default.contentsOfDirectory(atPath: "/run/netns")) ?? []
        #expect(netns.filter { $0.hasPrefix("csbx-\(name)-") }.isEmpty, "\(netns)")
        #expect(!FileManager.default.fileExists(atPath: "/sys/fs/bpf/csbx-\(name)-node1"))
        let agents = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).filter { pid in
            guard Int32(pid) != nil, let cmd = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            return String(decoding: cmd, as: UTF8.self).contains("/run/cilium-sandbox/\(name)/")
        }
        #expect(agents.isEmpty, "still running: \(agents)")
        #expect(try runCapturing([sandbox, "down", "--name", name]).1.contains("nothing to remove"))
    }

    @Test func twoNodeSandboxUpStatusDown() throws {
        let name = "t" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let sandbox = buildDirectory() + "/cilium-sandbox"
        defer { _ = try? runCapturing([sandbox, "down", "--name", name]) }
        let up = try runCapturing([sandbox, "up", "--name", name, "--nodes", "2"])
        #expect(up.0 == 0, "\(up.1)")
        #expect(up.1.contains("node1: READY"))
        #expect(up.1.contains("node2: READY"))

        let (code, json) = try runCapturing([sandbox, "status", "--name", name, "-o", "json"])
        #expect(code == 0, "\(json)")
        struct Report: Decodable {
            struct Node: Decodable { var name: String; var ready: Bool; var socket: String; var addresses: [String]; var namespace: String }
            var nodes: [Node]
        }
        let report = try JSONDecoder().decode(Report.self, from: Data(json.utf8))
        #expect(report.nodes.map(\.name) == ["node1", "node2"])
        #expect(report.nodes.filter { !$0.ready }.isEmpty)

        // Each node's agent answers through the sandbox's cilium wrapper.
        for node in ["node1", "node2"] {
            let (c, out) = try runCapturing([sandbox, "cilium", "--name", name, node, "--", "status", "-o", "json"])
            #expect(c == 0, "\(out)")
            let st = try JSONDecoder().decode(StatusResponse.self, from: Data(out.utf8))
            #expect(st.node == node)
            #expect(st.cluster == name)
        }
        // The underlay joins the nodes: node1 reaches node2's address over UDP.
        let node2 = report.nodes[1]
        let echo = try NetworkNamespace(named: node2.namespace)
        let node1 = try NetworkNamespace(named: report.nodes[0].namespace)
        #expect(try udpDeliver(from: node1, to: echo, address: node2.addresses[0]) == 1)

        // exec runs inside the node's namespace.
        let (ec, addrs) = try runCapturing([sandbox, "exec", "--name", name, "node1", "--", "ip", "-4", "-o", "addr", "show", "eth0"])
        #expect(ec == 0)
        #expect(addrs.contains(report.nodes[0].addresses[0]))

        // A second sandbox with another name coexists with the first.
        let other = name + "b"
        defer { _ = try? runCapturing([sandbox, "down", "--name", other]) }
        let up2 = try runCapturing([sandbox, "up", "--name", other, "--nodes", "1", "--set", "hubble.enabled=false"])
        #expect(up2.0 == 0, "\(up2.1)")
        let (c2, json2) = try runCapturing([sandbox, "cilium", "--name", other, "node1", "--", "status", "-o", "json"])
        #expect(c2 == 0)
        #expect(try JSONDecoder().decode(StatusResponse.self, from: Data(json2.utf8)).subsystems["hubble"]?.state == .disabled)
        #expect(try runCapturing([sandbox, "status", "--name", name]).0 == 0)
        #expect(try runCapturing([sandbox, "down", "--name", other]).0 == 0)
        #expect(try runCapturing([sandbox, "status", "--name", name]).0 == 0)

        let down = try runCapturing([sandbox, "down", "--name", name])
        #expect(down.0 == 0)
        #expect(!FileManager.default.fileExists(atPath: "/run/netns/\(node2.namespace)"))
        #expect(!FileManager.default.fileExists(atPath: "/sys/fs/bpf/csbx-\(name)-node1"))
        #expect(!FileManager.default.fileExists(atPath: "/run/cilium-sandbox/\(name)"))
    }
}

