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
                                   "\u{FEFF}", "é", "\u{202E}", "HTTP/1.1", "HTTP/1.0", "Content-Length: ", "Transfer-Encoding: chunked\r\n",
                                   "Expect: 100-continue\r\n", "Connection: close\r\n", "0\r\n\r\n", "\r\n\r\n", " ", "%00", "?", String(repeating: "a", count: 300), String(repeating: "[", count: 200)]

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
        var run = Session(target, seeds: seeds, inputs: inputs, sourceLocation: sourceLocation)
        while let text = run.next() {
            let start = ContinuousClock.now
            body(text)
            guard run.record(ContinuousClock.now - start) else { break }
        }
        return run.report()
    }

    /// The same for a body that awaits (a server in the same process needs the cooperative pool).
    @discardableResult
    public static func run(_ target: String, seeds: [String], inputs: Int = Fuzzer.inputs,
                           sourceLocation: SourceLocation = #_sourceLocation, _ body: (String) async -> Void) async -> Report {
        var run = Session(target, seeds: seeds, inputs: inputs, sourceLocation: sourceLocation)
        while let text = run.next() {
            let start = ContinuousClock.now
            await body(text)
            guard run.record(ContinuousClock.now - start) else { break }
        }
        return run.report()
    }

    /// One run's inputs and rules.
    struct Session {
        let target: String
        let sourceLocation: SourceLocation
        let seed: UInt64
        var rng: SplitMix
        let corpus: [[UInt8]]
        let total: Int
        let rss0: Double
        var index = -1
        var text = ""
        var slowest: Duration = .zero
        var growth = 0.0

        init(_ target: String, seeds: [String], inputs: Int, sourceLocation: SourceLocation) {
            self.target = target
            self.sourceLocation = sourceLocation
            seed = UInt64(ProcessInfo.processInfo.environment["CILIUM_FUZZ_SEED"] ?? "") ?? UInt64.random(in: 0...UInt64.max)
            rng = SplitMix(seed)
            // A seed file that moved would silently weaken the run.
            if let i = seeds.firstIndex(where: \.isEmpty) { Issue.record("fuzz \(target): seed \(i) is empty", sourceLocation: sourceLocation) }
            corpus = seeds.map { Array($0.utf8) }
            total = corpus.count + inputs
            rss0 = rssMB()
        }

        /// The next input: the seeds first, then mutations of them.
        mutating func next() -> String? {
            index += 1
            guard index < total else { return nil }
            let bytes = index < corpus.count ? corpus[index] : mutate(corpus[Int(rng.next() % UInt64(corpus.count))], corpus: corpus, &rng)
            text = String(decoding: bytes, as: UTF8.self)
            return text
        }

        /// Checks the rules after one input; false ends the run.
        mutating func record(_ took: Duration) -> Bool {
            slowest = max(slowest, took)
            if took > Fuzzer.slowest {
                Issue.record("fuzz \(target): \(took) for \(text.prefix(2000).debugDescription) (seed \(seed), input \(index))",
                             sourceLocation: sourceLocation)
                return false
            }
            if index % 1000 == 999 {
                growth = max(growth, rssMB() - rss0)
                if growth > Fuzzer.memoryGrowth {
                    Issue.record("fuzz \(target): RSS grew \(growth) MB by input \(index) (seed \(seed))", sourceLocation: sourceLocation)
                    return false
                }
            }
            return true
        }

        func report() -> Report {
            let report = Report(target: target, inputs: min(index + 1, total), slowest: slowest, rssGrowth: growth, seed: seed)
            print(report)
            return report
        }
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
