import API
@testable import Connectivity
import Foundation
import FoundationXML
import Manifests
import Testing

/// The suite's parts that need no sandbox: its policies, the --test filter, the report and the JUnit file.
struct SuiteTests {
    static let deployment: Deployment = {
        let node1 = SandboxReport.Node(name: "node1", ready: true, socket: "/nonexistent", addresses: ["172.30.0.11"], logFile: nil)
        let client = Peer(display: "cilium-test-1/client", target: "client", address: "10.0.0.5", node: "node1", kind: .pod,
                          labels: ["name=client", "kind=client"])
        return Deployment(sandbox: Sandbox(name: "unit", binDirectory: "/nonexistent"), nodes: [node1], clients: [client], echoes: [],
                          services: [], hosts: [], outside: Peer(display: "outside", target: "outside", address: "172.30.0.100", node: nil, kind: .outside),
                          externalIP: "172.30.0.100", externalOtherIP: "172.30.0.101", externalCIDR: "172.30.0.96/29",
                          servicesServed: true, singleNode: true)
    }()

    /// Every policy of every test, as the command writes it out, is read by the agent's own parser: in the test
    /// namespace, with upstream's IPv6 CIDRs noted as matching nothing yet.
    @Test func everyPolicyOfTheSuiteIsReadAsTheAgentReadsIt() throws {
        var count = 0
        for test in Suite.tests {
            for make in test.policies {
                let text = make(Self.deployment)
                #expect(!text.contains("{{"), "\(test.name): a placeholder is left:\n\(text)")
                let file = try PolicyParser.read(text, file: test.name)
                #expect(!file.policies.isEmpty, "\(test.name)")
                for p in file.policies { #expect(p.namespace == "cilium-test-1", "\(test.name): \(p.qualifiedName)") }
                count += file.policies.count
            }
        }
        #expect(count >= 40)
        let cidr = try PolicyParser.read(Policies.render(Policies.clientEgressToCIDRExternal, Self.deployment), file: "x").policies[0]
        let egress = try #require(cidr.specs[0].egress?.first)
        #expect(egress.cidrs.map(\.cidr) == ["172.30.0.96/29"])
        #expect(egress.cidrs.first?.except == ["172.30.0.101/32"])
        #expect(cidr.notes.contains { $0.contains("2606:4700:4700::/96") })
        // A selector naming upstream's `cilium-test` namespace names the test's.
        let echo = try PolicyParser.read(Policies.render(Policies.clientEgressToEcho, Self.deployment), file: "x").policies[0]
        let peer = try #require(echo.specs[0].egress?.first?.endpoints?.first)
        #expect(peer.matchLabels["io.kubernetes.pod.namespace"] == "cilium-test-1")
    }

    /// cidrGroupSelector picks the file's groups by their labels; when it picks none, the rule matches no address
    /// (it is not an any-peer rule) and the policy says so.
    @Test func cidrGroupSelectorChoosesGroupsByLabel() throws {
        let byLabel = try PolicyParser.read(Policies.render(Policies.clientEgressToCIDRGroupDenyByLabel, Self.deployment), file: "x")
        let rule = try #require(byLabel.policies.first?.specs[0].egressDeny?.first)
        #expect(rule.cidrs.map(\.cidr) == ["172.30.0.101/32"])
        #expect(rule.ipv6Peers == ["2606:4700:4700::1001/128"])
        let none = Policies.render(Policies.clientEgressToCIDRGroupDenyByLabel, Self.deployment)
            .replacingOccurrences(of: "kind: external-other\n        spec", with: "kind: elsewhere\n        spec")
            .replacingOccurrences(of: "    kind: external-other\nspec", with: "    kind: elsewhere\nspec")
        let empty = try #require(try PolicyParser.read(none, file: "x").policies.first)
        let emptyRule = try #require(empty.specs[0].egressDeny?.first)
        #expect(emptyRule.cidrs.isEmpty)
        #expect(!emptyRule.selectsAnyPeer)
        #expect(empty.notes.contains { $0.contains("matches no address") }, "\(empty.notes)")
    }

    @Test func portRangeTwinsCarryARange() throws {
        let text = Policies.render(Policies.portRange(Policies.clientEgressToEchoDeny, from: "8080", start: "4096", end: 8191), Self.deployment)
        let p = try PolicyParser.read(text, file: "x").policies[0]
        #expect(p.name == "client-egress-to-echo-deny-port-range")
        let port = try #require(p.specs[0].egressDeny?.first?.ports.first)
        #expect(port.port == 4096 && port.endPort == 8191)
    }

    /// --test as upstream: unanchored regular expressions, `!` excludes, TEST/SCENARIO narrows, commas split.
    @Test func testFilter() throws {
        let all = try TestFilter([])
        #expect(all.includes(test: "no-policies"))
        let some = try TestFilter(["no-policies"])
        #expect(some.includes(test: "no-policies") && some.includes(test: "no-policies-extra"))
        #expect(!some.includes(test: "client-ingress"))
        let anchored = try TestFilter(["^no-policies$,client-ingress"])
        #expect(anchored.includes(test: "no-policies") && !anchored.includes(test: "no-policies-extra"))
        #expect(anchored.includes(test: "client-ingress-icmp"))
        let skip = try TestFilter(["!deny"])
        #expect(skip.includes(test: "no-policies") && !skip.includes(test: "all-ingress-deny"))
        let scenario = try TestFilter(["no-policies/pod-to-cidr"])
        #expect(scenario.includes(test: "no-policies", scenario: "pod-to-cidr"))
        #expect(!scenario.includes(test: "no-policies", scenario: "pod-to-pod"))
        let notScenario = try TestFilter(["!/pod-to-world"])
        #expect(notScenario.includes(test: "no-policies"))
        #expect(!notScenario.includes(test: "no-policies", scenario: "pod-to-world"))
        #expect(throws: ConnectivityError.self) { try TestFilter(["("]) }
    }

    @Test func reportAndJUnit() throws {
        var failed = TestResult(name: "client-ingress", status: .failed)
        failed.actions = 6
        failed.failedActions = 1
        failed.failures = ["client-ingress/client-to-client:ping-ipv4-0: a -> b: expected no answer, got echo reply <&>"]
        var passed = TestResult(name: "no-policies", status: .passed)
        passed.actions = 40
        let skipped = TestResult(name: "from-cidr-host-netns", status: .skipped, skipReason: "unsafe")
        let summary = Report.summary([passed, failed, skipped])
        #expect(summary.contains("❌ 1/2 tests failed (1/46 actions), 1 tests skipped, 0 scenarios skipped:"))
        #expect(summary.contains("Test [client-ingress]:"))
        #expect(summary.contains("[cilium-test-1] 1 tests failed"))
        #expect(Report.summary([passed]).contains("✅ [cilium-test-1] All 1 tests (40 actions) successful, 0 tests skipped, 0 scenarios skipped."))
        let xml = Report.junit([passed, failed, skipped], arguments: ["connectivity", "test", "--test", "a&b"])
        #expect(xml.hasPrefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites tests=\"3\" disabled=\"1\" errors=\"0\" failures=\"1\""))
        #expect(xml.contains("<testcase name=\"client-ingress\" classname=\"connectivity test\" status=\"failed\""))
        #expect(xml.contains("got echo reply &lt;&amp;&gt;</failure>"))
        #expect(xml.contains("<skipped message=\"from-cidr-host-netns skipped: unsafe\">"))
        #expect(xml.contains("value=\"connectivity test --test a&amp;b\""))
        // Well-formed: Foundation's parser reads it.
        #expect(XMLParser(data: Data(xml.utf8)).parse())
    }

    /// Multi-cluster mode: cluster-entity-multi-cluster runs there only and expects the client's egress to the other
    /// cluster's echo dropped (the cluster entity is the local cluster); the world and outside-host tests and the
    /// remote NodePort are skipped there, with the reason; the cross-cluster tests run.
    @Test func multiClusterMode() throws {
        let tests = Dictionary(uniqueKeysWithValues: Suite.tests.map { ($0.name, $0) })
        let entity = try #require(tests["cluster-entity-multi-cluster"])
        #expect(entity.multiClusterOnly)
        #expect(entity.modeSkip(multiCluster: true) == nil)
        #expect(entity.modeSkip(multiCluster: false)?.contains("--multi-cluster") == true)
        let make = try #require(entity.policies.first)
        let text = make(Self.deployment)
        let policy = try PolicyParser.read(text, file: "x").policies[0]
        #expect(text.contains("toEntities: [cluster]"), "\(text)")
        #expect(policy.namespace == "cilium-test-1")
        #expect(entity.scenarios.map(\.name) == ["pod-to-pod"])

        let client = Self.deployment.clients[0]
        let echo = Peer(display: "cilium-test-1/echo-other-node", target: "echo-other-node", address: "10.1.0.7", node: "node2", kind: .pod,
                        labels: ["name=echo-other-node", "kind=echo"])
        let action = Action(scenario: "pod-to-pod", name: "curl-ipv4-0", source: client, destination: .pod(echo), probe: .http)
        let e = entity.expect(action)
        #expect(e.egress == .policyDenied && e.ingress == .success)
        // Decided on the client's node: its Hubble flows and drop counters are the ones checked.
        #expect(e.decisive(action).node == "node1")

        for name in ["no-policies", "allow-all-except-world", "client-egress", "client-egress-expression", "cluster-entity",
                     "no-unexpected-packet-drops", "check-log-errors"] {
            #expect(tests[name]?.modeSkip(multiCluster: true) == nil, "\(name)")
        }
        for name in ["to-entities-world", "to-cidr-external", "no-policies-from-outside", "north-south-loadbalancing", "client-egress-to-cidr-deny"] {
            #expect(tests[name]?.modeSkip(multiCluster: true)?.hasPrefix("skipped by condition: multi-cluster mode:") == true, "\(name)")
            #expect(tests[name]?.modeSkip(multiCluster: false) == nil, "\(name)")
        }
        let noPolicies = try #require(tests["no-policies"])
        #expect(noPolicies.scenarios.filter { $0.notInMultiCluster == nil }.map(\.name)
                == ["pod-to-pod", "client-to-client", "pod-to-service", "pod-to-hostport", "pod-to-host", "host-to-pod"])
        // client-egress selects the echo by labels and by cluster (any: both clusters' echoes).
        let makeEgress = try #require(tests["client-egress"]?.policies.first)
        let egress = makeEgress(Self.deployment)
        #expect(egress.contains("key: io.cilium.k8s.policy.cluster, operator: Exists"))

        let list = Suite.listing(multiCluster: true)
        #expect(list.contains("\ncluster-entity-multi-cluster: pod-to-pod\n"), "\(list)")
        #expect(list.contains("no-policies: pod-to-pod, client-to-client, pod-to-service, pod-to-hostport, pod-to-host, host-to-pod (skipped here: pod-to-world, pod-to-cidr)"), "\(list)")
        #expect(list.contains("Skipped in multi-cluster mode:\n  no-policies-from-outside (skipped by condition: multi-cluster mode:"), "\(list)")
        let single = Suite.listing(multiCluster: false)
        #expect(single.contains("Skipped in single-cluster mode:\n  cluster-entity-multi-cluster (skipped by condition: multi-cluster mode only"), "\(single)")
        #expect(single.contains("\nto-entities-world: pod-to-world\n"))
    }

    /// The temporary sandbox of multi-cluster mode, and echo-other-node's service: global, in both clusters.
    @Test func multiClusterSandboxAndGlobalService() throws {
        let up = Sandbox.upArguments(singleNode: false, multiCluster: true)
        #expect(up == ["up", "--clusters", "2", "--nodes", "1", "--set", "kubeProxyReplacement=true"])
        #expect(Sandbox.upArguments(singleNode: true, multiCluster: false) == ["up", "--nodes", "1", "--set", "kubeProxyReplacement=true"])
        #expect(Sandbox.meshHint("m").contains("cilium-sandbox clustermesh connect --name m"))

        let docs = try ServiceManifestParser.parse(Deployment.servicesManifest(["echo-same-node", "echo-other-node"], global: ["echo-other-node"]), file: "x")
        let byName = Dictionary(uniqueKeysWithValues: docs.services.map { ($0.name, $0) })
        #expect(byName["echo-other-node"]?.annotations["service.cilium.io/global"] == "true")
        #expect(byName["echo-other-node"]?.clusterIP == "10.96.128.11" && byName["echo-other-node"]?.namespace == "cilium-test-1")
        #expect(byName["echo-same-node"]?.annotations.isEmpty == true)
        let plain = try ServiceManifestParser.parse(Deployment.servicesManifest(["echo-other-node"]), file: "x")
        #expect(plain.services.first?.annotations.isEmpty == true)
    }
}
