#if canImport(LoadBalancer)
import Datapath
import LinuxNet
import Foundation
import LoadBalancer

/// The baseline users pick today instead of iptables: kube-proxy's nftables mode (GA since
/// Kubernetes 1.33). Its NAT ruleset, in the layout kube-proxy generates (one `ip kube-proxy`
/// table): a `service-ips` verdict map keyed by address . protocol . port (one lookup, whatever
/// the number of services), a chain per service that marks traffic from outside the cluster CIDR
/// for masquerade and picks an endpoint with `numgen random mod N vmap`, a chain per endpoint
/// that DNATs, and the masquerading chain in postrouting. Emitted as kube-proxy's transactions
/// are: tables, chains and the map first, then rules and elements.
enum KubeProxyNFTables {
    struct Service {
        var vip: String
        var port: Int
        var backends: [String]   // "addr:port"
    }

    static func ruleset(_ services: [Service], clusterCIDR: String = "10.0.0.0/8") -> String {
        var chains = ["add table ip kube-proxy { comment \"rules for kube-proxy\" ; }",
                      "add chain ip kube-proxy mark-for-masquerade",
                      "add chain ip kube-proxy masquerading",
                      "add chain ip kube-proxy services",
                      "add chain ip kube-proxy nat-output { type nat hook output priority -100 ; }",
                      "add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; }",
                      "add chain ip kube-proxy nat-postrouting { type nat hook postrouting priority 100 ; }",
                      "add map ip kube-proxy service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }"]
        var rules = ["add rule ip kube-proxy mark-for-masquerade mark set mark or 0x4000",
                     "add rule ip kube-proxy masquerading mark and 0x4000 == 0 return",
                     "add rule ip kube-proxy masquerading mark set mark xor 0x4000",
                     "add rule ip kube-proxy masquerading masquerade fully-random",
                     "add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips",
                     "add rule ip kube-proxy nat-output jump services",
                     "add rule ip kube-proxy nat-prerouting jump services",
                     "add rule ip kube-proxy nat-postrouting jump masquerading"]
        for (i, s) in services.enumerated() {
            let name = "default/s\(i)/tcp/http"
            let chain = "service-\(String(format: "%08X", i))-\(name)"
            chains.append("add chain ip kube-proxy \(chain)")
            var picks: [String] = []
            for (b, backend) in s.backends.enumerated() {
                let parts = backend.split(separator: ":")
                let endpoint = "endpoint-\(String(format: "%08X", i * 16 + b))-\(name)__\(parts[0])/\(parts[1])"
                chains.append("add chain ip kube-proxy \(endpoint)")
                rules.append("add rule ip kube-proxy \(endpoint) ip saddr \(parts[0]) jump mark-for-masquerade")
                rules.append("add rule ip kube-proxy \(endpoint) meta l4proto tcp dnat to \(backend)")
                picks.append("\(b) : goto \(endpoint)")
            }
            rules.append("add rule ip kube-proxy \(chain) ip daddr \(s.vip) tcp dport \(s.port) ip saddr != \(clusterCIDR) jump mark-for-masquerade")
            rules.append("add rule ip kube-proxy \(chain) numgen random mod \(s.backends.count) vmap { \(picks.joined(separator: " , ")) }")
            rules.append("add element ip kube-proxy service-ips { \(s.vip) . tcp . \(s.port) : goto \(chain) }")
        }
        return (chains + rules).joined(separator: "\n") + "\n"
    }

    /// Loads `ruleset` with `nft -f` inside `namespace` (after flushing what is there); seconds taken.
    @discardableResult
    static func load(_ ruleset: String, into namespace: NetworkNamespace, scratch: String) throws -> Double {
        let file = scratch + "/kube-proxy.nft"
        try ("flush ruleset\n" + ruleset).write(toFile: file, atomically: true, encoding: .utf8)
        let t = ContinuousClock.now
        let (code, out) = PodPaths.shell(["nsenter", "--net=\(namespace.path)", "nft", "-f", file])
        let took = Bench.seconds(ContinuousClock.now - t)
        guard code == 0 else {
            throw BenchError("nft -f failed (is nftables installed? scripts/install-deps.sh): \(out.prefix(300))")
        }
        return took
    }

    /// `nft -f` for `count` services x `backends` backends (the LB programming benchmark's own
    /// services), in a namespace of its own; seconds.
    static func programmingTime(count: Int, backends: Int) throws -> Double {
        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let ns = try NetworkNamespace.create(named: "cbn-p-\(tag)")
        let scratch = NSTemporaryDirectory() + "cilium-bench-nft-\(tag)"
        defer {
            try? ns.delete()
            try? FileManager.default.removeItem(atPath: scratch)
        }
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        let services = LoadBalancerBenchmark.frontends(count: count, backends: backends).map {
            Service(vip: $0.vip, port: 80, backends: $0.backends.map { $0 + ":8080" })
        }
        return try load(ruleset(services), into: ns, scratch: scratch)
    }
}
#endif
