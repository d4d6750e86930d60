import LinuxNet
import Manifests
import Testing
import TestSupport
@testable import LoadBalancer

/// The examples in the first part are upstream's, as the Kubernetes documentation shows them
/// (kubernetes.io/docs/concepts/services-networking/service and endpoint-slices), pasted verbatim.
@Suite struct ServiceManifestParserTests {
    // MARK: - Helpers

    private func parse(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> ServiceDocuments {
        do {
            return try ServiceManifestParser.parse(text, file: "test.yaml")
        } catch {
            Issue.record("unexpected error: \(error)", sourceLocation: sourceLocation)
            return ServiceDocuments()
        }
    }

    /// The single Service in `text` (and no EndpointSlice).
    private func service(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> ServiceManifest? {
        let documents = parse(text, sourceLocation: sourceLocation)
        guard documents.services.count == 1, documents.slices.isEmpty, let service = documents.services.first else {
            Issue.record("expected one Service, got \(documents)", sourceLocation: sourceLocation)
            return nil
        }
        return service
    }

    /// The single EndpointSlice in `text` (and no Service).
    private func slice(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> EndpointSliceManifest? {
        let documents = parse(text, sourceLocation: sourceLocation)
        guard documents.slices.count == 1, documents.services.isEmpty, let slice = documents.slices.first else {
            Issue.record("expected one EndpointSlice, got \(documents)", sourceLocation: sourceLocation)
            return nil
        }
        return slice
    }

    private func failure(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> ServiceManifestError {
        manifestError({ () throws(ServiceManifestError) -> Any in try ServiceManifestParser.parse(text, file: "test.yaml") }, sourceLocation: sourceLocation)
    }

    /// Expects an error at `line`:`column` whose problem contains every fragment.
    private func expectFailure(_ text: String, at line: Int, _ column: Int, _ fragments: String...,
                               sourceLocation: SourceLocation = #_sourceLocation) {
        expectManifestError({ () throws(ServiceManifestError) -> Any in try ServiceManifestParser.parse(text, file: "test.yaml") }, at: line, column, fragments, sourceLocation: sourceLocation)
    }

    // MARK: - Upstream Service examples that parse

    @Test func definingAService() {
        // service.md, "Defining a Service"
        guard let service = service("""
            apiVersion: v1
            kind: Service
            metadata:
              name: my-service
            spec:
              selector:
                app.kubernetes.io/name: MyApp
              ports:
                - protocol: TCP
                  port: 80
                  targetPort: 9376
            """) else { return }
        #expect(service == ServiceManifest(name: "my-service", ports: [
            ServicePortSpec(port: 80, proto: .tcp, targetPort: .number(9376)),
        ], selector: ["app.kubernetes.io/name": "MyApp"]))
        #expect(service.namespace == "default")
        #expect(service.qualifiedName == "default/my-service")
        #expect(service.type == .clusterIP)
        #expect(service.clusterIP == nil)
        #expect(service.affinityTimeout == nil)
        #expect(service.externalTrafficPolicy == .cluster && service.internalTrafficPolicy == .cluster)
    }

    @Test func namedTargetPortNextToItsPod() {
        // service.md, "Port definitions": a Pod and a Service in one file; the Pod is not ours.
        guard let service = service("""
            apiVersion: v1
            kind: Pod
            metadata:
              name: nginx
              labels:
                app.kubernetes.io/name: proxy
            spec:
              containers:
              - name: nginx
                image: nginx:stable
                ports:
                  - containerPort: 80
                    name: http-web-svc

            ---
            apiVersion: v1
            kind: Service
            metadata:
              name: nginx-service
            spec:
              selector:
                app.kubernetes.io/name: proxy
              ports:
              - name: name-of-service-port
                protocol: TCP
                port: 80
                targetPort: http-web-svc
            """) else { return }
        #expect(service.name == "nginx-service")
        #expect(service.ports == [ServicePortSpec(name: "name-of-service-port", port: 80, targetPort: .name("http-web-svc"))])
        #expect(service.selector == ["app.kubernetes.io/name": "proxy"])
    }

    @Test func serviceWithoutSelectorAndItsEndpointSlice() {
        // service.md, "Services without selectors": the Service, then the EndpointSlice given for it.
        let documents = parse("""
            apiVersion: v1
            kind: Service
            metadata:
              name: my-service
            spec:
              ports:
                - protocol: TCP
                  port: 80
                  targetPort: 9376
            ---
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata:
              name: my-service-1 # by convention, use the name of the Service
                                 # as a prefix for the name of the EndpointSlice
              labels:
                # You should set the "kubernetes.io/service-name" label.
                # Set its value to match the name of the Service
                kubernetes.io/service-name: my-service
            addressType: IPv4
            ports:
              - name: '' # empty because port 9376 is not assigned as a well-known
                         # port (by IANA)
                appProtocol: http
                protocol: TCP
                port: 9376
            endpoints:
              - addresses:
                  - "10.4.5.6"
              - addresses:
                  - "10.1.2.3"
            """)
        #expect(documents.services == [ServiceManifest(name: "my-service", ports: [
            ServicePortSpec(port: 80, targetPort: .number(9376)),
        ])])
        #expect(documents.services.first?.selector == nil)
        #expect(documents.slices == [EndpointSliceManifest(
            name: "my-service-1", serviceName: "my-service",
            ports: [EndpointSliceManifest.Port(port: 9376)],
            endpoints: [EndpointSliceManifest.Endpoint(addresses: ["10.4.5.6"]),
                        EndpointSliceManifest.Endpoint(addresses: ["10.1.2.3"])])])
        let endpoint = documents.slices.first?.endpoints.first
        #expect(endpoint?.ready == true && endpoint?.serving == true && endpoint?.terminating == false)
    }

    @Test func multiPortService() {
        // service.md, "Multi-port Services"
        guard let service = service("""
            apiVersion: v1
            kind: Service
            metadata:
              name: my-service
            spec:
              selector:
                app.kubernetes.io/name: MyApp
              ports:
                - name: http
                  protocol: TCP
                  port: 80
                  targetPort: 9376
                - name: https
                  protocol: TCP
                  port: 443
                  targetPort: 9377
            """) else { return }
        #expect(service.ports == [
            ServicePortSpec(name: "http", port: 80, targetPort: .number(9376)),
            ServicePortSpec(name: "https", port: 443, targetPort: .number(9377)),
        ])
    }

    @Test func nodePortService() {
        // service.md, "Choosing your own port"
        guard let service = service("""
            apiVersion: v1
            kind: Service
            metadata:
              name: my-service
            spec:
              type: NodePort
              selector:
                app.kubernetes.io/name: MyApp
              ports:
                - port: 80
                  # By default and for convenience, the `targetPort` is set to
                  # the same value as the `port` field.
                  targetPort: 80
                  # Optional field
                  # By default and for convenience, the Kubernetes control plane
                  # will allocate a port from a range (default: 30000-32767)
                  nodePort: 30007
            """) else { return }
        #expect(service.type == .nodePort)
        #expect(service.ports == [ServicePortSpec(port: 80, targetPort: .number(80), nodePort: 30007)])
    }

    @Test func loadBalancerServiceWithStatus() {
        // service.md, "type: LoadBalancer"
        guard let service = service("""
            apiVersion: v1
            kind: Service
            metadata:
              name: my-service
            spec:
              selector:
                app.kubernetes.io/name: MyApp
              ports:
                - protocol: TCP
                  port: 80
                  targetPort: 9376
              clusterIP: 10.0.171.239
              type: LoadBalancer
            status:
              loadBalancer:
                ingress:
                - ip: 192.0.2.127
            """) else { return }
        #expect(service.type == .loadBalancer)
        #expect(service.clusterIP == "10.0.171.239")
        #expect(service.loadBalancerIPs == ["192.0.2.127"])
        #expect(service.ports == [ServicePortSpec(port: 80, targetPort: .number(9376))])
    }

    @Test func externalIPs() {
        // service.md, "External IPs"
        guard let service = service("""
            apiVersion: v1
            kind: Service
            metadata:
              name: my-service
            spec:
              selector:
                app.kubernetes.io/name: MyApp
              ports:
                - name: http
                  protocol: TCP
                  port: 80
                  targetPort: 49152
              externalIPs:
                - 198.51.100.32
            """) else { return }
        #expect(service.externalIPs == ["198.51.100.32"])
        #expect(service.type == .clusterIP)
        #expect(service.ports == [ServicePortSpec(name: "http", port: 80, targetPort: .number(49152))])
    }

    @Test func externalNameIsNotSupported() {
        // service.md, "type: ExternalName"
        expectFailure("""
            apiVersion: v1
            kind: Service
            metadata:
              name: my-service
              namespace: prod
            spec:
              type: ExternalName
              externalName: my.database.example.com
            """, at: 7, 9, "spec.type: ExternalName is not supported", "EndpointSlice")
    }

    @Test func sessionAffinity() {
        // sessionAffinityConfig.clientIP.timeoutSeconds: >0 && <=86400, default 10800 (ServiceSpec reference).
        guard let configured = service("""
            apiVersion: v1
            kind: Service
            metadata:
              name: webapp
            spec:
              sessionAffinity: ClientIP
              sessionAffinityConfig:
                clientIP:
                  timeoutSeconds: 300
              ports:
              - protocol: TCP
                port: 8080
                targetPort: 8080
              selector:
                app: webapp
            """) else { return }
        #expect(configured.affinityTimeout == 300)

        guard let defaulted = service("""
            apiVersion: v1
            kind: Service
            metadata: {name: webapp}
            spec:
              sessionAffinity: ClientIP
              ports: [{port: 8080}]
            """) else { return }
        #expect(defaulted.affinityTimeout == 10800)

        guard let none = service("""
            apiVersion: v1
            kind: Service
            metadata: {name: webapp}
            spec:
              sessionAffinity: None
              ports: [{port: 8080}]
            """) else { return }
        #expect(none.affinityTimeout == nil)
    }

    // MARK: - Upstream EndpointSlice example

    @Test func endpointSliceExample() {
        // endpoint-slices.md, "EndpointSlice API"
        guard let slice = slice("""
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata:
              name: example-abc
              labels:
                kubernetes.io/service-name: example
            addressType: IPv4
            ports:
              - name: http
                protocol: TCP
                port: 80
            endpoints:
              - addresses:
                  - "10.1.2.3"
                conditions:
                  ready: true
                hostname: pod-1
                nodeName: node-1
                zone: us-west2-a
            """) else { return }
        #expect(slice == EndpointSliceManifest(
            name: "example-abc", serviceName: "example",
            ports: [EndpointSliceManifest.Port(name: "http", port: 80, proto: .tcp)],
            endpoints: [EndpointSliceManifest.Endpoint(addresses: ["10.1.2.3"], ready: true, nodeName: "node-1")]))
    }

    @Test func endpointSliceV1beta1ExampleNamesTheRemovedVersion() {
        // The same page's older (v1beta1) example: that API version was removed in Kubernetes 1.25.
        expectFailure("""
            apiVersion: discovery.k8s.io/v1beta1
            kind: EndpointSlice
            metadata:
              name: example-abc
              labels:
                kubernetes.io/service-name: example
            addressType: IPv4
            ports:
              - name: http
                protocol: TCP
                port: 80
            endpoints:
              - addresses:
                  - "10.1.2.3"
                conditions:
                  ready: true
                hostname: pod-1
                topology:
                  kubernetes.io/hostname: node-1
                  topology.kubernetes.io/zone: us-west2-a
            """, at: 1, 13, "apiVersion: discovery.k8s.io/v1beta1 is not an API version of kind EndpointSlice",
            "write apiVersion: discovery.k8s.io/v1", "removed in Kubernetes 1.25")
    }

    @Test func endpointConditions() {
        guard let slice = slice("""
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata:
              name: web-x1
              namespace: shop
              labels: {kubernetes.io/service-name: web}
            addressType: IPv4
            ports: [{name: http, port: 8080}, {name: dns, port: 53, protocol: UDP}]
            endpoints:
            - addresses: ["10.0.1.1"]
            - addresses: ["10.0.1.2"]
              conditions: {ready: false}
            - addresses: ["10.0.1.3"]
              conditions: {ready: false, serving: true, terminating: true}
              nodeName: worker-2
              targetRef: {kind: Pod, name: web-abc, namespace: shop}
              hints: {forZones: [{name: zone-a}]}
            """) else { return }
        #expect(slice.namespace == "shop")
        #expect(slice.ports == [EndpointSliceManifest.Port(name: "http", port: 8080),
                                EndpointSliceManifest.Port(name: "dns", port: 53, proto: .udp)])
        let states = slice.endpoints.map { [$0.ready, $0.serving, $0.terminating] }
        #expect(states == [[true, true, false], [false, false, false], [false, true, true]])
        #expect(slice.endpoints.map(\.nodeName) == [nil, nil, "worker-2"])
    }

    @Test func emptyEndpointSliceAsKubectlPrintsIt() {
        guard let slice = slice("""
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata:
              name: idle-9k2vd
              labels:
                kubernetes.io/service-name: idle
                endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io
              ownerReferences:
              - apiVersion: v1
                kind: Service
                name: idle
                uid: 0f6a7c4e-4f1c-4b3e-9a55-3c2b3d8f3a11
            addressType: IPv4
            endpoints: null
            ports:
            - name: ""
              port: 8080
              protocol: TCP
            """) else { return }
        #expect(slice.endpoints.isEmpty)
        #expect(slice.ports == [EndpointSliceManifest.Port(port: 8080)])
    }

    // MARK: - Files with several objects

    @Test func mixedFileSkipsOtherKinds() {
        let documents = parse("""
            apiVersion: apps/v1
            kind: Deployment
            metadata:
              name: web
            spec:
              replicas: 2
              selector: {matchLabels: {app: web}}
              template:
                metadata: {labels: {app: web}}
                spec: {containers: [{name: web, image: nginx, ports: [{containerPort: 8080}]}]}
            ---
            apiVersion: v1
            kind: Service
            metadata:
              name: web
              namespace: shop
            spec:
              selector:
                app: web
              ports:
              - name: http
                port: 80
                targetPort: 8080
            ---
            apiVersion: v1
            kind: Pod
            metadata:
              name: client
            spec:
              containers:
              - name: curl
                image: curlimages/curl
            ---
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata:
              name: web-1
              namespace: shop
              labels:
                kubernetes.io/service-name: web
            addressType: IPv4
            ports:
            - name: http
              port: 8080
            endpoints:
            - addresses: ["10.0.1.10"]
              nodeName: node-a
            ---
            apiVersion: cilium.io/v2
            kind: CiliumNetworkPolicy
            metadata:
              name: allow-web
            spec:
              endpointSelector:
                matchLabels:
                  app: web
              ingress:
              - fromEndpoints:
                - {}
            ---
            # a trailing empty document
            """)
        #expect(documents.services == [ServiceManifest(name: "web", namespace: "shop", ports: [
            ServicePortSpec(name: "http", port: 80, targetPort: .number(8080)),
        ], selector: ["app": "web"])])
        #expect(documents.slices == [EndpointSliceManifest(
            name: "web-1", namespace: "shop", serviceName: "web",
            ports: [EndpointSliceManifest.Port(name: "http", port: 8080)],
            endpoints: [EndpointSliceManifest.Endpoint(addresses: ["10.0.1.10"], nodeName: "node-a")])])
    }

    @Test func kubectlGetListOutput() {
        // `kubectl get svc,endpointslices -o yaml`: a kind: List, with everything the cluster adds.
        let documents = parse("""
            apiVersion: v1
            items:
            - apiVersion: v1
              kind: Service
              metadata:
                annotations:
                  kubectl.kubernetes.io/last-applied-configuration: |
                    {"apiVersion":"v1","kind":"Service","metadata":{"annotations":{},"name":"kube-dns"}}
                creationTimestamp: "2024-05-01T10:00:00Z"
                labels:
                  k8s-app: kube-dns
                  kubernetes.io/cluster-service: "true"
                name: kube-dns
                namespace: kube-system
                resourceVersion: "250"
                uid: 4c1e3a04-55f1-4bb8-a1f6-61e8d0d9b9e1
                managedFields:
                - apiVersion: v1
                  fieldsType: FieldsV1
                  manager: kubectl-client-side-apply
                  operation: Update
              spec:
                clusterIP: 10.96.0.10
                clusterIPs:
                - 10.96.0.10
                internalTrafficPolicy: Cluster
                ipFamilies:
                - IPv4
                ipFamilyPolicy: SingleStack
                ports:
                - name: dns
                  port: 53
                  protocol: UDP
                  targetPort: 53
                - name: dns-tcp
                  port: 53
                  protocol: TCP
                  targetPort: 53
                - name: metrics
                  port: 9153
                  protocol: TCP
                  targetPort: 9153
                selector:
                  k8s-app: kube-dns
                sessionAffinity: None
                type: ClusterIP
              status:
                loadBalancer: {}
            - apiVersion: v1
              kind: Service
              metadata:
                name: ingress
                namespace: edge
              spec:
                allocateLoadBalancerNodePorts: true
                clusterIP: 10.96.14.2
                clusterIPs: [10.96.14.2]
                externalTrafficPolicy: Local
                healthCheckNodePort: 31234
                ipFamilies: [IPv4, IPv6]
                ipFamilyPolicy: RequireDualStack
                loadBalancerClass: io.cilium/bgp-control-plane
                loadBalancerIP: 203.0.113.7
                loadBalancerSourceRanges: [198.51.100.0/24]
                ports:
                - {name: https, port: 443, protocol: TCP, targetPort: 8443, nodePort: 30443, appProtocol: https}
                publishNotReadyAddresses: false
                selector: {app: ingress}
                sessionAffinity: ClientIP
                sessionAffinityConfig: {clientIP: {timeoutSeconds: 600}}
                trafficDistribution: PreferClose
                type: LoadBalancer
              status:
                conditions: []
                loadBalancer:
                  ingress:
                  - ip: 203.0.113.7
                    ipMode: VIP
                  - ip: 2001:db8::7
                  - hostname: lb.example.com
                  - ip: 203.0.113.8
                    ports: [{port: 443, protocol: TCP}]
            - apiVersion: v1
              kind: ConfigMap
              metadata: {name: settings}
              data: {key: value}
            kind: List
            metadata:
              resourceVersion: ""
            """)
        #expect(documents.slices.isEmpty)
        guard documents.services.count == 2 else {
            Issue.record("expected two Services, got \(documents.services)")
            return
        }
        let dns = documents.services[0]
        #expect(dns.qualifiedName == "kube-system/kube-dns")
        #expect(dns.clusterIP == "10.96.0.10")
        #expect(dns.ports == [
            ServicePortSpec(name: "dns", port: 53, proto: .udp, targetPort: .number(53)),
            ServicePortSpec(name: "dns-tcp", port: 53, proto: .tcp, targetPort: .number(53)),
            ServicePortSpec(name: "metrics", port: 9153, proto: .tcp, targetPort: .number(9153)),
        ])
        #expect(dns.selector == ["k8s-app": "kube-dns"])
        #expect(dns.affinityTimeout == nil)
        #expect(dns.loadBalancerIPs.isEmpty)

        let ingress = documents.services[1]
        #expect(ingress == ServiceManifest(
            name: "ingress", namespace: "edge", type: .loadBalancer, clusterIP: "10.96.14.2",
            loadBalancerIPs: ["203.0.113.7", "203.0.113.8"],
            ports: [ServicePortSpec(name: "https", port: 443, targetPort: .number(8443), nodePort: 30443)],
            selector: ["app": "ingress"], affinityTimeout: 600, externalTrafficPolicy: .local))
    }

    @Test func typedListItemsWithoutKind() {
        // A ServiceList as the API server returns it: the items carry no apiVersion or kind.
        guard let service = service("""
            apiVersion: v1
            kind: ServiceList
            items:
            - metadata: {name: api}
              spec: {ports: [{port: 443, targetPort: 6443}]}
            """) else { return }
        #expect(service.name == "api")
        #expect(service.ports == [ServicePortSpec(port: 443, targetPort: .number(6443))])
    }

    @Test func jsonInput() {
        let documents = parse("""
            {
              "apiVersion": "v1",
              "kind": "List",
              "items": [
                {
                  "apiVersion": "v1",
                  "kind": "Service",
                  "metadata": {"name": "db", "namespace": "data"},
                  "spec": {
                    "type": "NodePort",
                    "clusterIP": "10.96.7.7",
                    "ports": [{"name": "pg", "port": 5432, "targetPort": "postgres", "nodePort": 30432}],
                    "selector": {"app": "db"}
                  }
                },
                {
                  "apiVersion": "discovery.k8s.io/v1",
                  "kind": "EndpointSlice",
                  "metadata": {"name": "db-1", "namespace": "data",
                               "labels": {"kubernetes.io/service-name": "db"}},
                  "addressType": "IPv4",
                  "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
                  "endpoints": [{"addresses": ["10.0.3.4"], "conditions": {"ready": true}}]
                }
              ]
            }
            """)
        #expect(documents.services == [ServiceManifest(
            name: "db", namespace: "data", type: .nodePort, clusterIP: "10.96.7.7",
            ports: [ServicePortSpec(name: "pg", port: 5432, targetPort: .name("postgres"), nodePort: 30432)],
            selector: ["app": "db"])])
        #expect(documents.slices == [EndpointSliceManifest(
            name: "db-1", namespace: "data", serviceName: "db",
            ports: [EndpointSliceManifest.Port(name: "pg", port: 5432)],
            endpoints: [EndpointSliceManifest.Endpoint(addresses: ["10.0.3.4"])])])
    }

    @Test func byteOrderMarkAndCRLF() {
        let documents = parse("\u{FEFF}apiVersion: v1\r\nkind: Service\r\nmetadata: {name: web}\r\n"
            + "spec:\r\n  ports: [{port: 80}]\r\n")
        #expect(documents.services == [ServiceManifest(name: "web", ports: [ServicePortSpec(port: 80)])])
    }

    @Test func otherGroupsServiceIsSkipped() {
        // A Knative Service shares the kind name, not the API.
        let documents = parse("""
            apiVersion: serving.knative.dev/v1
            kind: Service
            metadata:
              name: hello
            spec:
              template:
                spec:
                  containers:
                  - image: ghcr.io/knative/helloworld-go:latest
            """)
        #expect(documents == ServiceDocuments())
    }

    @Test func headlessAndDualStackClusterIPs() {
        guard let headless = service("""
            apiVersion: v1
            kind: Service
            metadata: {name: db}
            spec:
              clusterIP: None
              selector: {app: db}
            """) else { return }
        #expect(headless.clusterIP == "None")
        #expect(headless.ports.isEmpty)

        guard let dual = service("""
            apiVersion: v1
            kind: Service
            metadata: {name: web}
            spec:
              clusterIP: fd00:10:96::5
              clusterIPs: [fd00:10:96::5, 10.96.0.5]
              ipFamilies: [IPv6, IPv4]
              ipFamilyPolicy: PreferDualStack
              ports: [{port: 80}]
            """) else { return }
        #expect(dual.clusterIP == "10.96.0.5")

        guard let listed = service("""
            apiVersion: v1
            kind: Service
            metadata: {name: web}
            spec:
              clusterIP: ""
              clusterIPs: [10.96.0.6]
              type: ""
              ports: [{port: 80, protocol: "", targetPort: 0}]
            """) else { return }
        #expect(listed.clusterIP == "10.96.0.6")
        #expect(listed.type == .clusterIP)
        #expect(listed.ports == [ServicePortSpec(port: 80)])
    }

    // MARK: - Errors, with their positions

    @Test func unknownFieldSuggestsAndListsAllowed() {
        expectFailure("""
            apiVersion: v1
            kind: Service
            metadata:
              name: web
            spec:
              ports:
              - port: 80
                protcol: UDP
            """, at: 8, 5, "spec.ports[0]: unknown field \"protcol\"; did you mean protocol?",
            "Allowed here: name, protocol, appProtocol, port, targetPort, nodePort")
        expectFailure("""
            apiVersion: v1
            kind: Service
            metadata:
              name: web
            spec:
              ports: [{port: 80}]
              selectors: {app: web}
            """, at: 7, 3, "spec: unknown field \"selectors\"; did you mean selector?", "Allowed here: ports, selector")
        expectFailure("""
            apiVersion: v1
            kind: Service
            metadata:
              name: web
              namesapce: shop
            spec:
              ports: [{port: 80}]
            """, at: 5, 3, "metadata: unknown field \"namesapce\"; did you mean namespace?")
        expectFailure("""
            apiVersion: v1
            kind: Service
            metadata: {name: web}
            spec:
              ports: [{port: 80}]
              topologyKeys: ["kubernetes.io/hostname"]
            """, at: 6, 3, "topologyKeys was removed in Kubernetes 1.22")
    }

    @Test func badIPv4Addresses() {
        expectFailure("""
            apiVersion: v1
            kind: Service
            metadata:
              name: web
            spec:
              clusterIP: 10.96.0.300
              ports:
              - port: 80
            """, at: 6, 14, "spec.clusterIP: \"10.96.0.300\" is not a valid IPv4 address: 300 is out of range 0-255")
        expectFailure("""
            apiVersion: v1
            kind: Service
            metadata: {name: web}
            spec:
              ports: [{port: 80}]
              externalIPs:
              - 198.51.100.32
              - 198.51.100.032
            """, at: 8, 5, "spec.externalIPs[1]", "leading zero", "write 198.51.100.32")
        expectFailure("""
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata:
              name: web-1
              labels: {kubernetes.io/service-name: web}
            addressType: IPv4
            endpoints:
            - addresses: ["10.0.0.1/32"]
            """, at: 8, 15, "endpoints[0].addresses[0]", "is a CIDR, not an address")
        expectFailure("""
            apiVersion: v1
            kind: Service
            metadata: {name: web}
            spec:
              type: LoadBalancer
              ports: [{port: 80}]
            status:
              loadBalancer:
                ingress:
                - ip: 192.0.2.1.5
            """, at: 10, 11, "status.loadBalancer.ingress[0].ip", "not a valid IPv4 address")
    }

    @Test func badProtocol() {
        expectFailure("""
            apiVersion: v1
            kind: Service
            metadata:
              name: web
            spec:
              ports:
              - port: 80
                protocol: HTTP
            """, at: 8, 15, "spec.ports[0].protocol: protocol \"HTTP\" is not valid; expected TCP, UDP or SCTP",
            "appProtocol: http")
        expectFailure("""
            apiVersion: v1
            kind: Service
            metadata: {name: web}
            spec:
              ports: [{port: 53, protocol: udp}]
            """, at: 5, 32, "did you mean UDP?", "case-sensitive")
    }

    @Test func nodePortOnClusterIP() {
        expectFailure("""
            apiVersion: v1
            kind: Service
            metadata:
              name: web
            spec:
              selector:
                app: web
              ports:
              - port: 80
                nodePort: 30080
            """, at: 10, 5, "spec.ports[0].nodePort: a node port needs type: NodePort or LoadBalancer",
            "set spec.type: NodePort")
    }

    @Test func missingPort() {
        expectFailure("""
            apiVersion: v1
            kind: Service
            metadata:
              name: web
            spec:
              ports:
              - name: http
                targetPort: 8080
            """, at: 7, 5, "spec.ports[0]: port is required")
        expectFailure("""
            apiVersion: v1
            kind: Service
            metadata:
              name: web
            spec:
              selector: {app: web}
            """, at: 5, 1, "spec.ports: Service web needs at least one port")
    }

    @Test func twoUnnamedPorts() {
        expectFailure("""
            apiVersion: v1
            kind: Service
            metadata:
              name: web
            spec:
              ports:
              - port: 80
                targetPort: 8080
              - port: 443
                targetPort: 8443
            """, at: 7, 5, "spec.ports[0]: name is required when a Service has more than one port")
        expectFailure("""
            apiVersion: v1
            kind: Service
            metadata:
              name: web
            spec:
              ports:
              - name: http
                port: 80
              - name: http
                port: 8080
            """, at: 9, 11, "spec.ports[1].name: duplicate port name \"http\" (spec.ports[0] has it)")
        expectFailure("""
            apiVersion: v1
            kind: Service
            metadata:
              name: web
            spec:
              ports:
              - {name: a, port: 80}
              - {name: b, port: 80, protocol: TCP}
            """, at: 8, 21, "spec.ports[1].port: duplicate port 80/TCP (spec.ports[0] has it)")
    }

    @Test func ipv6EndpointSlice() {
        expectFailure("""
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata:
              name: web-v6
              labels:
                kubernetes.io/service-name: web
            addressType: IPv6
            ports:
            - port: 80
            endpoints:
            - addresses: ["2001:db8::10"]
            """, at: 7, 14, "addressType: IPv6 EndpointSlices are not supported", "IPv4 only")
        expectFailure("""
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata:
              name: web-1
              labels:
                kubernetes.io/service-name: web
            addressType: IPv4
            endpoints:
            - addresses:
              - "10.0.0.1"
              - "2001:db8::10"
            """, at: 11, 5, "endpoints[0].addresses[1]: 2001:db8::10 is an IPv6 address; this datapath is IPv4 only")
        expectFailure("""
            apiVersion: v1
            kind: Service
            metadata: {name: web}
            spec:
              ipFamilies: [IPv6]
              ports: [{port: 80}]
            """, at: 5, 15, "spec.ipFamilies: [IPv6] makes an IPv6-only Service")
    }

    @Test func missingServiceNameLabel() {
        expectFailure("""
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata:
              name: web-1
              labels:
                app: web
            addressType: IPv4
            endpoints: []
            """, at: 5, 3, "metadata.labels: the label kubernetes.io/service-name is missing",
            "names the Service")
        expectFailure("""
            apiVersion: discovery.k8s.io/v1
            kind: EndpointSlice
            metadata:
              name: web-1
            addressType: IPv4
            endpoints: []
            """, at: 3, 1, "the label kubernetes.io/service-name is missing")
    }

    @Test func legacyEndpointsKind() {
        expectFailure("""
            apiVersion: v1
            kind: Service
            metadata: {name: db}
            spec: {ports: [{port: 5432}]}
            ---
            apiVersion: v1
            kind: Endpoints
            metadata:
              name: db
            subsets:
            - addresses:
              - ip: 10.0.0.100
              ports:
              - port: 5432
            """, at: 7, 7, "kind: Endpoints (the legacy v1 API) is not supported; use EndpointSlice")
    }

    @Test func yamlSyntaxErrors() {
        // A key indented less than its siblings.
        expectFailure("""
            apiVersion: v1
            kind: Service
            metadata:
              name: web
            spec:
              ports:
                - port: 80
               targetPort: 8080
            """, at: 8, 4, "invalid YAML")
        // A tab in the indentation.
        expectFailure("apiVersion: v1\nkind: Service\nmetadata:\n\tname: web\n", at: 4, 1,
                      "invalid YAML", "indented with a tab")
        // An unclosed flow sequence in JSON.
        expectFailure("""
            {"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": "web"},
             "spec": {"ports": [{"port": 80}}
            }
            """, at: 3, 33, "invalid YAML")
    }

    @Test func duplicateKeys() {
        expectFailure("""
            apiVersion: v1
            kind: Service
            metadata:
              name: web
            spec:
              ports:
              - port: 80
                targetPort: 8080
                port: 81
            """, at: 9, 5, "duplicate key \"port\" (first set on line 7)")
        expectFailure("""
            {"apiVersion": "v1", "kind": "Service", "kind": "Service"}
            """, at: 1, 41, "duplicate key \"kind\"")
    }

    @Test func typeAndValueErrors() {
        // A quoted port is a string, which the API server does not take for an int32.
        expectFailure("""
            apiVersion: v1
            kind: Service
            metadata: {name: web}
            spec:
              ports:
              - port: "80"
            """, at: 6, 11, "spec.ports[0].port: expected a port number (1-65535), got the string \"80\"",
            "without quotes")
        expectFailure("""
            apiVersion: v1
            kind: Service
            metadata: {name: web}
            spec:
              ports: [{port: 70000}]
            """, at: 5, 18, "spec.ports[0].port: 70000 is out of range; a port number is 1-65535")
        expectFailure("""
            apiVersion: v1
            kind: Service
            metadata: {name: web}
            spec:
              ports: [{port: 080}]
            """, at: 5, 18, "spec.ports[0].port: 080 has a leading zero; write 80")
        expectFailure("""
            apiVersion: v1
            kind: Service
            metadata: {name: web}
            spec:
              ports: 80
            """, at: 5, 10, "spec.ports: expected a list of ports, got the number 80", "[{port: 80}]")
        expectFailure("""
            apiVersion: v1
            kind: Service
            metadata: {name: web}
            spec:
              ports: [{port: 80, targetPort: "8080"}]
            """, at: 5, 34, "targetPort: 8080")
        expectFailure("""
            apiVersion: v1
            kind: Service
            metadata: {name: web}
            spec:
              selector:
                version: 2
              ports: [{port: 80}]
            """, at: 6, 14, "spec.selector.version: expected a string value, got the number 2", "\"2\"")
        expectFailure("""
            apiVersion: v1
            kind: Service
            metadata: {name: Web_Server}
            spec:
              ports: [{port: 80}]
            """, at: 3, 18, "metadata.name: \"Web_Server\" is not a valid Service name")
        expectFailure("""
            apiVersion: v1
            kind: Service
            metadata: {name: web}
            spec:
              type: nodePort
              ports: [{port: 80}]
            """, at: 5, 9, "spec.type: \"nodePort\" is not a valid Service type; did you mean NodePort?")
    }

    @Test func affinityAndTrafficPolicyErrors() {
        expectFailure("""
            apiVersion: v1
            kind: Service
            metadata: {name: web}
            spec:
              sessionAffinity: ClientIP
              sessionAffinityConfig:
                clientIP:
                  timeoutSeconds: 86401
              ports: [{port: 80}]
            """, at: 8, 23, "spec.sessionAffinityConfig.clientIP.timeoutSeconds: 86401 is out of range", "1-86400")
        expectFailure("""
            apiVersion: v1
            kind: Service
            metadata: {name: web}
            spec:
              sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}
              ports: [{port: 80}]
            """, at: 5, 3, "must not be set when sessionAffinity is None")
        expectFailure("""
            apiVersion: v1
            kind: Service
            metadata: {name: web}
            spec:
              externalTrafficPolicy: Local
              ports: [{port: 80}]
            """, at: 5, 26, "spec.externalTrafficPolicy: Local applies to traffic from outside the cluster")
    }

    @Test func documentShapeErrors() {
        expectFailure("""
            - apiVersion: v1
              kind: Service
            """, at: 1, 1, "got a list", "---")
        expectFailure("""
            apiVersion: v1
            kind: Servce
            metadata: {name: web}
            """, at: 2, 7, "kind: Servce is not a Kubernetes kind; did you mean Service?")
        expectFailure("""
            apiVersion: v1
            kind: Service
            spec: {ports: [{port: 80}]}
            """, at: 1, 1, "metadata.name is required")
        expectFailure("""
            apiVersion: v1
            kind: List
            items:
            - apiVersion: v1
              kind: Service
              metadata: {name: a}
              spec: {ports: [{port: 80}]}
            - apiVersion: v1
              kind: Service
              metadata: {name: b}
              spec:
                ports:
                - port: 0
            """, at: 13, 13, "items[1].spec.ports[0].port: 0 is out of range")
    }

    @Test func errorDescriptionIsFileLineColumn() {
        let error = failure("apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80, protocol: ICMP}]}\n")
        #expect(error.description.hasPrefix("test.yaml:4:37: spec.ports[0].protocol: "), "\(error)")
    }
}
