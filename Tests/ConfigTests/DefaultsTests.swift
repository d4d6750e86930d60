import Config
import Foundation
import Testing
import TestSupport

@Suite("Defaults and schema")
struct DefaultsTests {
    @Test("an empty file, a comment-only file and null sections give all defaults")
    func emptyIsDefaults() throws {
        #expect(try ConfigLoader.parse(yaml: "") == AgentConfig())
        #expect(try ConfigLoader.parse(yaml: "# nothing here\n\n") == AgentConfig())
        #expect(try ConfigLoader.parse(yaml: "hubble:\nmaglev: ~\ncluster: {}\n") == AgentConfig())
        #expect(try ConfigLoader.parse(yaml: "hubble:\n  enabled: null\n") == AgentConfig())
    }

    @Test("typed defaults")
    func typedDefaults() {
        let config = AgentConfig()
        #expect(config.cluster.name == "default")
        #expect(config.cluster.id == 0)
        #expect(config.agent.socketPath == "/var/run/cilium/cilium.sock")
        #expect(config.bpf.root == "/sys/fs/bpf/cilium")
        #expect(config.policyEnforcementMode == .default)
        #expect(config.kubeProxyReplacement == false)
        #expect(config.loadBalancer.algorithm == .random)
        #expect(config.loadBalancer.mode == .snat)
        #expect(config.maglev.tableSize == 16381)
        #expect(config.hubble.enabled)
        #expect(config.hubble.eventBufferCapacity == 4095)
        #expect(config.hubble.metrics.port == 9965)
        #expect(config.prometheus.port == 9962)
        #expect(config.ipam.mode == .clusterPool)
        #expect(config.ipam.operator.clusterPoolIPv4PodCIDRList == ["10.0.0.0/8"])
        #expect(config.ipam.operator.clusterPoolIPv4MaskSize == 24)
        #expect(config.routingMode == .tunnel)
        #expect(config.tunnelProtocol == .vxlan)
        #expect(config.devices.isEmpty)
    }

    @Test("every schema key reads back its schema default from AgentConfig()")
    func schemaDefaultsMatchStruct() throws {
        let config = AgentConfig()
        for key in schema.keys {
            #expect(try config.value(forKey: key.path) == key.defaultValue, "\(key.path)")
        }
        #expect(config.flattened().map(\.key) == schema.keys.map(\.path))
        #expect(Set(schema.keys.map(\.path)).count == schema.keys.count)
    }

    @Test("every key can be set and read back, and each lands in its own field")
    func everyKeyRoundTrips() throws {
        var overrides: [String] = []
        var expected: [String: ConfigValue] = [:]
        for key in schema.keys {
            guard let value = nonDefaultValue(for: key) else { continue }
            overrides.append("\(key.path)=\(value)")
            expected[key.path] = value
        }
        #expect(expected.count >= schema.keys.count - 2)  // ipam.mode and tunnelProtocol have one value
        let config = try ConfigLoader.parse(yaml: "", overrides: overrides)
        for key in schema.keys {
            #expect(try config.value(forKey: key.path) == expected[key.path] ?? key.defaultValue, "\(key.path)")
        }
        #expect(config.hubble.metrics.enabled == ["one", "two"])
        #expect(config.loadBalancer.mode == .dsr)
        #expect(config.routingMode == .native)
    }

    @Test("config/values.yaml parses to exactly the defaults and lists every key")
    func valuesYAML() throws {
        let text = try String(contentsOfFile: valuesYAMLPath, encoding: .utf8)
        #expect(try ConfigLoader.parse(yaml: text, file: "values.yaml") == AgentConfig())
        #expect(try ConfigLoader.load(path: valuesYAMLPath) == AgentConfig())
        let lines = text.split(separator: "\n").map(String.init)
        for key in schema.keys {
            // Each key appears as "name: default", under a "# -- " doc comment.
            let leaf = key.components.last!
            let index = lines.firstIndex { $0.trimmingCharacters(in: .whitespaces).hasPrefix(leaf + ":")
                && $0.hasPrefix(String(repeating: "  ", count: key.components.count - 1) + leaf) }
            #expect(index != nil, "\(key.path) missing from values.yaml")
            if let index {
                #expect(lines[index - 1].trimmingCharacters(in: .whitespaces).hasPrefix("# -- "), "\(key.path)")
            }
        }
        #expect(ConfigEditor.flattenedOrEmpty(text) == AgentConfig().flattened())
    }

    @Test("the rendered values.yaml parses to the defaults")
    func renderedValuesYAML() throws {
        #expect(try ConfigLoader.parse(yaml: schema.renderValuesYAML()) == AgentConfig())
    }

    @Test("enabled subsystems follow their flags")
    func enabledSubsystems() throws {
        #expect(AgentConfig().enabledSubsystems == ["networking", "policy", "hubble"])
        let all = try ConfigLoader.parse(yaml: """
            kubeProxyReplacement: true
            hostFirewall: {enabled: true}
            encryption: {enabled: true}
            clustermesh: {enabled: true}
            cluster: {id: 7}
            """)
        #expect(all.enabledSubsystems == [
            "networking", "policy", "loadbalancer", "hostfirewall", "encryption", "clustermesh", "hubble",
        ])
        let none = try ConfigLoader.parse(yaml: "policyEnforcementMode: never\nhubble: {enabled: false}\n")
        #expect(none.enabledSubsystems == ["networking"])
        #expect(enabledFlags.map(\.subsystem) == [
            "networking", "policy", "loadbalancer", "hostfirewall", "encryption", "clustermesh", "hubble",
        ])
        for flag in enabledFlags {
            if let key = flag.key { #expect(schema.key(key) != nil, "\(key)") }
        }
        #expect(enabledFlags.first { $0.subsystem == "networking" }?.key == nil)
        #expect(enabledFlags.first { $0.subsystem == "loadbalancer" }?.key == "kubeProxyReplacement")
    }

    @Test("AgentConfig survives a JSON round trip")
    func codable() throws {
        let config = try ConfigLoader.parse(yaml: "", overrides: ["hubble.metrics.enabled={dns,drop}", "maglev.tableSize=251"])
        let data = try JSONEncoder().encode(config)
        #expect(try JSONDecoder().decode(AgentConfig.self, from: data) == config)
    }

    @Test("a full file sets nested typed values")
    func fullFile() throws {
        let config = try ConfigLoader.parse(yaml: """
            cluster:
              name: edge-1
              id: 3
            routingMode: native
            autoDirectNodeRoutes: true
            ipv4NativeRoutingCIDR: 10.0.0.0/8
            loadBalancer:
              algorithm: maglev
              mode: hybrid
            maglev:
              tableSize: 65521
              hashSeed: AAECAwQFBgcICQoL
            hubble:
              metrics:
                enabled:
                  - dns
                  - drop
            ipam:
              operator:
                clusterPoolIPv4PodCIDRList: ["10.10.0.0/16", 10.20.0.0/16]
                clusterPoolIPv4MaskSize: 26
            devices: [eth0, eth1]
            """)
        #expect(config.cluster.name == "edge-1")
        #expect(config.cluster.id == 3)
        #expect(config.loadBalancer.algorithm == .maglev)
        #expect(config.loadBalancer.mode == .hybrid)
        #expect(config.maglev.tableSize == 65521)
        #expect(config.hubble.metrics.enabled == ["dns", "drop"])
        #expect(config.ipam.operator.clusterPoolIPv4PodCIDRList == ["10.10.0.0/16", "10.20.0.0/16"])
        #expect(config.ipam.operator.clusterPoolIPv4MaskSize == 26)
        #expect(config.devices == ["eth0", "eth1"])
        #expect(config.ipv4NativeRoutingCIDR == "10.0.0.0/8")
    }
}

extension ConfigEditor {
    static func flattenedOrEmpty(_ text: String) -> [ConfigSetting] {
        (try? flattened(text)) ?? []
    }
}
