import Foundation

/// Upstream's connectivity-test policies in their current form (selectors with `io.cilium.k8s.policy.cluster`, IPv4 and
/// IPv6 CIDRs), with upstream's template parameters filled in from the sandbox.
///
/// As upstream does when it applies them: the policy goes into the test namespace, and a selector naming the namespace
/// `cilium-test` names the test's namespace instead.
public enum Policies {
    public static let allowAllExceptWorld = """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata:
          name: allow-all-except-world
        spec:
          endpointSelector: {}
          egress:
          - toEntities: [host, remote-node, cluster, init, health, kube-apiserver]
          - toEndpoints:
            - matchExpressions:
              - { key: io.cilium.k8s.policy.cluster, operator: Exists }
          # DNS through a node-local cache on a link-local address.
          - toPorts:
            - ports:
              - { port: "53", protocol: UDP }
              - { port: "53", protocol: TCP }
            toEntities: [host, world]
          ingress:
          - fromEntities: [host, remote-node, cluster, init, health, kube-apiserver]
          - fromEndpoints:
            - matchExpressions:
              - { key: io.cilium.k8s.policy.cluster, operator: Exists }
        """

    public static let clientIngressFromClient2 = """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata:
          name: client-ingress-from-client2
        spec:
          endpointSelector:
            matchLabels:
              kind: client
          ingress:
          - fromEndpoints:
            - matchLabels:
                other: client
              matchExpressions:
              - { key: io.cilium.k8s.policy.cluster, operator: Exists }
        """

    public static let clientIngressFromClient2ICMP = """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata:
          name: client-ingress-from-client2-icmp
        spec:
          description: Let the other client reach a client with ICMP echo
          endpointSelector:
            matchLabels:
              kind: client
          ingress:
          - fromEndpoints:
            - matchLabels:
                other: client
              matchExpressions:
              - { key: io.cilium.k8s.policy.cluster, operator: Exists }
            icmps:
            - fields:
              - { family: IPv4, type: 8 }
              - { family: IPv6, type: 128 }
        """

    public static let echoIngressFromOtherClient = """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata:
          name: echo-ingress-from-other-client
        spec:
          description: Let the other client reach echo
          endpointSelector:
            matchLabels:
              kind: echo
          ingress:
          - fromEndpoints:
            - matchLabels:
                other: client
              matchExpressions:
              - { key: io.cilium.k8s.policy.cluster, operator: Exists }
        """

    /// Egress to DNS servers in kube-system (none in the sandbox; the rule is upstream's).
    static let dnsEgress = """
          - toPorts:
            - ports:
              - { port: "53", protocol: UDP }
              - { port: "53", protocol: TCP }
            toEndpoints:
            - matchExpressions:
              - { key: k8s-app, operator: In, values: [kube-dns, coredns, node-local-dns, nodelocaldns] }
              - { key: io.kubernetes.pod.namespace, operator: In, values: [kube-system] }
          - toPorts:
            - ports:
              - { port: "53", protocol: UDP }
              - { port: "53", protocol: TCP }
            toEntities: [host, world]
        """

    /// Echo pods of the test namespace in this cluster, on TCP 8080 (the peer of the client-egress policies).
    static let toEchoPodsOn8080 = """
          - toPorts:
            - ports:
              - { port: "8080", protocol: TCP }
            toEndpoints:
            - matchLabels:
                io.kubernetes.pod.namespace: cilium-test
                kind: echo
              matchExpressions:
              - { key: io.cilium.k8s.policy.cluster, operator: Exists }
        """

    public static let clientEgressToEcho = """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata:
          name: client-egress-to-echo
        spec:
          endpointSelector:
            matchLabels:
              kind: client
          egress:
        \(toEchoPodsOn8080)

        """ + dnsEgress

    public static let clientEgressToEchoExpression = """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata:
          name: client-egress-to-echo-expression
        spec:
          endpointSelector:
            matchExpressions:
            - { key: other, operator: Exists }
          egress:
        \(toEchoPodsOn8080)
        """

    public static let clientWithServiceAccountEgressToEcho = """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata:
          name: client-with-service-account-egress-to-echo
        spec:
          description: Let the client's service account reach echo
          endpointSelector:
            matchLabels:
              io.cilium.k8s.policy.serviceaccount: client
          egress:
        \(toEchoPodsOn8080)
        """

    public static let clientEgressToEchoServiceAccount = """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata:
          name: client-egress-to-echo-service-account
        spec:
          description: Let clients reach the endpoint of service account echo-same-node
          endpointSelector:
            matchLabels:
              kind: client
          egress:
          - toPorts:
            - ports:
              - { port: "8080", protocol: TCP }
            toEndpoints:
            - matchLabels:
                io.cilium.k8s.policy.serviceaccount: echo-same-node
        """

    public static let denyAllIngress = """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata:
          name: all-ingress-deny
        spec:
          endpointSelector: {}
          ingress:
          - {}
        """

    public static let denyAllEgress = """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata:
          name: all-egress-deny
        spec:
          endpointSelector: {}
          egress:
          - {}
        """

    public static let denyAllEntities = """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata:
          name: all-entities-deny
        spec:
          endpointSelector: {}
          egressDeny:
          - toEntities: [all]
        """

    public static let allowClusterEntity = """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata:
          name: entity-cluster
        spec:
          endpointSelector:
            matchLabels:
              kind: client
          egress:
          - toEntities: [cluster]
        """

    public static let allowHostEntityEgress = """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata:
          name: host-cluster-egress
        spec:
          endpointSelector:
            matchLabels: {}
          egress:
          - toEntities: [host, remote-node]
        """

    public static let allowHostEntityIngress = """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata:
          name: host-cluster-ingress
        spec:
          endpointSelector:
            matchLabels: {}
          ingress:
          - fromEntities: [host, remote-node]
        """

    public static let clientEgressToEntitiesWorld = """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata:
          name: client-egress-to-entities-world
        spec:
          endpointSelector:
            matchLabels:
              kind: client
          egress:
          - toEntities: [world]
            toPorts:
            - ports:
              - { port: "80", protocol: TCP }
          - toEndpoints:
            - matchExpressions:
              - { key: dns.operator.openshift.io/daemonset-dns, operator: Exists }
              - { key: io.kubernetes.pod.namespace, operator: In, values: [openshift-dns] }
            toPorts:
            - ports:
              - { port: "5353", protocol: UDP }
              - { port: "5353", protocol: TCP }

        """ + dnsEgress

    public static let clientEgressToCIDRExternal = """
        # Lets clients reach {{ExternalIPv4}} and {{ExternalIPv6}}, not {{ExternalOtherIPv4}} nor {{ExternalOtherIPv6}}.
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata:
          name: client-egress-to-cidr
        spec:
          endpointSelector:
            matchLabels:
              kind: client
          egress:
          - toCIDRSet:
            - cidr: "{{ExternalCIDRv4}}"
              except: ["{{ExternalOtherIPv4/32}}"]
            - cidr: "{{ExternalCIDRv6}}"
              except: ["{{ExternalOtherIPv6/128}}"]
        """

    public static let echoIngressFromCIDR = """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata:
          name: echo-ingress-from-cidr
        spec:
          description: Let echo pods take traffic from the nodes without Cilium
          endpointSelector:
            matchLabels:
              kind: echo
          ingress:
          - fromCIDR:
            - "{{NodeWithoutCiliumIP/32}}"
        """

    // MARK: the -deny family

    public static let allowAllEgress = """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata:
          name: allow-all-egress
        spec:
          endpointSelector: {}
          egress:
          - toEndpoints:
            - matchExpressions:
              - { key: io.cilium.k8s.policy.cluster, operator: Exists }
          - toCIDR:
            - 0.0.0.0/0
            - ::/0
        """

    public static let allowAllIngress = """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata:
          name: allow-all-ingress
        spec:
          endpointSelector: {}
          ingress:
          - fromEndpoints:
            - matchExpressions:
              - { key: io.cilium.k8s.policy.cluster, operator: Exists }
        """

    public static let echoIngressFromOtherClientDeny = """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata:
          name: echo-ingress-from-other-client-deny
        spec:
          description: Keep the other client away from echo
          endpointSelector:
            matchLabels:
              kind: echo
          ingressDeny:
          - fromEndpoints:
            - matchLabels:
                other: client
              matchExpressions:
              - { key: io.cilium.k8s.policy.cluster, operator: Exists }
        """

    public static let clientIngressFromOtherClientICMPDeny = """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata:
          name: client-ingress-from-other-client-icmp-deny
        spec:
          description: Keep the other client's ICMP echo away from clients
          endpointSelector:
            matchLabels:
              kind: client
          ingressDeny:
          - fromEndpoints:
            - matchLabels:
                other: client
              matchExpressions:
              - { key: io.cilium.k8s.policy.cluster, operator: Exists }
            icmps:
            - fields:
              - { family: IPv4, type: 8 }
              - { family: IPv6, type: 128 }
        """

    public static let clientEgressToEchoDeny = """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata:
          name: client-egress-to-echo-deny
        spec:
          endpointSelector:
            matchLabels:
              kind: client
          egressDeny:
        \(toEchoPodsOn8080)
        """

    public static let clientIngressToEchoNamedPortDeny = """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata:
          name: client-ingress-to-echo-named-port-deny
        spec:
          endpointSelector:
            matchLabels:
              kind: echo
          ingressDeny:
          - toPorts:
            - ports:
              - { port: http-8080, protocol: TCP }
            fromEndpoints:
            - matchLabels:
                io.kubernetes.pod.namespace: cilium-test
                name: client
              matchExpressions:
              - { key: io.cilium.k8s.policy.cluster, operator: Exists }
        """

    public static let clientEgressToEchoExpressionDeny = """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata:
          name: client-egress-to-echo-expression-deny
        spec:
          endpointSelector:
            matchExpressions:
            - { key: name, operator: In, values: [client] }
          egressDeny:
          - toPorts:
            - ports:
              - { port: "8080", protocol: TCP }
            toEndpoints:
            - matchExpressions:
              - { key: kind, operator: In, values: [echo] }
              - { key: io.cilium.k8s.policy.cluster, operator: Exists }
        """

    public static let clientWithServiceAccountEgressToEchoDeny = """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata:
          name: client-with-service-account-egress-to-echo-deny
        spec:
          description: Keep the client's service account away from echo
          endpointSelector:
            matchLabels:
              io.cilium.k8s.policy.serviceaccount: client
          egressDeny:
        \(toEchoPodsOn8080)
        """

    public static let clientEgressToEchoServiceAccountDeny = """
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata:
          name: client-egress-to-echo-service-account-deny
        spec:
          description: Keep the client away from the endpoint of service account echo-same-node
          endpointSelector:
            matchLabels:
              io.cilium.k8s.policy.serviceaccount: client
          egressDeny:
          - toPorts:
            - ports:
              - { port: "8080", protocol: TCP }
            toEndpoints:
            - matchLabels:
                io.cilium.k8s.policy.serviceaccount: echo-same-node
        """

    public static let clientEgressToCIDRExternalDeny = """
        # Denies {{ExternalOtherIPv4}} and {{ExternalOtherIPv6}}, not {{ExternalIPv4}} nor {{ExternalIPv6}}; without another
        # policy allowing them, {{ExternalIPv4}} and {{ExternalIPv6}} are dropped too (egress default deny).
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata:
          name: client-egress-to-cidr-deny
        spec:
          endpointSelector:
            matchLabels:
              kind: client
          egressDeny:
          - toCIDRSet:
            - cidr: "{{ExternalCIDRv4}}"
              except: ["{{ExternalIPv4/32}}"]
          - toCIDRSet:
            - cidr: "{{ExternalCIDRv6}}"
              except: ["{{ExternalIPv6/128}}"]
        """

    /// A CIDR group with the other external address (labelled, for cidrGroupSelector).
    static let externalOtherGroup = """
        apiVersion: cilium.io/v2
        kind: CiliumCIDRGroup
        metadata:
          name: cilium-test-external-other-cidr
          labels:
            kind: external-other
        spec:
          externalCIDRs:
          - "{{ExternalOtherIPv4/32}}"
          - "{{ExternalOtherIPv6/128}}"
        """

    /// A CIDR group with the other external address, and a policy denying it by the group's name.
    public static let clientEgressToCIDRGroupDeny = """
        \(externalOtherGroup)
        ---
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata:
          name: client-egress-to-cidrgroup-deny
        spec:
          endpointSelector:
            matchLabels:
              kind: client
          egressDeny:
          - toCIDRSet:
            - cidrGroupRef: cilium-test-external-other-cidr
        """

    /// The same, the group chosen by its labels.
    public static let clientEgressToCIDRGroupDenyByLabel = """
        \(externalOtherGroup)
        ---
        apiVersion: cilium.io/v2
        kind: CiliumNetworkPolicy
        metadata:
          name: client-egress-to-cidrgroup-deny-by-label
        spec:
          endpointSelector:
            matchLabels:
              kind: client
          egressDeny:
          - toCIDRSet:
            - cidrGroupSelector:
                matchLabels:
                  kind: external-other
        """

    /// Upstream's `-port-range` twin of a policy: its 8080 (or world's 80) becomes a range around it.
    static func portRange(_ manifest: String, from port: String, start: String, end: Int) -> String {
        manifest
            .replacingOccurrences(of: "{ port: \"\(port)\", protocol: TCP }", with: "{ port: \"\(start)\", endPort: \(end), protocol: TCP }")
            .replacingOccurrences(of: #"(?m)^  name: (\S+)$"#, with: "  name: $1-port-range", options: .regularExpression)
    }

    /// Fills upstream's template parameters in and puts the policy into the test namespace.
    static func render(_ manifest: String, _ d: Deployment) -> String {
        var text = manifest
        let values = [
            "ExternalCIDRv4": d.externalCIDR, "ExternalCIDRv6": "2606:4700:4700::/96",
            "ExternalIPv4": d.externalIP, "ExternalIPv6": "2606:4700:4700::1111",
            "ExternalOtherIPv4": d.externalOtherIP, "ExternalOtherIPv6": "2606:4700:4700::1001",
            "NodeWithoutCiliumIP": d.outside?.address ?? "192.0.2.1",
        ]
        for (key, value) in values {
            text = text.replacingOccurrences(of: "{{\(key)}}", with: value)
            text = text.replacingOccurrences(of: "{{\(key)/32}}", with: value + "/32")
            text = text.replacingOccurrences(of: "{{\(key)/128}}", with: value + "/128")
        }
        // Policies go into the test namespace; a selector naming `cilium-test` names it instead.
        text = text.replacingOccurrences(of: #"(?m)^(kind: CiliumNetworkPolicy\nmetadata:\n)"#,
                                         with: "$1  namespace: \(Defaults.namespace)\n", options: .regularExpression)
        text = text.replacingOccurrences(of: #"(?m)(io\.kubernetes\.pod\.namespace: )cilium-test$"#, with: "$1\(Defaults.namespace)",
                                         options: .regularExpression)
        return text
    }
}
