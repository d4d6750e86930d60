// swift-tools-version: 6.1
import PackageDescription

// Layout and dependency rule: see DESIGN.md.
// executables -> Agent -> Subsystems/* -> (Config, API) -> Datapath -> Reconciler
// Networking is the base every other subsystem stands on; the rest are optional. Removing one
// name from `optionalSubsystems` (and its directories) leaves everything else building:
// `scripts/check-modularity.sh NAME` does exactly that in a copy of the tree.
let optionalSubsystems = ["Policy", "LoadBalancer", "Encryption", "ClusterMesh", "HostFirewall", "Hubble"]
let subsystems = ["Networking"] + optionalSubsystems

/// The named subsystems that are in the package.
func present(_ names: String...) -> [Target.Dependency] {
    names.filter(subsystems.contains).map { .target(name: $0) }
}

/// Test targets of the named subsystem, when it is in the package.
func tests(of name: String, _ targets: Target...) -> [Target] { subsystems.contains(name) ? targets : [] }

let swift6: [SwiftSetting] = [.swiftLanguageMode(.v6)]

let package = Package(
    name: "cilium-swift",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "cilium-agent", targets: ["cilium-agent"]),
        .executable(name: "cilium", targets: ["cilium"]),
        .executable(name: "cilium-sandbox", targets: ["cilium-sandbox"]),
        .executable(name: "cilium-cni", targets: ["cilium-cni"]),
        .executable(name: "hubble", targets: ["hubble"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
    ],
    targets: [
        // C modules
        .systemLibrary(name: "CBPF", path: "Sources/CBPF", pkgConfig: "libbpf",
                       providers: [.apt(["libbpf-dev", "libelf-dev"])]),
        .systemLibrary(name: "CSystemd", path: "Sources/CSystemd", pkgConfig: "libsystemd",
                       providers: [.apt(["libsystemd-dev"])]),
        // etcd's HTTP(S) client (KVStore): one multi handle, TLS through OpenSSL.
        .systemLibrary(name: "CCurl", path: "Sources/CCurl", pkgConfig: "libcurl",
                       providers: [.apt(["libcurl4-openssl-dev"])]),

        // BPF C -> embedded objects
        .executableTarget(name: "bpf-embed", path: "Sources/bpf-embed", swiftSettings: swift6),
        .plugin(name: "BPFCompiler", capability: .buildTool(), dependencies: ["bpf-embed"]),

        // Core
        .target(name: "Reconciler", swiftSettings: swift6),
        // errno text and "did you mean" suggestions, one of each for the project.
        .target(name: "Diagnostics", swiftSettings: swift6),
        // The one reading of IPv4 text (addresses, prefixes) for the whole project.
        .target(name: "Addressing", swiftSettings: swift6),
        // Netlink, namespaces, sysctls: the kernel's networking without BPF (cilium-cni needs no libbpf).
        .target(name: "LinuxNet", dependencies: ["Addressing", "Diagnostics"], swiftSettings: swift6),
        .target(name: "Datapath", dependencies: ["CBPF", "Reconciler", "Addressing", "LinuxNet", "Diagnostics"], swiftSettings: swift6,
                plugins: ["BPFCompiler"]),
        .target(name: "Config", dependencies: ["Yams", "Addressing", "Diagnostics", "ManifestYAML"], swiftSettings: swift6),
        .target(name: "KVStore", dependencies: ["Diagnostics", "CCurl", .product(name: "Yams", package: "Yams")], swiftSettings: swift6),
        // The Kubernetes-manifest readers' shared YAML diagnostics (Policy, LoadBalancer).
        .target(name: "ManifestYAML", dependencies: ["Yams", "Diagnostics"], swiftSettings: swift6),
        // The Kubernetes manifest readers (policies; Services and EndpointSlices) and their models:
        // what `cilium policy validate` and the subsystems share, without the datapath.
        .target(name: "Manifests", dependencies: ["ManifestYAML", "Yams", "Addressing", "Diagnostics"], swiftSettings: swift6),
        // Wire types of the agent's API (Codable; no datapath, so the CLIs link no libbpf).
        .target(name: "API", dependencies: ["Reconciler"], swiftSettings: swift6),
        // HTTP/1.1 over the agent's unix socket (and its TCP metrics ports): server and client.
        .target(name: "HTTPTransport", dependencies: ["Diagnostics"], swiftSettings: swift6),
        // The agent's HTTP servers (API socket, metrics ports, service map page) on swift-nio, with
        // limits; only the agent links it, the CLIs keep the small client above.
        .target(name: "HTTPServing", dependencies: ["HTTPTransport", "Diagnostics",
                                                   .product(name: "NIOCore", package: "swift-nio"),
                                                   .product(name: "NIOPosix", package: "swift-nio"),
                                                   .product(name: "NIOHTTP1", package: "swift-nio")],
                swiftSettings: swift6),
        // Thousands of idle client connections: the servers' load test and benchmark.
        .target(name: "ConnectionFlood", swiftSettings: swift6),
        // What the agent's subsystems share: the subsystem contract, SharedState, ipcache entries, state files.
        .target(name: "AgentModel", dependencies: ["API", "HTTPTransport", "HTTPServing", "Config", "Datapath", "LinuxNet", "Reconciler", "CBPF", "Diagnostics"],
                swiftSettings: swift6),
        // `hubble observe`'s filters and printer (also the agent's server-side filter).
        .target(name: "FlowDisplay", dependencies: ["API", "LinuxNet"], swiftSettings: swift6),
    ]
    + subsystems.map { name in
        .target(name: name, dependencies: ["Reconciler", "Datapath", "LinuxNet", "Config", "API", "AgentModel", "HTTPTransport", "HTTPServing", "KVStore", "Spawning"]
                    + (["Policy", "LoadBalancer"].contains(name) ? ["Yams", "ManifestYAML", "Manifests"] : [])
                    + (name == "Hubble" ? ["FlowDisplay"] : []),
                path: "Sources/Subsystems/\(name)", swiftSettings: swift6)
    }
    + [
        .target(name: "Agent",
                dependencies: ["Reconciler", "Datapath", "LinuxNet", "Config", "API", "AgentModel", "HTTPTransport", "HTTPServing", "Diagnostics", "CSystemd"] + subsystems.map { .target(name: $0) },
                swiftSettings: swift6),
        .executableTarget(name: "cilium-agent", dependencies: [
            "Agent", .product(name: "ArgumentParser", package: "swift-argument-parser")], swiftSettings: swift6),
        // `cilium connectivity test`: upstream's suite against a sandbox (driven through cilium-sandbox and the agents' APIs).
        // Starting child processes the way a shell does (signal mask, output to a file or a pipe).
        .target(name: "Spawning", dependencies: ["Diagnostics"], swiftSettings: swift6),
        .target(name: "Connectivity", dependencies: ["API", "HTTPTransport", "Spawning"], swiftSettings: swift6),
        .executableTarget(name: "cilium", dependencies: [
            "API", "HTTPTransport", "Config", "Manifests", "Diagnostics", "Connectivity", .product(name: "ArgumentParser", package: "swift-argument-parser")], swiftSettings: swift6),
        .executableTarget(name: "cilium-sandbox", dependencies: [
            "Agent", "Spawning", "Datapath", "LinuxNet", "API", "HTTPTransport", "Config", "Diagnostics", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: swift6),
        // The network configuration reader, a library so that tests can fuzz it in-process.
        .target(name: "CNIConfig", dependencies: ["Diagnostics", "Addressing"], swiftSettings: swift6),
        .executableTarget(name: "cilium-cni", dependencies: ["API", "HTTPTransport", "LinuxNet", "Diagnostics", "CNIConfig"], swiftSettings: swift6),
        .executableTarget(name: "hubble", dependencies: ["API", "HTTPTransport", "FlowDisplay"], swiftSettings: swift6),
        .executableTarget(name: "cilium-bench", dependencies: ["Agent", "Datapath", "KVStore", "LinuxNet", "Reconciler", "CBPF", "API", "AgentModel", "HTTPTransport", "FlowDisplay", "Manifests", "ConnectionFlood", "Spawning"]
                            + present("Policy", "LoadBalancer", "Hubble"),
                          swiftSettings: swift6),

        .target(name: "TestSupport", dependencies: ["Datapath", "LinuxNet", "ManifestYAML", "Config"], path: "Tests/TestSupport", swiftSettings: swift6),
        .testTarget(name: "ReconcilerTests", dependencies: ["Reconciler", "TestSupport"], swiftSettings: swift6),
        .testTarget(name: "DatapathTests", dependencies: ["Datapath", "CBPF", "Reconciler", "TestSupport"], swiftSettings: swift6),
        .testTarget(name: "CNITests", dependencies: ["API", "HTTPTransport", "HTTPServing", "Datapath", "LinuxNet", "TestSupport", "CNIConfig"], swiftSettings: swift6),
        .testTarget(name: "KVStoreTests", dependencies: ["KVStore", "Spawning", "TestSupport"], swiftSettings: swift6),
        .testTarget(name: "AddressingTests", dependencies: ["Addressing", "Config", "Datapath", "Manifests", "Diagnostics", "TestSupport"], swiftSettings: swift6),
        .testTarget(name: "ConfigTests", dependencies: ["Config", "TestSupport"], swiftSettings: swift6),
        .testTarget(name: "ConnectivityTests", dependencies: ["Connectivity", "Manifests", "API"], swiftSettings: swift6),
        .testTarget(name: "AgentTests", dependencies: ["Agent", "API", "AgentModel", "HTTPTransport", "HTTPServing", "ConnectionFlood", "FlowDisplay", "Config", "Datapath", "LinuxNet", "CBPF", "Networking", "Spawning", "TestSupport"], exclude: ["systemd"], swiftSettings: swift6),
    ]
    + tests(of: "LoadBalancer", .testTarget(name: "LoadBalancerTests", dependencies: ["LoadBalancer", "API", "AgentModel", "Datapath", "LinuxNet", "CBPF", "TestSupport"], swiftSettings: swift6))
    + tests(of: "Policy", .testTarget(name: "PolicyTests", dependencies: ["Policy", "API", "AgentModel", "Datapath", "LinuxNet", "CBPF", "TestSupport"], swiftSettings: swift6))
    + tests(of: "ClusterMesh", .testTarget(name: "ClusterMeshTests", dependencies: ["ClusterMesh", "KVStore", "API", "AgentModel", "LinuxNet", "TestSupport"], swiftSettings: swift6))
    + tests(of: "Encryption", .testTarget(name: "EncryptionTests", dependencies: ["Encryption", "LinuxNet", "Spawning", "TestSupport"], swiftSettings: swift6))
    + tests(of: "Hubble", .testTarget(name: "HubbleTests", dependencies: ["Hubble", "API", "AgentModel", "FlowDisplay", "CBPF"], swiftSettings: swift6))
)
