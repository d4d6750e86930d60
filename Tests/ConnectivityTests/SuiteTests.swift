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
}
