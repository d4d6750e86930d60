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
        return t
    }
}
