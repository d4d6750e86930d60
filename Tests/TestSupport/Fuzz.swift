// Only test builds have the Testing module; a release build of the package compiles this file to nothing.
#if canImport(Testing)
import Foundation
import Testing

/// A mutation fuzzer for the project's readers (issue 16), run as tests: each target gets seed
/// inputs from the repository and `CILIUM_FUZZ_INPUTS` mutations of them (3,000 in CI; set it to
/// 100000 for a long run). Every input must return or throw, within `slowest` and without the
/// process growing past `memoryGrowth`; a trap ends the test run (CI red). An input that breaks a
/// rule is recorded with its text, to become a regression test. Reproducible: the seed is printed,
/// and `CILIUM_FUZZ_SEED` replays it.
public struct Fuzzer {
    public static var inputs: Int { Int(ProcessInfo.processInfo.environment["CILIUM_FUZZ_INPUTS"] ?? "") ?? 3000 }
    public static let slowest: Duration = .seconds(1)
    public static let memoryGrowth = 200.0 // MB

    /// Tokens that mean something to YAML, JSON, the config syntax or the label rules.
    static let tokens: [String] = ["&a ", "*a", "<<: *a", "{", "}", "[", "]", "- ", ": ", ",", "---\n", "...\n", "\t", "\n", "\r\n",
                                   "\u{0}", "\"", "'", "#", "!!binary ", "!!str ", "|\n", ">-\n", "? ", "%YAML 1.2\n", "1e999", "-0",
                                   "0x10", "18446744073709551616", "NaN", ".inf", "null", "~", "true", "=", "{a,b}", "k8s:", "/",
                                   "\u{FEFF}", "é", "\u{202E}", String(repeating: "a", count: 300), String(repeating: "[", count: 200)]

    public struct Report: CustomStringConvertible {
        public var target: String
        public var inputs: Int
        public var slowest: Duration
        public var rssGrowth: Double
        public var seed: UInt64
        public var description: String {
            "fuzz \(target): \(inputs) inputs, slowest \(slowest), RSS growth \(String(format: "%.1f", rssGrowth)) MB, seed \(seed)"
        }
    }

    /// Runs `body` on every seed and `inputs` mutations of them.
    @discardableResult
    public static func run(_ target: String, seeds: [String], inputs: Int = Fuzzer.inputs,
                           sourceLocation: SourceLocation = #_sourceLocation, _ body: (String) -> Void) -> Report {
        let seed = UInt64(ProcessInfo.processInfo.environment["CILIUM_FUZZ_SEED"] ?? "") ?? UInt64.random(in: 0...UInt64.max)
        var rng = SplitMix(seed)
        // A seed file that moved would silently weaken the run.
        if let i = seeds.firstIndex(where: \.isEmpty) { Issue.record("fuzz \(target): seed \(i) is empty", sourceLocation: sourceLocation) }
        let corpus = seeds.map { Array($0.utf8) }
        let rss0 = rssMB()
        var slowest: Duration = .zero, growth = 0.0
        for i in 0..<(corpus.count + inputs) {
            let bytes = i < corpus.count ? corpus[i] : mutate(corpus[Int(rng.next() % UInt64(corpus.count))], corpus: corpus, &rng)
            let text = String(decoding: bytes, as: UTF8.self)
            let start = ContinuousClock.now
            body(text)
            let took = ContinuousClock.now - start
            slowest = max(slowest, took)
            if took > Self.slowest {
                Issue.record("fuzz \(target): \(took) for \(text.prefix(2000).debugDescription) (seed \(seed), input \(i))",
                             sourceLocation: sourceLocation)
                break
            }
            if i % 1000 == 999 {
                growth = max(growth, rssMB() - rss0)
                if growth > Self.memoryGrowth {
                    Issue.record("fuzz \(target): RSS grew \(growth) MB by input \(i) (seed \(seed))", sourceLocation: sourceLocation)
                    break
                }
            }
        }
        let report = Report(target: target, inputs: corpus.count + inputs, slowest: slowest, rssGrowth: growth, seed: seed)
        print(report)
        return report
    }

    static func mutate(_ input: [UInt8], corpus: [[UInt8]], _ rng: inout SplitMix) -> [UInt8] {
        var b = input
        for _ in 0..<(1 + Int(rng.next() % 4)) {
            let at = b.isEmpty ? 0 : Int(rng.next() % UInt64(b.count + 1))
            switch rng.next() % 7 {
            case 0 where !b.isEmpty: b[min(at, b.count - 1)] ^= UInt8(truncatingIfNeeded: 1 << (rng.next() % 8))
            case 1: b.insert(UInt8(truncatingIfNeeded: rng.next()), at: at)
            case 2 where !b.isEmpty:
                let end = min(b.count, at + 1 + Int(rng.next() % 16))
                b.removeSubrange(min(at, b.count - 1)..<end)
            case 3 where !b.isEmpty:
                let end = min(b.count, at + 1 + Int(rng.next() % 64))
                let piece = Array(b[min(at, b.count - 1)..<end])
                b.insert(contentsOf: piece, at: Int(rng.next() % UInt64(b.count + 1)))
            case 4:
                let other = corpus[Int(rng.next() % UInt64(corpus.count))]
                let from = other.isEmpty ? 0 : Int(rng.next() % UInt64(other.count))
                b.insert(contentsOf: other[from..<min(other.count, from + Int(rng.next() % 128))], at: at)
            default:
                b.insert(contentsOf: Array(tokens[Int(rng.next() % UInt64(tokens.count))].utf8), at: at)
            }
        }
        return b
    }

    static func rssMB() -> Double {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Double(line.split(separator: " ").dropFirst().first ?? "0").map { $0 / 1024 } ?? 0
    }

    typealias SplitMix = SeededGenerator

    /// A file of the repository (seeds live with the project).
    public static func repositoryFile(_ path: String) -> String {
        (try? String(contentsOfFile: repositoryRoot() + "/" + path, encoding: .utf8)) ?? ""
    }
}

/// SplitMix64: a small seeded generator, so that failures reproduce.
public struct SeededGenerator: RandomNumberGenerator {
    public var state: UInt64
    public init(_ seed: UInt64) { state = seed }
    public init(state: UInt64) { self.state = state }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
#endif
