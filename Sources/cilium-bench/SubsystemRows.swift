import Foundation

/// The rows of the optional subsystems' benchmarks. A subsystem left out of
/// the package (scripts/check-modularity.sh) has no rows: nothing to measure.
enum SubsystemRows {
    static func policy() async throws -> [(String, String, String)] {
        #if canImport(Policy)
        return try await PolicyBenchmark.run().map { ($0.measure, $0.result, $0.target) }
        #else
        return []
        #endif
    }

    /// Programming against kube-proxy's nftables, the maps alone, and connections through a sandbox.
    static func loadBalancer(bin: String) async throws -> [(String, String, String)] {
        #if canImport(LoadBalancer)
        return try await programming() + LoadBalancerBenchmark.run().map { ($0.measure, $0.result, $0.target) }
            + ServiceConnections.run(bin: bin)
        #else
        return []
        #endif
    }

    static func hubble(events: Int = 1_000_000) -> [(String, String, String)] {
        #if canImport(Hubble)
        return HubbleBenchmark.run(events: events).map { ($0.measure, $0.result, $0.target) }
        #else
        return []
        #endif
    }

    #if canImport(LoadBalancer)
    /// Services x 10 backends into our maps (resolver and reconcilers, as the agent does) against
    /// `nft -f` of kube-proxy's nftables ruleset for the same services.
    static func programming() async throws -> [(String, String, String)] {
        let count = BenchMode.pick(10_000, quick: 1000)
        let ours = try await LoadBalancerBenchmark.programServices(count: count, backends: 10)
        let nft = try KubeProxyNFTables.programmingTime(count: count, backends: 10)
        return [("LB: program \(count) services x 10 backends into the maps",
                 String(format: "%.2f s (resolve %.2f s) vs nft -f %.2f s (%.2fx)", ours.total, ours.resolve, nft, nft / ours.total),
                 "< 1 s, < nft -f")]
    }
    #endif
}
