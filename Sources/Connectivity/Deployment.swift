import API
import Foundation

/// The test's workloads in a sandbox, with upstream's names and labels, and what the scenarios need to know about them.
public struct Deployment: Sendable {
    public struct Service: Sendable {
        public var name: String
        public var clusterIP: String
        public var port: UInt16
        public var nodePort: UInt16
        public var backend: Peer
    }

    public var sandbox: Sandbox
    public var nodes: [SandboxReport.Node]
    public var clients: [Peer]
    public var echoes: [Peer]
    public var services: [Service]
    /// The nodes' own namespaces (upstream's host-netns pods).
    public var hosts: [Peer]
    public var outside: Peer?
    /// Upstream's --external-ip / --external-other-ip / --external-cidr, here the outside host's two addresses.
    public var externalIP: String
    public var externalOtherIP: String
    public var externalCIDR: String
    /// kubeProxyReplacement on every node: services, NodePorts and hostPorts are served.
    public var servicesServed: Bool
    public var singleNode: Bool
    /// Multi-cluster mode: the first node's cluster holds the clients and echo-same-node, another cluster
    /// echo-other-node behind a global service.
    public var multiCluster = false

    public func host(_ node: String?) -> Peer? { hosts.first { $0.target == node } }

    struct PodSpec {
        var name: String
        var labels: [String]
        var node: Int
        var echo: Bool
    }

    /// Upstream's deployments: client, client2 and echo-same-node on the first node; client3 and echo-other-node on the
    /// second. Each pod runs as the service account of its name (`io.cilium.k8s.policy.serviceaccount`, as upstream's do).
    static let podSpecs = [
        PodSpec(name: "client", labels: ["name=client", "kind=client"], node: 0, echo: false),
        PodSpec(name: "client2", labels: ["name=client2", "kind=client", "other=client"], node: 0, echo: false),
        PodSpec(name: "echo-same-node", labels: ["name=echo-same-node", "kind=echo", "other=echo"], node: 0, echo: true),
        PodSpec(name: "client3", labels: ["name=client3", "kind=client", "other=client-other-node"], node: 1, echo: false),
        PodSpec(name: "echo-other-node", labels: ["name=echo-other-node", "kind=echo", "first=echo"], node: 1, echo: true),
    ].map { spec -> PodSpec in
        var spec = spec
        spec.labels.append("io.cilium.k8s.policy.serviceaccount=\(spec.name)")
        return spec
    }
    static let clusterIPs = ["echo-same-node": "10.96.128.10", "echo-other-node": "10.96.128.11"]
    static let nodePorts: [String: UInt16] = ["echo-same-node": 31080, "echo-other-node": 31081]

    /// The echo services; `global`: these carry `service.cilium.io/global: "true"` (each cluster that has the service
    /// then serves every cluster's backends).
    static func servicesManifest(_ names: [String], global: Set<String> = []) -> String {
        names.map { name in
            """
            apiVersion: v1
            kind: Service
            metadata:
              name: \(name)
              namespace: \(Defaults.namespace)
              labels:
                kind: echo\(global.contains(name) ? "\n  annotations:\n    service.cilium.io/global: \"true\"" : "")
            spec:
              type: NodePort
              clusterIP: \(clusterIPs[name]!)
              selector:
                name: \(name)
              ports:
              - name: http
                port: \(Defaults.echoPort)
                targetPort: \(Defaults.echoPort)
                nodePort: \(nodePorts[name]!)
            """
        }.joined(separator: "\n---\n") + "\n"
    }

    /// Deploys what is missing (pods through cilium-cni, their servers, the services on every node) and waits until
    /// every client reaches every echo pod, as upstream waits for its deployments.
    public static func deploy(_ sandbox: Sandbox, singleNode requested: Bool, multiCluster: Bool = false, justConnected: Bool = false,
                              log: (String) -> Void) throws -> Deployment {
        var report = try sandbox.report()
        guard !report.nodes.isEmpty else { throw ConnectivityError("sandbox \(sandbox.name) has no nodes") }
        for n in report.nodes where !n.ready {
            throw ConnectivityError("sandbox \(sandbox.name): the agent of \(n.name) does not answer at \(n.socket); see cilium-sandbox status --name \(sandbox.name)")
        }
        // The nodes the pod specs' node 0 and node 1 stand for: in multi-cluster mode, the first node and the first
        // node of another cluster.
        var placement = report.nodes
        if multiCluster {
            try sandbox.waitMeshReady(report, timeout: .seconds(60), justConnected: justConnected, log: log)
            let local = report.nodes[0]
            guard let remote = report.nodes.first(where: { $0.cluster != local.cluster }) else {
                throw ConnectivityError("sandbox \(sandbox.name) has one cluster; --multi-cluster needs two connected clusters: \(Sandbox.meshHint(sandbox.name))")
            }
            placement = [local, remote]
        }
        let singleNode = !multiCluster && (requested || report.nodes.count < 2)
        if !multiCluster, !requested, report.nodes.count < 2 {
            log("ℹ️  Sandbox \(sandbox.name) has one node: running the single-node tests only")
        }
        let www = "/run/cilium-sandbox/\(sandbox.name)/\(Defaults.namespace)"
        try FileManager.default.createDirectory(atPath: www, withIntermediateDirectories: true)
        try Data("{\"service\":\"cilium connectivity test echo\"}\n".utf8).write(to: URL(fileURLWithPath: www + "/index.html"))

        // Multi-cluster mode deploys as upstream's: no client3 (upstream's other-node client of the first cluster).
        let specs = podSpecs.filter { (!singleNode || $0.node == 0) && !(multiCluster && $0.name == "client3") }
        for spec in specs {
            if let existing = report.pods.first(where: { $0.name == spec.name }) {
                guard existing.podNamespace == Defaults.namespace else {
                    throw ConnectivityError("sandbox \(sandbox.name) has a pod named \(spec.name) in namespace \(existing.podNamespace ?? "default"), not the test's (\(Defaults.namespace)): remove it (cilium-sandbox pod del --name \(sandbox.name) --pod \(spec.name)) or use another sandbox")
                }
                continue
            }
            let node = placement[spec.node].name
            log("✨ [\(sandbox.name)] Deploying \(Defaults.namespace)/\(spec.name) on \(node)...")
            var args = ["pod", "add", "--node", node, "--pod", spec.name, "--namespace", Defaults.namespace,
                        "--labels", spec.labels.joined(separator: ",")]
            // The echo container's port is named as upstream's (`http-8080`); policies may name it.
            if spec.echo { args += ["--port", "\(Defaults.hostPort):\(Defaults.echoPort)", "--named-port", "http-\(Defaults.echoPort)=\(Defaults.echoPort)"] }
            let r = try sandbox.run(args)
            guard r.code == 0 else { throw ConnectivityError("cannot deploy \(spec.name): \(r.output.trimmingCharacters(in: .whitespacesAndNewlines))") }
        }
        report = try sandbox.report()
        // The servers: echo pods answer HTTP on 8080, the outside host on 80 (a second start fails on the bound port: fine).
        var servers: [Launched] = []
        for spec in specs where spec.echo {
            servers.append(try sandbox.startDaemon(spec.name, ["busybox", "httpd", "-p", "\(Defaults.echoPort)", "-h", www]))
        }
        let outsideAddresses = report.outsideAddresses ?? []
        if !outsideAddresses.isEmpty {
            for port in [Defaults.worldPort, Defaults.worldOtherPort] {
                servers.append(try sandbox.startDaemon("outside", ["busybox", "httpd", "-p", "\(port)", "-h", www]))
            }
        }
        _ = servers.map { $0.wait() }

        func peer(_ name: String) throws -> Peer {
            guard let p = report.pods.first(where: { $0.name == name }) else { throw ConnectivityError("pod \(name) is missing after deployment") }
            let labels = podSpecs.first { $0.name == name }?.labels ?? []
            return Peer(display: "\(Defaults.namespace)/\(name)", target: name, address: p.address, node: p.node, kind: .pod, labels: labels)
        }
        let clients = try specs.filter { !$0.echo }.map { try peer($0.name) }
        let echoes = try specs.filter(\.echo).map { try peer($0.name) }
        let hosts = report.nodes.map { Peer(display: $0.name, target: $0.name, address: $0.addresses.first ?? "", node: $0.name, kind: .host) }

        // kubeProxyReplacement decides whether services exist at all.
        var served = true
        for n in report.nodes {
            let data = try? Sandbox.request(n, "GET", "/v1/config?key=kubeProxyReplacement")
            let entry = data.flatMap { try? JSONDecoder().decode(ConfigEntry.self, from: $0) }
            if entry?.value != "true" { served = false }
        }
        var services: [Service] = []
        if served {
            for n in report.nodes {
                // Multi-cluster mode, as upstream's: echo-same-node's service in its cluster; echo-other-node's in both
                // clusters (same name, namespace and ClusterIP), global, so that the first cluster serves it with the
                // other cluster's backend.
                var names = echoes.map(\.target)
                if multiCluster, n.cluster != placement[0].cluster { names = names.filter { $0 == "echo-other-node" } }
                let manifest = servicesManifest(names, global: multiCluster ? ["echo-other-node"] : [])
                _ = try Sandbox.request(n, "PUT", "/v1/service?source=connectivity-test", body: Data(manifest.utf8))
            }
            services = echoes.map {
                Service(name: $0.target, clusterIP: clusterIPs[$0.target]!, port: Defaults.echoPort, nodePort: nodePorts[$0.target]!, backend: $0)
            }
        } else {
            log("ℹ️  kubeProxyReplacement is off in sandbox \(sandbox.name): the service, NodePort and hostPort scenarios are skipped")
        }
        let outside = outsideAddresses.first.map { Peer(display: "outside", target: "outside", address: $0, node: nil, kind: .outside) }
        var d = Deployment(sandbox: sandbox, nodes: report.nodes, clients: clients, echoes: echoes, services: services, hosts: hosts,
                           outside: outside, externalIP: outsideAddresses.first ?? "", externalOtherIP: outsideAddresses.dropFirst().first ?? "",
                           externalCIDR: "172.30.0.96/29", servicesServed: served, singleNode: singleNode)
        d.multiCluster = multiCluster
        try d.waitReachable(log: log)
        return d
    }

    /// Every client reaches every echo pod (directly, and through its service where there is one).
    func waitReachable(log: (String) -> Void) throws {
        for client in clients {
            for echo in echoes {
                log("⌛ [\(sandbox.name)] Waiting for pod \(client.display) to reach \(echo.display)...")
                var targets = ["http://\(echo.address):\(Defaults.echoPort)/"]
                if let s = services.first(where: { $0.backend == echo }) { targets.append("http://\(s.clusterIP):\(s.port)/") }
                for url in targets {
                    let deadline = ContinuousClock.now + .seconds(30)
                    var last = CommandResult(code: -1, output: "")
                    while true {
                        last = try sandbox.exec(client.target, ["curl", "-sS", "-o", "/dev/null", "-m", "2", url]).wait()
                        if last.code == 0 { break }
                        guard ContinuousClock.now < deadline else {
                            throw ConnectivityError("\(client.display) cannot reach \(url) after 30 s (curl exit \(last.code): \(last.output.trimmingCharacters(in: .whitespacesAndNewlines)))")
                        }
                        usleep(250_000)
                    }
                }
            }
        }
    }
}
