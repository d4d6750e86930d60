import API
import Foundation

/// Upstream's tests, in upstream's order, under upstream's names, for what one machine's sandbox can show.
public enum Suite {
    typealias Expect = @Sendable (Action) -> Expectation

    /// `fromOutside`: the test needs a node without Cilium (the sandbox's outside host).
    static func test(_ name: String, _ policies: [String] = [], _ scenarios: [Scenario], unsafe: Bool = false, fromOutside: Bool = false,
                     expect: @escaping Expect = { _ in .success }) -> ConnectivityTest {
        let makers: [@Sendable (Deployment) -> String] = policies.map { text in { (d: Deployment) -> String in Policies.render(text, d) } }
        var t = ConnectivityTest(name: name, policies: makers, scenarios: scenarios, expect: expect, unsafe: unsafe)
        if fromOutside { t.requirement = needsOutside }
        return t
    }

    static let allowAll = [Policies.allowAllEgress, Policies.allowAllIngress]
    static let podToPodByName = [Scenarios.podToPod(source: "name=client"), Scenarios.podToPod(source: "name=client2")]

    public static var tests: [ConnectivityTest] {
        let echoFromClient: Expect = { (a: Action) -> Expectation in
            a.destination.backend?.has("kind=echo") == true && a.source.has("name=client") ? .egress(.denylisted) : .success
        }
        var t: [ConnectivityTest] = []
        t.append(test("no-policies", [], [Scenarios.podToPod(), Scenarios.clientToClient, Scenarios.podToService, Scenarios.podToHostPort,
                                     Scenarios.podToWorld, Scenarios.podToHost, Scenarios.hostToPod, Scenarios.podToCIDR]))
        t.append(test("no-policies-from-outside", [], [Scenarios.fromCIDRToPod], unsafe: true, fromOutside: true))
        t.append(test("no-policies-extra", [], [Scenarios.podToRemoteNodePort, Scenarios.podToLocalNodePort]))
        t.append(test("allow-all-except-world", [Policies.allowAllExceptWorld],
                 [Scenarios.podToPod(), Scenarios.clientToClient, Scenarios.podToService, Scenarios.podToHost]))
        t.append(test("client-ingress", [Policies.clientIngressFromClient2], [Scenarios.clientToClient]) { (a: Action) -> Expectation in
                a.source.has("other=client") ? .success : .ingress(.policyDenied)
            })
        t.append(test("all-ingress-deny", [Policies.denyAllIngress], [Scenarios.podToPod(), Scenarios.podToCIDR]) { (a: Action) -> Expectation in
                a.destination.kind == .world ? .success : .ingress(.policyDenied)
            })
        t.append(test("all-ingress-deny-from-outside", [Policies.denyAllIngress], [Scenarios.fromCIDRToPod], unsafe: true,
                 fromOutside: true) { (_: Action) -> Expectation in .ingress(.policyDenied) })
        t.append(test("all-egress-deny", [Policies.denyAllEgress], [Scenarios.podToPod()]) { (_: Action) -> Expectation in .egress(.policyDenied) })
        t.append(test("all-entities-deny", [Policies.denyAllEntities], [Scenarios.podToPod(), Scenarios.podToCIDR]) { (_: Action) -> Expectation in .egress(.denylisted) })
        t.append(test("cluster-entity", [Policies.allowClusterEntity], [Scenarios.podToPod(destination: "name=echo-same-node")]))
        var clusterEntityMulti = test("cluster-entity-multi-cluster", [Policies.allowClusterEntity],
                                      [Scenarios.podToPod(destination: "name=echo-other-node")]) { (_: Action) -> Expectation in
            // The cluster entity is the local cluster: the other cluster's echo is no part of it (egress default deny).
            .egress(.policyDenied)
        }
        clusterEntityMulti.multiClusterOnly = true
        t.append(clusterEntityMulti)
        t.append(test("host-entity-egress", [Policies.allowHostEntityEgress], [Scenarios.podToHost]))
        t.append(test("host-entity-ingress", [Policies.allowHostEntityIngress], [Scenarios.hostToPod]))
        t.append(test("echo-ingress", [Policies.echoIngressFromOtherClient], [Scenarios.podToPod()]) { (a: Action) -> Expectation in
                a.destination.backend?.has("kind=echo") == true && !a.source.has("other=client") ? .ingress(.policyDenied) : .success
            })
        t.append(test("client-ingress-icmp", [Policies.clientIngressFromClient2ICMP], [Scenarios.clientToClient]) { (a: Action) -> Expectation in
                a.source.has("other=client") ? .success : .ingress(.policyDenied)
            })
        t.append(test("client-egress", [Policies.clientEgressToEcho], [Scenarios.podToPod()]))
        t.append(test("client-egress-expression", [Policies.clientEgressToEchoExpression], [Scenarios.podToPod()]))
        t.append(test("client-egress-expression-port-range",
                 [Policies.portRange(Policies.clientEgressToEchoExpression, from: "8080", start: "4196", end: 8191)], [Scenarios.podToPod()]))
        t.append(test("client-with-service-account-egress-to-echo", [Policies.clientWithServiceAccountEgressToEcho],
                 [Scenarios.podToPod(source: "kind=client")]))
        t.append(test("client-with-service-account-egress-to-echo-port-range",
                 [Policies.portRange(Policies.clientWithServiceAccountEgressToEcho, from: "8080", start: "4096", end: 8191)],
                 [Scenarios.podToPod(source: "kind=client")]))
        t.append(test("client-egress-to-echo-service-account", [Policies.clientEgressToEchoServiceAccount],
                 [Scenarios.podToPod(source: "kind=client")]) { (a: Action) -> Expectation in
                a.destination.backend?.has("name=echo-same-node") == true ? .success : .egress(.policyDenied)
            })
        t.append(test("client-egress-to-echo-service-account-port-range",
                 [Policies.portRange(Policies.clientEgressToEchoServiceAccount, from: "8080", start: "4096", end: 8191)],
                 [Scenarios.podToPod(source: "kind=client")]) { (a: Action) -> Expectation in
                a.destination.backend?.has("name=echo-same-node") == true ? .success : .egress(.policyDenied)
            })
        t.append(test("to-entities-world", [Policies.clientEgressToEntitiesWorld], [Scenarios.podToWorld]) { (a: Action) -> Expectation in
                a.destination.port == Defaults.worldPort ? .success : .egress(.policyDenied)
            })
        t.append(test("to-entities-world-port-range", [Policies.portRange(Policies.clientEgressToEntitiesWorld, from: "80", start: "64", end: 127)],
                 [Scenarios.podToWorld]) { (a: Action) -> Expectation in
                a.destination.port == Defaults.worldPort ? .success : .egress(.policyDenied)
            })
        t.append(test("to-cidr-external", [Policies.clientEgressToCIDRExternal], [Scenarios.podToCIDR]) { (a: Action) -> Expectation in
                a.destination.isExternalOther ? .egress(.policyDenied) : .success
            })
        t.append(test("from-cidr-host-netns", [Policies.echoIngressFromCIDR], [Scenarios.fromCIDRToPod], unsafe: true, fromOutside: true))
        t.append(test("echo-ingress-from-other-client-deny", allowAll + [Policies.echoIngressFromOtherClientDeny],
                 podToPodByName + [Scenarios.clientToClient]) { (a: Action) -> Expectation in
                a.source.has("other=client") && a.destination.backend?.has("kind=echo") == true ? .ingress(.denylisted) : .success
            })
        t.append(test("client-ingress-from-other-client-icmp-deny", allowAll + [Policies.clientIngressFromOtherClientICMPDeny],
                 [Scenarios.podToPod(), Scenarios.clientToClient]) { (a: Action) -> Expectation in
                a.source.has("other=client") && a.destination.backend?.has("kind=client") == true ? .ingress(.denylisted) : .success
            })
        t.append(test("client-egress-to-echo-deny", allowAll + [Policies.clientEgressToEchoDeny], [Scenarios.clientToClient, Scenarios.podToPod()]) { (a: Action) -> Expectation in
                a.source.has("kind=client") && a.destination.backend?.has("kind=echo") == true && a.destination.port == Defaults.echoPort
                    ? .egress(.denylisted) : .success
            })
        t.append(test("client-egress-to-echo-deny-port-range",
                 allowAll + [Policies.portRange(Policies.clientEgressToEchoDeny, from: "8080", start: "4096", end: 8191)],
                 [Scenarios.clientToClient, Scenarios.podToPod()]) { (a: Action) -> Expectation in
                a.source.has("kind=client") && a.destination.backend?.has("kind=echo") == true && a.destination.port == Defaults.echoPort
                    ? .egress(.denylisted) : .success
            })
        t.append(test("client-ingress-to-echo-named-port-deny", allowAll + [Policies.clientIngressToEchoNamedPortDeny], podToPodByName) { (a: Action) -> Expectation in
                a.destination.backend?.has("kind=echo") == true && a.source.has("name=client") ? .ingress(.denylisted) : .success
            })
        t.append(test("client-egress-to-echo-expression-deny", allowAll + [Policies.clientEgressToEchoExpressionDeny], podToPodByName,
                 expect: echoFromClient))
        t.append(test("client-egress-to-echo-expression-deny-port-range",
                 allowAll + [Policies.portRange(Policies.clientEgressToEchoExpressionDeny, from: "8080", start: "4096", end: 8191)],
                 podToPodByName, expect: echoFromClient))
        t.append(test("client-with-service-account-egress-to-echo-deny", allowAll + [Policies.clientWithServiceAccountEgressToEchoDeny],
                 podToPodByName, expect: echoFromClient))
        t.append(test("client-with-service-account-egress-to-echo-deny-port-range",
                 allowAll + [Policies.portRange(Policies.clientWithServiceAccountEgressToEchoDeny, from: "8080", start: "4096", end: 8191)],
                 podToPodByName, expect: echoFromClient))
        t.append(test("client-egress-to-echo-service-account-deny", allowAll + [Policies.clientEgressToEchoServiceAccountDeny],
                 [Scenarios.podToPod(source: "name=client")]) { (a: Action) -> Expectation in
                a.destination.backend?.has("name=echo-same-node") == true ? .egress(.denylisted) : .success
            })
        t.append(test("client-egress-to-echo-service-account-deny-port-range",
                 allowAll + [Policies.portRange(Policies.clientEgressToEchoServiceAccountDeny, from: "8080", start: "4096", end: 8191)],
                 [Scenarios.podToPod(source: "name=client")]) { (a: Action) -> Expectation in
                a.destination.backend?.has("name=echo-same-node") == true ? .egress(.denylisted) : .success
            })
        t.append(test("client-egress-to-cidr-deny", [Policies.allowAllEgress, Policies.clientEgressToCIDRExternalDeny], [Scenarios.podToCIDR]) { (a: Action) -> Expectation in
                a.destination.isExternalOther ? .egress(.denylisted) : .success
            })
        t.append(test("client-egress-to-cidrgroup-deny", [Policies.allowAllEgress, Policies.clientEgressToCIDRGroupDeny], [Scenarios.podToCIDR]) { (a: Action) -> Expectation in
                a.destination.isExternalOther ? .egress(.denylisted) : .success
            })
        t.append(test("client-egress-to-cidrgroup-deny-by-label", [Policies.allowAllEgress, Policies.clientEgressToCIDRGroupDenyByLabel],
                 [Scenarios.podToCIDR]) { (a: Action) -> Expectation in
                a.destination.isExternalOther ? .egress(.denylisted) : .success
            })
        t.append(test("client-egress-to-cidr-deny-default", [Policies.clientEgressToCIDRExternalDeny], [Scenarios.podToCIDR]) { (a: Action) -> Expectation in
                a.destination.isExternalOther ? .egress(.denylisted) : .egress(.policyDenied)
            })
        t.append(test("north-south-loadbalancing", [], [Scenarios.outsideToNodePort], fromOutside: true))
        var podEncryption = ConnectivityTest(name: "pod-to-pod-encryption", check: EncryptionChecks.podToPod)
        podEncryption.requirement = EncryptionChecks.needsPodEncryption
        t.append(podEncryption)
        var nodeEncryption = ConnectivityTest(name: "node-to-node-encryption", check: EncryptionChecks.nodeToNode)
        nodeEncryption.requirement = EncryptionChecks.needsNodeEncryption
        t.append(nodeEncryption)
        t.append(ConnectivityTest(name: "no-unexpected-packet-drops", check: Checks.noUnexpectedPacketDrops))
        t.append(ConnectivityTest(name: "check-log-errors", check: Checks.logErrors))
        return t.map(multiCluster)
    }

    /// Multi-cluster mode (`--multi-cluster`): clients and echo-same-node in cluster1, echo-other-node in cluster2
    /// behind a global service. What does not run there, and why.
    /// A test whose scenarios all are skipped there is skipped with the first one's reason.
    static let notInMultiCluster: [String: String] = [:]
    static let worldNotInMultiCluster = "multi-cluster mode: the world and the node without Cilium (the sandbox's outside host) are the single-cluster run's"
    static let scenariosNotInMultiCluster: [String: String] = [
        "pod-to-world": worldNotInMultiCluster,
        "pod-to-cidr": worldNotInMultiCluster,
        "from-cidr-to-pod": worldNotInMultiCluster,
        "outside-to-nodeport": worldNotInMultiCluster,
        "pod-to-remote-nodeport": "multi-cluster mode: the other cluster serves only the global service (echo-other-node), not echo-same-node's NodePort",
    ]

    /// `--list`: each test with the scenarios it runs in this mode; then what the mode skips, and why.
    public static func listing(multiCluster: Bool) -> String {
        var out = "", skipped = ""
        for t in tests {
            if let why = t.modeSkip(multiCluster: multiCluster) {
                skipped += "  \(t.name) (\(why))\n"
                continue
            }
            let runs = t.scenarios.filter { !multiCluster || $0.notInMultiCluster == nil }.map(\.name)
            let notRun = t.scenarios.filter { multiCluster && $0.notInMultiCluster != nil }.map(\.name)
            out += "\(t.name)\(t.unsafe ? " (unsafe)" : "")\(runs.isEmpty ? "" : ": " + runs.joined(separator: ", "))"
            out += notRun.isEmpty ? "\n" : " (skipped here: \(notRun.joined(separator: ", ")))\n"
        }
        if !skipped.isEmpty { out += "Skipped in \(multiCluster ? "multi-cluster" : "single-cluster") mode:\n" + skipped }
        return out
    }

    static func multiCluster(_ test: ConnectivityTest) -> ConnectivityTest {
        var t = test
        if let why = notInMultiCluster[t.name] { t.notInMultiCluster = why }
        t.scenarios = t.scenarios.map { s in
            var s = s
            if let why = scenariosNotInMultiCluster[s.name] { s.notInMultiCluster = why }
            return s
        }
        // A test left with no scenario to run has nothing to show there.
        if t.notInMultiCluster == nil, t.check == nil, !t.scenarios.isEmpty, t.scenarios.allSatisfy({ $0.notInMultiCluster != nil }) {
            t.notInMultiCluster = t.scenarios[0].notInMultiCluster
        }
        return t
    }
}
