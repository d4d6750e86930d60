import Foundation
import PackagePlugin

/// Compiles every `bpf/*.c` with the toolchain's clang (`-target bpf`) and
/// embeds the objects into the target as generated Swift, so the binaries carry
/// their datapath and nothing has to be installed beside them.
@main
struct BPFCompiler: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) async throws -> [Command] {
        let bpfDir = context.package.directoryURL.appending(path: "bpf")
        let fm = FileManager.default
        let sources = try fm.contentsOfDirectory(atPath: bpfDir.path())
            .filter { $0.hasSuffix(".c") }.sorted()
        var headers: [URL] = []
        if let e = fm.enumerator(atPath: bpfDir.path()) {
            for case let rel as String in e where rel.hasSuffix(".h") {
                headers.append(bpfDir.appending(path: rel))
            }
        }
        let clang = try context.tool(named: "clang").url
        let embed = try context.tool(named: "bpf-embed").url
        let work = context.pluginWorkDirectoryURL
        var commands: [Command] = []
        var objects: [URL] = []
        for src in sources {
            let name = String(src.dropLast(2))
            let obj = work.appending(path: "\(name).bpf.o")
            objects.append(obj)
            commands.append(.buildCommand(
                displayName: "Compiling BPF \(src)",
                executable: clang,
                arguments: ["-O2", "-g", "-target", "bpf", "-Wall", "-Werror",
                            "-I/usr/include/x86_64-linux-gnu", "-I/usr/include/aarch64-linux-gnu",
                            "-c", bpfDir.appending(path: src).path(), "-o", obj.path()],
                inputFiles: [bpfDir.appending(path: src)] + headers,
                outputFiles: [obj]))
        }
        let out = work.appending(path: "EmbeddedBPFObjects.swift")
        commands.append(.buildCommand(
            displayName: "Embedding BPF objects",
            executable: embed,
            arguments: [out.path()] + objects.map { $0.path() },
            inputFiles: objects,
            outputFiles: [out]))
        return commands
    }
}
