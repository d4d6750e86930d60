import Foundation
import Glibc
import LinuxNet
import Spawning

/// Issue 18's figures, on this host (wireguard-go, the userspace fallback): pod to pod across two sandbox nodes
/// through our WireGuard path (BPF, VXLAN inside cilium_wg0) versus a wireguard-go tunnel set up by hand with `wg`
/// between the same two node namespaces, in the same run; and the time from `cilium encrypt rotate-key` to a
/// working tunnel.
enum WireGuardBenchmark {
    static func run(bin: String) throws -> [(String, String, String)] {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/wireguard-go"),
              FileManager.default.isExecutableFile(atPath: "/usr/bin/wg") else {
            return [("pod to pod, two nodes, WireGuard (wireguard-go)", "not measured: wireguard-go or wg is missing", "")]
        }
        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let sandbox = "bw\(tag.prefix(6))"
        let sb = bin + "/cilium-sandbox"
        var handMade: [(ns: String, pid: Int32)] = []
        defer {
            for (ns, pid) in handMade {
                _ = PodPaths.shell(["ip", "-n", ns, "link", "del", "wgb0"])
                var status: Int32 = 0
                for _ in 0..<100 where waitpid(pid, &status, WNOHANG) == 0 { usleep(20_000) }
                if waitpid(pid, &status, WNOHANG) == 0 { kill(pid, SIGKILL); waitpid(pid, &status, 0) }
            }
            _ = PodPaths.shell([sb, "down", "--name", sandbox])
            for k in 0..<2 { try? FileManager.default.removeItem(atPath: "/tmp/\(sandbox)-wgb\(k)") }
        }
        guard PodPaths.shell([sb, "up", "--name", sandbox, "--nodes", "2", "--set", "encryption.enabled=true",
                              "--set", "encryption.wireguard.userspaceFallback=true"]).0 == 0,
              PodPaths.shell([sb, "pod", "add", "--name", sandbox, "--node", "node1", "--pod", "client"]).0 == 0,
              PodPaths.shell([sb, "pod", "add", "--name", sandbox, "--node", "node2", "--pod", "server"]).0 == 0
        else { throw BenchError("cannot build the two-node WireGuard sandbox") }
        let nodes = ["csbx-\(sandbox)-node1", "csbx-\(sandbox)-node2"], addresses = ["172.30.0.11", "172.30.0.12"]
        let pods = PodPaths.Pair(from: try NetworkNamespace(named: "csbx-\(sandbox)-pod-client"),
                                 to: try NetworkNamespace(named: "csbx-\(sandbox)-pod-server"), address: "10.0.1.2")

        // The baseline: wireguard-go by hand (wg genkey, wg set), wgb0 in each node namespace, port 51999, the same
        // MTU as cilium_wg0 (the uplink's - 80), 10.254.40.1 and .2 over it.
        let keys = try (0..<2).map { _ -> (String, String) in
            let priv = PodPaths.shell(["wg", "genkey"]).1.trimmingCharacters(in: .whitespacesAndNewlines)
            let pub = try pipe(["wg", "pubkey"], input: priv)
            return (priv, pub)
        }
        for k in 0..<2 {
            let ns = nodes[k], dir = "/tmp/\(sandbox)-wgb\(k)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let keyFile = dir + "/key"
            try keys[k].0.write(toFile: keyFile, atomically: true, encoding: .utf8)
            // Its own /var/run/wireguard (the agents' are private mounts of their own).
            let pid = try ChildProcess.spawn(["ip", "netns", "exec", ns, "unshare", "--mount", "sh", "-c",
                                 "mount --bind \(dir) /var/run/wireguard && WG_PROCESS_FOREGROUND=1 exec wireguard-go wgb0"],
                                             output: "/dev/null")
            handMade.append((ns, pid))
            for _ in 0..<100 where !FileManager.default.fileExists(atPath: dir + "/wgb0.sock") { usleep(20_000) }
            let mtu = PodPaths.shell(["ip", "-n", ns, "-o", "link", "show", "cilium_wg0"]).1
                .components(separatedBy: " mtu ").dropFirst().first?.split(separator: " ").first.map(String.init) ?? "1420"
            let other = 1 - k
            for cmd in [["ip", "netns", "exec", ns, "nsenter", "--mount=/proc/\(pid)/ns/mnt", "wg", "set", "wgb0", "private-key", keyFile,
                         "listen-port", "51999", "peer", keys[other].1, "endpoint", "\(addresses[other]):51999",
                         "allowed-ips", "10.254.40.\(other + 1)/32"],
                        ["ip", "-n", ns, "addr", "add", "10.254.40.\(k + 1)/24", "dev", "wgb0"],
                        ["ip", "-n", ns, "link", "set", "wgb0", "mtu", mtu, "up"]] {
                let r = PodPaths.shell(cmd)
                guard r.0 == 0 else { throw BenchError("hand-made wireguard-go: \(cmd.joined(separator: " ")): \(r.1)") }
            }
        }
        let plain = PodPaths.Pair(from: try NetworkNamespace(named: nodes[0]), to: try NetworkNamespace(named: nodes[1]),
                                  address: "10.254.40.2")
        // Both tunnels shake hands before measuring.
        for (ns, to) in [(pods.from.name!, pods.address), (nodes[0], plain.address)] {
            _ = ping(ns, to, count: 3)
        }

        var rows: [(String, String, String)] = []
        let rounds = BenchMode.pick(3, quick: 1), seconds = BenchMode.pick(3, quick: 1)
        var rr = [0.0, 0.0], gbps: [Double?] = [nil, nil]
        for _ in 0..<rounds {
            for (i, p) in [pods, plain].enumerated() { rr[i] = max(rr[i], try PodPaths.requestResponse(p, seconds: seconds)) }
            for (i, p) in [pods, plain].enumerated() {
                if let t = PodPaths.iperf(p, seconds: seconds) { gbps[i] = max(gbps[i] ?? 0, t) }
            }
        }
        rows.append(("pod to pod, two nodes, WireGuard (wireguard-go): TCP RR/s",
                     String(format: "%.0f vs wireguard-go by hand %.0f (%.2fx)", rr[0], rr[1], rr[0] / rr[1]), ">= 0.9x"))
        if let ours = gbps[0], let theirs = gbps[1] {
            rows.append(("pod to pod, two nodes, WireGuard (wireguard-go): TCP throughput",
                         String(format: "%.2f Gbit/s vs wireguard-go by hand %.2f (%.2fx)", ours, theirs, ours / theirs), ">= 0.9x"))
        } else {
            rows.append(("pod to pod, two nodes, WireGuard (wireguard-go): TCP throughput", "not measured: iperf3 failed or is missing", ">= 0.9x"))
        }

        // Key change -> working tunnel: rotate node1's key, then ping (10 ms apart, each waiting 1 s) until one answers.
        var ms: [Double] = []
        for _ in 0..<BenchMode.pick(5, quick: 2) {
            let start = ContinuousClock.now
            guard PodPaths.shell([sb, "cilium", "--name", sandbox, "node1", "--", "encrypt", "rotate-key"]).0 == 0 else {
                throw BenchError("cilium encrypt rotate-key failed")
            }
            while ContinuousClock.now - start < .seconds(10) {
                if ping(pods.from.name!, pods.address, count: 1) { break }
                usleep(10_000)
            }
            ms.append(Bench.seconds(ContinuousClock.now - start) * 1000)
            usleep(200_000)
        }
        ms.sort()
        rows.append(("cilium encrypt rotate-key -> pod to pod again (2 nodes)",
                     String(format: "p50 %.0f ms, max %.0f ms (%d rotations)", ms[ms.count / 2], ms.last!, ms.count), "< 1 s"))
        return rows
    }

    /// busybox ping paces itself and times out with SIGALRM: it runs with a clean signal mask (a child of Foundation's
    /// Process inherits blocked signals and then waits forever for a lost reply), and -w bounds it.
    private static func ping(_ namespace: String, _ address: String, count: Int) -> Bool {
        (try? ChildProcess.run(["ip", "netns", "exec", namespace, "busybox", "ping", "-c", String(count), "-W", "1",
                                "-w", String(count + 1), address], output: "/dev/null")) == 0
    }

    private static func pipe(_ argv: [String], input: String) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = argv
        let inPipe = Pipe(), outPipe = Pipe()
        p.standardInput = inPipe
        p.standardOutput = outPipe
        try p.run()
        inPipe.fileHandleForWriting.write(Data(input.utf8))
        try inPipe.fileHandleForWriting.close()
        let out = outPipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: out, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
