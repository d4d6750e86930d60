import Foundation
import Manifests

/// Issue 16's inputs against the policy reader: how long the reader takes to refuse them, and
/// what it costs in memory (the process's peak RSS, reset before each, against its RSS then).
enum BadInputBenchmark {
    static func run() -> [(String, String, String)] {
        // Aliases nested inside the schema (the issue's shape): width^3 match expressions.
        func bomb(_ width: Int) -> String {
            let e = "&l1 [&e {key: a, operator: Exists}" + String(repeating: ", *e", count: width - 1) + "]"
            let s = "&l2 [&s {matchExpressions: \(e)}" + String(repeating: ", *s", count: width - 1) + "]"
            let r = "[&r {fromEndpoints: \(s)}" + String(repeating: ", *r", count: width - 1) + "]"
            return "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: bomb}\nspec:\n  endpointSelector: {}\n  ingress: \(r)\n"
        }
        let rule = "  - fromEndpoints: [{matchLabels: {app: x}}]\n"
        let big = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: big}\nspec:\n  endpointSelector: {}\n  ingress:\n"
            + String(repeating: rule, count: 5_000_000 / rule.utf8.count)
        let entity = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: e}\nspec:\n  endpointSelector: {}\n"
            + "  ingress: [{fromEntities: [\(String(repeating: "x", count: 1 << 20))]}]\n"
        var rows: [(String, String, String)] = []
        for (what, text) in [("bad input: alias bomb (\(bomb(60).utf8.count) bytes)", bomb(60)),
                             ("bad input: one 5 MB policy document", big),
                             ("bad input: a 1 MB unknown entity", entity)] {
            // "5" resets the peak RSS (proc(5), clear_refs): the peak below is this parse's.
            try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
            let before = peakRSS()
            let start = ContinuousClock.now
            var outcome = "accepted"
            do { _ = try PolicyParser.parse(text, file: "bench.yaml") } catch { outcome = "refused" }
            let took = Bench.seconds(ContinuousClock.now - start)
            rows.append((what, String(format: "%@ in %.1f ms, peak RSS +%.1f MB", outcome, took * 1000, peakRSS() - before), "< 1 s, < 100 MB"))
        }
        return rows
    }

    /// The process's peak RSS (VmHWM), MB.
    static func peakRSS() -> Double { Bench.rssMB("self", "VmHWM:") }
}
