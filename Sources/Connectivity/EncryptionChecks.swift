import API
import Foundation

/// Upstream's pod-to-pod-encryption and node-to-node-encryption: traffic from the client's node to the other node,
/// captured with tcpdump on the client node's device while it flows. Between the two nodes only the encryption's
/// own packets may cross (WireGuard's UDP 51871, or ESP); no pod address, no ICMP and no byte of a marker the test
/// sends may appear in clear.
enum EncryptionChecks {
    static func status(_ node: SandboxReport.Node) -> EncryptionStatusResponse? {
        (try? Sandbox.request(node, "GET", "/v1/encrypt/status")).flatMap { try? JSONDecoder().decode(EncryptionStatusResponse.self, from: $0) }
    }

    static let needsPodEncryption: @Sendable (Deployment) -> String? = { d in
        if d.nodes.count < 2 { return "Feature multi-node is disabled" }
        // An agent without the Encryption subsystem answers 503: disabled.
        let modes = d.nodes.map { status($0)?.mode ?? "Disabled" }
        return modes.allSatisfy { $0 != "Disabled" } ? nil : "Feature encryption-pod is disabled"
    }

    static let needsNodeEncryption: @Sendable (Deployment) -> String? = { d in
        if let why = needsPodEncryption(d) { return why }
        let on = d.nodes.allSatisfy { status($0)?.wireguard?.nodeEncryption == "Enabled" }
        return on ? nil : "Feature encryption-node is disabled"
    }

    /// tcpdump on one device of a node, writing a file, until `stop()`.
    final class Capture {
        let file: String
        private let stopFile: String
        private let launched: Launched

        /// `outgoing`: only what the device sends (with IPsec the kernel shows decrypted packets to the capture again,
        /// as if received, though they never crossed the wire in clear).
        init(_ d: Deployment, node: String, device: String, outgoing: Bool) throws {
            file = "/tmp/cct-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).pcap"
            stopFile = file + ".stop"
            // The capture stops itself when the stop file appears (the sandbox's exec does not pass signals on).
            let script = "tcpdump -n -U -i \"$0\" -w \"$1\" \(outgoing ? "-Q out " : "")2>\"$1.log\" & p=$!; while [ ! -e \"$2\" ]; do sleep 0.05; done; "
                + "sleep 0.3; kill -INT $p; wait $p"
            launched = try d.sandbox.startDaemon(node, ["sh", "-c", script, device, file, stopFile])
            let deadline = ContinuousClock.now + .seconds(5)
            while ContinuousClock.now < deadline,
                  (try? String(contentsOfFile: file + ".log", encoding: .utf8))?.contains("listening on") != true {
                usleep(20_000)
            }
            guard (try? String(contentsOfFile: file + ".log", encoding: .utf8))?.contains("listening on") == true else {
                _ = FileManager.default.createFile(atPath: stopFile, contents: nil)
                _ = launched.wait()
                let log = (try? String(contentsOfFile: file + ".log", encoding: .utf8)) ?? ""
                removeFiles()
                throw ConnectivityError("tcpdump on \(node) \(device) did not start (is tcpdump installed?): \(log)")
            }
        }

        /// The packets as `tcpdump -n -r` prints them, and the file's bytes.
        func stop() throws -> (lines: [String], bytes: Data) {
            _ = FileManager.default.createFile(atPath: stopFile, contents: nil)
            _ = launched.wait()
            defer { removeFiles() }
            let read = try Launched("/usr/bin/env", ["tcpdump", "-n", "-r", file]).wait()
            let bytes = (try? Data(contentsOf: URL(fileURLWithPath: file))) ?? Data()
            return (read.output.split(separator: "\n").map(String.init).filter { $0.contains(" IP ") }, bytes)
        }

        private func removeFiles() {
            for f in [file, file + ".log", stopFile] { unlink(f) }
        }
    }

    /// The node's device that carries its address (where traffic to the other nodes leaves).
    static func device(_ d: Deployment, _ node: SandboxReport.Node) throws -> String {
        guard let address = node.addresses.first else { throw ConnectivityError("\(node.name) has no address") }
        let out = try d.sandbox.exec(node.name, ["ip", "-o", "-4", "addr", "show", "to", address + "/32"]).wait().output
        guard let dev = out.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first else {
            throw ConnectivityError("\(node.name): no device holds \(address)")
        }
        return String(dev)
    }

    /// Whether a `tcpdump -n` line names `address` as its source or destination.
    static func names(_ line: String, _ address: String) -> Bool {
        line.contains(" \(address).") || line.contains(" \(address) ") || line.contains(" \(address):")
    }

    /// Runs `traffic` while capturing on the client node's device; returns the failures.
    static func captured(_ d: Deployment, test: String, marker: String, pattern: String, forbidden: [(String, String)],
                         traffic: () throws -> [String]) throws -> [String] {
        guard d.nodes.count >= 2 else { return [] }
        let (node, other) = (d.nodes[0], d.nodes[1])
        let mode = status(node)?.mode ?? "Disabled"
        let device = try device(d, node)
        let capture = try Capture(d, node: node.name, device: device, outgoing: mode == "IPsec")
        var failures = (try? traffic()) ?? ["\(test): the test's traffic could not be sent"]
        let (lines, bytes) = try capture.stop()
        guard let a = node.addresses.first, let b = other.addresses.first else { return failures }
        let where_ = "\(node.name)'s \(device)"
        if bytes.range(of: Data(marker.utf8)) != nil {
            failures.append("\(test): the marker \(marker) the test sent crossed \(where_) in clear")
        }
        if bytes.range(of: Data(pattern.utf8)) != nil {
            failures.append("\(test): the ICMP payload the test sent crossed \(where_) in clear")
        }
        for (x, y) in forbidden {
            if let line = lines.first(where: { names($0, x) && names($0, y) }) {
                failures.append("\(test): traffic between \(x) and \(y) crossed \(where_) unencrypted: \(line)")
            }
        }
        let between = lines.filter { names($0, a) && names($0, b) }
        let own = mode == "IPsec" ? { (l: String) in l.contains(": ESP(") }
            : { (l: String) in l.contains("\(a).51871 > \(b).51871: UDP") || l.contains("\(b).51871 > \(a).51871: UDP") }
        if let clear = between.first(where: { !own($0) }) {
            failures.append("\(test): \(between.filter { !own($0) }.count) packets between \(a) and \(b) on \(where_) are not \(mode): \(clear)")
        }
        if between.isEmpty { failures.append("\(test): no packet between \(a) and \(b) was captured on \(where_)") }
        return failures
    }

    /// client (first node) to echo-other-node (second node): HTTP with a marker header, and ICMP with a payload pattern.
    @Sendable static func podToPod(_ d: Deployment, _ base: RunBaseline) throws -> [String] {
        guard let client = d.clients.first(where: { $0.has("name=client") }),
              let echo = d.echoes.first(where: { $0.has("name=echo-other-node") }) else {
            return ["pod-to-pod-encryption: the deployment has no client or echo-other-node pod"]
        }
        let marker = "cct-encryption-\(UInt32.random(in: 0...UInt32.max))"
        let pattern = String(repeating: "Z", count: 32)
        return try captured(d, test: "pod-to-pod-encryption", marker: marker, pattern: pattern,
                            forbidden: [(client.address, echo.address)]) {
            var failures: [String] = []
            let http = try d.sandbox.exec(client.target, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5",
                                                          "-H", "X-Cct-Marker: \(marker)",
                                                          "http://\(echo.address):\(Defaults.echoPort)/"]).wait()
            if http.output != "200" { failures.append("pod-to-pod-encryption: \(client.display) -> \(echo.display): HTTP \(http.output)") }
            let ping = try d.sandbox.exec(client.target, ["busybox", "ping", "-c", "2", "-W", "2", "-p", "5a", "-s", "64", echo.address]).wait()
            if ping.code != 0 { failures.append("pod-to-pod-encryption: \(client.display) -> \(echo.display): ping failed: \(ping.output)") }
            return failures
        }
    }

    /// The client's node to the other node (ICMP, HTTP to its echo pod) and the client pod to the other node, all
    /// node-to-node traffic that nodeEncryption takes into the tunnel.
    @Sendable static func nodeToNode(_ d: Deployment, _ base: RunBaseline) throws -> [String] {
        guard d.nodes.count >= 2, let client = d.clients.first(where: { $0.has("name=client") }),
              let echo = d.echoes.first(where: { $0.has("name=echo-other-node") }),
              let a = d.nodes[0].addresses.first, let b = d.nodes[1].addresses.first else {
            return ["node-to-node-encryption: the deployment has no two nodes with a client and echo-other-node"]
        }
        let marker = "cct-node-encryption-\(UInt32.random(in: 0...UInt32.max))"
        let pattern = String(repeating: "Y", count: 32)
        let node = d.nodes[0].name
        return try captured(d, test: "node-to-node-encryption", marker: marker, pattern: pattern,
                            forbidden: [(a, echo.address), (client.address, b)]) {
            var failures: [String] = []
            let ping = try d.sandbox.exec(node, ["busybox", "ping", "-c", "2", "-W", "2", "-p", "59", "-s", "64", b]).wait()
            if ping.code != 0 { failures.append("node-to-node-encryption: \(node) -> \(b): ping failed: \(ping.output)") }
            let http = try d.sandbox.exec(node, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5",
                                                 "-H", "X-Cct-Marker: \(marker)", "http://\(echo.address):\(Defaults.echoPort)/"]).wait()
            if http.output != "200" { failures.append("node-to-node-encryption: \(node) -> \(echo.display): HTTP \(http.output)") }
            let toNode = try d.sandbox.exec(client.target, ["busybox", "ping", "-c", "2", "-W", "2", "-p", "59", "-s", "64", b]).wait()
            if toNode.code != 0 { failures.append("node-to-node-encryption: \(client.display) -> \(b): ping failed: \(toNode.output)") }
            return failures
        }
    }
}
