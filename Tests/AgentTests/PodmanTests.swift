import Agent
import Spawning
import API
import Datapath
import LinuxNet
import Foundation
import Glibc
import Testing
import TestSupport

/// A podman container (runc, a busybox rootfs) on a CNI network served by cilium-cni in a sandbox node.
@Suite(.serialized) struct PodmanTests {
    struct Status: Decodable {
        struct Pod: Decodable { var name: String; var address: String; var namespace: String; var identity: UInt32? }
        struct Node: Decodable { var name: String; var namespace: String; var socket: String }
        var nodes: [Node]
        var pods: [Pod]
    }

    static var podmanInstalled: Bool {
        FileManager.default.isExecutableFile(atPath: "/usr/bin/podman") && FileManager.default.isExecutableFile(atPath: "/usr/sbin/runc")
    }

    /// A busybox rootfs: the host's busybox (and, when it is not static, its libraries) and one
    /// relative symlink per applet.
    static func makeRootfs(_ dir: String) throws {
        let fm = FileManager.default
        let busybox = ["/bin/busybox", "/usr/bin/busybox"].first { fm.isExecutableFile(atPath: $0) } ?? "/bin/busybox"
        for d in ["bin", "proc", "sys", "dev", "etc", "tmp"] { try fm.createDirectory(atPath: dir + "/" + d, withIntermediateDirectories: true) }
        try fm.copyItem(atPath: busybox, toPath: dir + "/bin/busybox")
        let (_, ldd) = try runCapturing(["ldd", busybox])
        for lib in ldd.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).map(String.init) where lib.hasPrefix("/") {
            let target = dir + lib
            try fm.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            if !fm.fileExists(atPath: target) { try fm.copyItem(atPath: URL(fileURLWithPath: lib).resolvingSymlinksInPath().path, toPath: target) }
        }
        let (code, list) = try runCapturing([dir + "/bin/busybox", "--list"])
        #expect(code == 0)
        for applet in list.split(separator: "\n") where applet != "busybox" {
            try? fm.createSymbolicLink(atPath: dir + "/bin/" + applet, withDestinationPath: "busybox")
        }
    }

    /// Runs podman (or anything) with an empty signal mask and default signal actions, output to a
    /// file, waiting for the command only. Threads of a Swift process block most signals and
    /// posix_spawn passes the mask on: conmon would not see SIGCHLD, and `podman run -d` would not
    /// return before the container exits. conmon also keeps the caller's stdout, so no pipe.
    static func spawn(_ argv: [String], output: String) throws -> (Int32, String) {
        let code = try ChildProcess.run(argv, output: output)
        return (code, (try? String(contentsOfFile: output, encoding: .utf8)) ?? "")
    }

    @Test(.enabled(if: podmanInstalled, "needs podman, runc and conmon (scripts/install-deps.sh installs them)"))
    func podmanContainerGetsAddressIdentityFromItsLabelsAndReleasesIt() throws {
        let name = "pm" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let network = "cilium-" + name
        let container = "ctr-" + name
        let sandbox = buildDirectory() + "/cilium-sandbox"
        let tmp = try TempDir("podman-test")
        let rootfs = tmp.path + "/rootfs", confDir = tmp.path + "/cni"
        try Self.makeRootfs(rootfs)

        defer { _ = try? runCapturing([sandbox, "down", "--name", name]) }
        let up = try runCapturing([sandbox, "up", "--name", name, "--nodes", "1"])
        try #require(up.0 == 0, "\(up.1)")
        let add = try runCapturing([sandbox, "pod", "add", "--name", name, "--node", "node1", "--pod", "srv", "--labels", "app=srv"])
        try #require(add.0 == 0, "\(add.1)")
        let st = try JSONDecoder().decode(Status.self, from: Data(try runCapturing([sandbox, "status", "--name", name, "-o", "json"]).1.utf8))
        let node = try #require(st.nodes.first), srv = try #require(st.pods.first { $0.name == "srv" })

        // Our network: a conflist for cilium-cni with the node's agent socket; podman finds it and the
        // plugin binary (in the build directory) through containers.conf.
        try FileManager.default.createDirectory(atPath: confDir, withIntermediateDirectories: true)
        let conflist: [String: Any] = ["cniVersion": "1.0.0", "name": network,
                                       "plugins": [["type": "cilium-cni", "agentSocket": node.socket]]]
        try JSONSerialization.data(withJSONObject: conflist).write(to: URL(fileURLWithPath: "\(confDir)/\(network).conflist"))
        let containersConf = """
            [network]
            network_backend = "cni"
            cni_plugin_dirs = ["\(buildDirectory())"]
            network_config_dir = "\(confDir)"
            """
        try containersConf.write(toFile: tmp.path + "/containers.conf", atomically: true, encoding: .utf8)
        // podman runs in the node's namespace, as on a node: the host-side veth lands there.
        let podman = ["nsenter", "--net=/run/netns/\(node.namespace)", "env", "CONTAINERS_CONF=\(tmp.path)/containers.conf",
                      "podman", "--network-backend", "cni", "--cgroup-manager", "cgroupfs", "--runtime", "runc"]
        func podmanRun(_ args: [String]) throws -> (Int32, String) {
            try Self.spawn(podman + args, output: tmp.path + "/podman.out")
        }
        let cilium = [sandbox, "cilium", "--name", name, "node1", "--"]
        func endpoints() throws -> [EndpointModel] {
            try JSONDecoder().decode([EndpointModel].self, from: Data(try runCapturing(cilium + ["endpoint", "list", "-o", "json"]).1.utf8))
        }
        func ipamLine() throws -> String {
            try runCapturing(cilium + ["status"]).1.split(separator: "\n").first { $0.contains("IPv4:") }.map(String.init) ?? "?"
        }
        let ipamBefore = try ipamLine()
        let podCIDR = try #require(try JSONDecoder().decode([NodeModel].self, from: Data(
            try runCapturing(cilium + ["node", "list", "-o", "json"]).1.utf8)).first { $0.local }?.podCIDR)

        defer { _ = try? podmanRun(["rm", "-f", "-t", "0", container]) }
        let run = try podmanRun(["run", "-d", "--name", container, "--label", "app=web",
                                             "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
                                             "--network", network, "--rootfs", rootfs, "/bin/sleep", "120"])
        try #require(run.0 == 0, "podman run: \(run.1)")
        let id = try #require(run.1.split(separator: "\n").last.map { $0.trimmingCharacters(in: .whitespaces) })

        // An address from the node's pod CIDR; labels from podman and their identity within seconds.
        var ep: EndpointModel?
        let deadline = Date().addingTimeInterval(15)
        repeat {
            ep = try endpoints().first { $0.containerID == id }
            if let e = ep, e.identity >= 256 { break }
            Thread.sleep(forTimeInterval: 0.2)
        } while Date() < deadline
        let endpoint = try #require(ep, "no endpoint for container \(id)")
        print("podman container \(id.prefix(12)): \(endpoint.address), labels \(endpoint.labels), identity \(endpoint.identity)")
        let prefix = try #require(Netlink.IPv4Prefix(podCIDR))
        let address = try #require(Netlink.IPv4Address(endpoint.address))
        let mask: UInt32 = prefix.length == 0 ? 0 : ~UInt32(0) << (32 - UInt32(prefix.length))
        #expect(address.value & mask == prefix.address.value & mask, "\(endpoint.address) is not in \(podCIDR)")
        #expect(endpoint.labels == ["container:app=web", "k8s:io.cilium.k8s.policy.cluster=\(name)", "k8s:io.kubernetes.pod.namespace=default"])
        #expect(endpoint.identity >= 256 && endpoint.identity != srv.identity)
        #expect(endpoint.podName == container)
        let inside = try podmanRun(["exec", container, "/bin/ip", "-4", "addr", "show", "eth0"])
        #expect(inside.1.contains(endpoint.address + "/32"), "\(inside.1)")

        // The container reaches the sandbox pod over TCP, and the pod reaches the container.
        let containerNS = NetworkNamespace(path: endpoint.netns)
        let srvNS = try NetworkNamespace(named: srv.namespace)
        #expect(try tcpEcho(from: containerNS, to: srvNS, address: srv.address) == "hello")
        #expect(try tcpEcho(from: srvNS, to: containerNS, address: endpoint.address) == "hello")
        // And from a process inside the container (busybox nc), to a pod-side echo listener.
        let port = 45000 + Int.random(in: 0...999)
        let listener = Process()
        listener.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
        listener.arguments = ["--net=/run/netns/\(srv.namespace)", "busybox", "nc", "-l", "-p", "\(port)", "-e", "/bin/cat"]
        listener.standardOutput = FileHandle.nullDevice
        listener.standardError = FileHandle.nullDevice
        try listener.run()
        defer { if listener.isRunning { listener.terminate() } }
        Thread.sleep(forTimeInterval: 0.3)
        let nc = try podmanRun(["exec", container, "/bin/sh", "-c", "echo ping-from-podman | timeout 5 nc \(srv.address) \(port)"])
        #expect(nc.1.contains("ping-from-podman"), "podman exec nc: \(nc.1)")

        // podman rm: CNI DEL releases the address and removes the endpoint.
        let rm = try podmanRun(["rm", "-f", "-t", "0", container])
        #expect(rm.0 == 0, "podman rm: \(rm.1)")
        #expect(try endpoints().allSatisfy { $0.containerID != id })
        #expect(try ipamLine() == ipamBefore)
        #expect(!containerNS.exists)
    }
}
