import Foundation
import PackagePlugin

/// Compiles every `bpf/*.c` with the toolchain's clang (`-target bpf`) and
/// embeds the objects into the target as generated Swift, so the binaries carry
/// their datapath and nothing has to be installed beside them. One command, so
/// the intermediate objects stay private (not treated as resources).
@main
struct BPFCompiler: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) async throws -> [Command] {
        let bpfDir = context.package.directoryURL.appending(path: "bpf")
        let fm = FileManager.default
        var inputs: [URL] = []
        if let e = fm.enumerator(atPath: bpfDir.path()) {
            for case let rel as String in e where rel.hasSuffix(".h") || rel.hasSuffix(".c") {
                inputs.append(bpfDir.appending(path: rel))
            }
        }
        let out = context.pluginWorkDirectoryURL.appending(path: "EmbeddedBPFObjects.swift")
        return [.buildCommand(
            displayName: "Compiling and embedding BPF objects from bpf/",
            executable: try context.tool(named: "bpf-embed").url,
            arguments: ["--clang", try context.tool(named: "clang").url.path(),
                        "--bpf-dir", bpfDir.path(),
                        "--work-dir", context.pluginWorkDirectoryURL.path(),
                        "--output", out.path()],
            inputFiles: inputs.sorted { $0.path() < $1.path() },
            outputFiles: [out])]
    }
}
