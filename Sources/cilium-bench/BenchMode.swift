/// `cilium-bench --quick` (what CI runs after the tests): every figure through the same code
/// paths, with small sizes and short samples, so that the benchmarks cannot rot. Its numbers
/// are not figures; it fails when a figure is not produced.
enum BenchMode {
    static let quick = CommandLine.arguments.contains("--quick")

    /// `full` normally, `quick` in quick mode.
    static func pick<T>(_ full: T, quick small: T) -> T { quick ? small : full }
}
