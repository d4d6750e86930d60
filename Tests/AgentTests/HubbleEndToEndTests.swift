import FlowDisplay
import API
import Datapath
import LinuxNet
import Foundation
import Glibc
import Testing
import TestSupport

/// Hubble end to end: a two-node sandbox with a policy that lets `client`
/// reach `echo` on 8080; `other` (node2) is denied. Flows, `--follow`,
/// metrics (checked by promtool, counters against the flows) and the service
/// map page in headless Chromium.
@Suite(.serialized) struct HubbleEndToEndTests {
    struct Status: Decodable {
        struct Pod: Decodable { var name: String; var address: String; var namespace: String; var identity: UInt32? }
        struct Node: Decodable { var name: String; var namespace: String }
        var nodes: [Node]
        var pods: [Pod]
    }

    final class Cluster {
        let name = "hb" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let sandbox = buildDirectory() + "/cilium-sandbox"
        let files: TempDir
        var pods: [String: Status.Pod] = [:]
        var nodes: [String: String] = [:]

        init() throws {
            files = try TempDir("hubble-e2e")
            do {
                try run(["up", "--name", name, "--nodes", "2", "--set", "hubble.ui.enabled=true", "--set", "prometheus.enabled=true",
                         "--set", "hubble.metrics.enabled={flow,drop,tcp,port-distribution,icmp}"])
                for (pod, node, labels) in [("client", "node1", "app=client"), ("echo", "node1", "app=echo"), ("other", "node2", "app=other")] {
                    try run(["pod", "add", "--name", name, "--node", node, "--pod", pod, "--labels", labels])
                }
                let st = try JSONDecoder().decode(Status.self, from: Data(try run(["status", "--name", name, "-o", "json"]).utf8))
                pods = Dictionary(uniqueKeysWithValues: st.pods.map { ($0.name, $0) })
                nodes = Dictionary(uniqueKeysWithValues: st.nodes.map { ($0.name, $0.namespace) })
                let policy = files.path + "/policy.yaml"
                try """
                apiVersion: cilium.io/v2
                kind: CiliumNetworkPolicy
                metadata: {name: echo-from-client, namespace: default}
                spec:
                  endpointSelector: {matchLabels: {app: echo}}
                  ingress:
                  - fromEndpoints: [{matchLabels: {app: client}}]
                    toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
                """.write(toFile: policy, atomically: true, encoding: .utf8)
                try run(["cilium", "--name", name, "all", "--", "policy", "import", policy])
                // node1 must know other's identity (through etcd) before it can deny it by name.
                let deadline = ContinuousClock.now + .seconds(10)
                while ContinuousClock.now < deadline,
                      !(try run(["cilium", "--name", name, "node1", "--", "bpf", "ipcache", "list"]).contains(pods["other"]!.address + "/32")) {
                    Thread.sleep(forTimeInterval: 0.1)
                }
            } catch {
                _ = try? runCapturing([sandbox, "down", "--name", name])
                throw error
            }
        }

        deinit { _ = try? runCapturing([sandbox, "down", "--name", name]) }

        @discardableResult
        func run(_ args: [String]) throws -> String { try runChecked([sandbox] + args) }

        func ns(_ pod: String) throws -> NetworkNamespace { try NetworkNamespace(named: pods[pod]!.namespace) }

        /// `hubble observe` through the sandbox (node nil: every node, merged), JSON lines decoded.
        func observe(_ node: String?, _ args: [String]) throws -> [Flow] {
            let out = try run(["hubble", "--name", name] + (node.map { [$0] } ?? []) + ["--", "observe", "-o", "json"] + args)
            struct Envelope: Decodable { var flow: Flow }
            return try out.split(separator: "\n").filter { $0.hasPrefix("{") }.map {
                try JSONDecoder().decode(Envelope.self, from: Data($0.utf8)).flow
            }
        }

        func scrape(_ node: String, port: Int) throws -> String {
            let (code, out) = try runCapturing(["ip", "netns", "exec", nodes[node]!, "curl", "-sf", "http://127.0.0.1:\(port)/metrics"])
            guard code == 0 else { throw Failure("scraping \(node):\(port) failed: \(out)") }
            return out
        }
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    /// The value of one sample (exact labels) in a Prometheus exposition.
    static func sample(_ text: String, _ series: String) -> Double? {
        text.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Double($0.split(separator: " ").last!) }
    }

    @Test func flowsFollowMetricsAndTheServiceMap() throws {
        let c = try Cluster()
        let echo = c.pods["echo"]!.address
        #expect(try tcpEcho(from: c.ns("client"), to: c.ns("echo"), address: echo, port: 8080) == "hello", "allowed")
        #expect(try tcpEcho(from: c.ns("other"), to: c.ns("echo"), address: echo, port: 8080, timeout: 1) == nil, "denied")
        Thread.sleep(forTimeInterval: 0.5)

        // Allowed and denied flows, with endpoints, identities, reasons and the policy's name.
        let toEcho = try c.observe(nil, ["--last", "1000", "--to-pod", "default/echo", "--port", "8080"])
        let allowed = toEcho.first { $0.verdict == "FORWARDED" && $0.source?.pod_name == "client" && $0.event_type.type == 5 }
        #expect(allowed?.destination?.pod_name == "echo" && allowed?.destination?.namespace == "default")
        #expect(allowed?.source?.identity == c.pods["client"]!.identity && allowed?.destination?.identity == c.pods["echo"]!.identity)
        #expect(allowed?.ingress_allowed_by?.first?.name == "echo-from-client", "\(String(describing: allowed))")
        #expect(allowed?.traffic_direction == "INGRESS" && allowed?.node_name == "node1")
        #expect(allowed?.l4?.TCP?.flags?.SYN == true && allowed?.summary == "TCP Flags: SYN")
        let denied = toEcho.first { $0.verdict == "DROPPED" }
        #expect(denied?.drop_reason_desc == "POLICY_DENIED" && denied?.event_type == .init(type: 1, sub_type: 133))
        #expect(denied?.source?.pod_name == "other" && denied?.source?.identity == c.pods["other"]!.identity, "a remote pod, named")
        #expect(denied?.source?.labels.contains("k8s:app=other") == true)
        #expect(denied?.IP?.source == c.pods["other"]!.address && denied?.IP?.destination == echo)
        // Filters on the server side of the CLI: --not, --verdict, --from-label; compact output with policy names.
        #expect(try c.observe(nil, ["--last", "1000", "--to-pod", "default/echo", "--not", "--verdict", "DROPPED"]).allSatisfy { $0.verdict != "DROPPED" })
        #expect(try c.observe("node1", ["--last", "1000", "--from-label", "app=other", "--verdict", "DROPPED"]).count >= 1)
        let compact = try c.run(["hubble", "--name", c.name, "node1", "--", "observe", "--last", "1000", "--to-pod", "default/echo",
                                 "--type", "policy-verdict", "--print-policy-names"])
        #expect(compact.contains("default/client:") && compact.contains("-> default/echo:8080") &&
                compact.contains("policy-verdict:L3-L4 INGRESS ALLOWED BY default/echo-from-client FORWARDED (TCP Flags: SYN)"), "\(compact)")

        // --follow streams new flows.
        let follow = Process()
        follow.executableURL = URL(fileURLWithPath: c.sandbox)
        follow.arguments = ["hubble", "--name", c.name, "node1", "--", "observe", "--follow", "--from-pod", "default/client", "--port", "8080",
                            "-o", "json"]
        let pipe = Pipe()
        follow.standardOutput = pipe
        try follow.run()
        defer { if follow.isRunning { follow.terminate() } }
        Thread.sleep(forTimeInterval: 1)
        let before = Date()
        _ = try tcpEcho(from: c.ns("client"), to: c.ns("echo"), address: echo, message: "again", port: 8080)
        var streamed = ""
        struct Envelope: Decodable { var flow: Flow }
        func fresh() -> Bool {
            streamed.split(separator: "\n").contains { line in
                guard let f = try? JSONDecoder().decode(Envelope.self, from: Data(line.utf8)).flow,
                      let t = FlowPrinter.parseTime(f.time) else { return false }
                return f.source?.pod_name == "client" && f.destination?.pod_name == "echo" && t >= before.addingTimeInterval(-1)
            }
        }
        let deadline = Date().addingTimeInterval(10)
        let fd = pipe.fileHandleForReading.fileDescriptor
        var buf = [UInt8](repeating: 0, count: 4096)
        while Date() < deadline, !fresh() {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 200) == 1 else { continue }
            let n = read(fd, &buf, buf.count)
            if n > 0 { streamed += String(decoding: buf[0..<n], as: UTF8.self) }
        }
        #expect(fresh(), "a new connection streamed by --follow: \(streamed)")
        follow.terminate()

        // Metrics: valid exposition (promtool), counters matching the flows.
        let hubbleText = try c.scrape("node1", port: 9965), agentText = try c.scrape("node1", port: 9962)
        for (what, text) in [("hubble", hubbleText), ("agent", agentText)] {
            let file = c.files.path + "/\(what).prom"
            try text.write(toFile: file, atomically: true, encoding: .utf8)
            let (code, out) = try runCapturing(["sh", "-c", "promtool check metrics < \(file)"])
            #expect(code == 0, "promtool on the \(what) metrics: \(out)")
        }
        let drops = try c.observe("node1", ["--last", "4095", "--verdict", "DROPPED", "--drop-reason-desc", "POLICY_DENIED"]).count
        #expect(drops >= 1)
        #expect(Self.sample(hubbleText, "hubble_drop_total{protocol=\"TCP\",reason=\"POLICY_DENIED\"}") == Double(drops))
        #expect(Self.sample(agentText, "cilium_drop_count_total{direction=\"INGRESS\",reason=\"Policy denied\"}") == Double(drops),
                "every drop is one event")
        let processed = hubbleText.split(separator: "\n").filter { $0.hasPrefix("hubble_flows_processed_total{") }
            .compactMap { Double($0.split(separator: " ").last!) }.reduce(0, +)
        let (_, statusJSON) = try runCapturing([buildDirectory() + "/hubble", "status", "--server",
                                                "unix:///run/cilium-sandbox/\(c.name)/node1/cilium.sock"])
        #expect(statusJSON.contains("Current/Max Flows:"))
        let all = try c.observe("node1", ["--last", "4095"]).count
        #expect(processed >= Double(all) && processed > 0, "every stored flow was counted (\(processed) vs \(all))")
        #expect(Self.sample(agentText, "cilium_endpoint") == 2 && Self.sample(agentText, "cilium_policy") == 1)
        #expect(agentText.contains("cilium_bpf_map_ops_total{map_name=\"cilium_policy\",operation=\"update\",outcome=\"success\"}"))
        // A reload moves the agent's metrics server.
        try c.run(["cilium", "--name", c.name, "node1", "--", "config", "set", "prometheus.port=9971"])
        #expect(try c.scrape("node1", port: 9971).contains("cilium_endpoint 2"))
        #expect(throws: (any Error).self) { try c.scrape("node1", port: 9962) }
        let status = try c.run(["cilium", "--name", c.name, "node1", "--", "status"])
        #expect(status.contains("Hubble:") && status.contains("Current/Max Flows:") && status.contains("Metrics: Ok"), "\(status)")

        // The service map page, in headless Chromium inside node1's namespace.
        let artifacts = buildDirectory() + "/test-artifacts"
        try FileManager.default.createDirectory(atPath: artifacts, withIntermediateDirectories: true)
        let profile = c.files.path + "/chromium"
        let chromium = ["ip", "netns", "exec", c.nodes["node1"]!, "chromium", "--headless", "--no-sandbox", "--disable-gpu",
                        "--user-data-dir=" + profile, "--virtual-time-budget=4000", "--window-size=1280,900"]
        let (code, dom) = try runCapturing(chromium + ["--dump-dom", "http://127.0.0.1:8081/"])
        #expect(code == 0)
        for pod in ["default/client", "default/echo", "default/other"] {
            #expect(dom.contains("<g class=\"node\" data-name=\"\(pod)\">"), "node \(pod) on the map")
        }
        #expect(dom.contains("data-from=\"default/client\" data-to=\"default/echo\" data-verdict=\"FORWARDED\" data-port=\"8080/TCP\""))
        #expect(dom.contains("data-from=\"default/other\" data-to=\"default/echo\" data-verdict=\"DROPPED\" data-port=\"8080/TCP\""))
        #expect(dom.contains("<body data-errors=\"0\""), "no errors on the page")
        #expect(!dom.contains("data-polls=\"0\""), "the page polled the agent")
        let shot = artifacts + "/hubble-service-map.png"
        try? FileManager.default.removeItem(atPath: shot)
        _ = try runCapturing(chromium + ["--screenshot=" + shot, "http://127.0.0.1:8081/"])
        let size = (try? FileManager.default.attributesOfItem(atPath: shot)[.size] as? Int) ?? 0
        #expect(size > 10_000, "screenshot at \(shot)")
    }
}
