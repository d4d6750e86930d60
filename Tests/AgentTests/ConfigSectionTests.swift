import API
@testable import Agent
import Config
import Testing
import TestSupport

/// Each subsystem sees only its own config section, and the host restarts it
/// exactly when that section changes. These tests walk every setting of the
/// schema, so a new setting needs a reader or a declared agent-wide meaning.
@Suite struct ConfigSectionTests {
    let subsystems = allSubsystems()

    /// The subsystems whose section changes when `key` alone changes.
    func readers(of key: ConfigKey) throws -> [String]? {
        guard let value = anyOtherValue(for: key) else { return nil }
        let base = AgentConfig()
        let changed = try base.replacing(key.path, with: value)
        #expect(try changed.value(forKey: key.path) == value, "\(key.path) did not change")
        return subsystems.filter { $0.sectionChanged(from: base, to: changed) }.map(\.name)
    }

    @Test func everySettingHasAReaderOrAnAgentWideMeaning() throws {
        let flags = Set(enabledFlags.flatMap(\.keys))
        var unread: [String] = []
        for key in schema.keys {
            guard let readers = try readers(of: key) else {
                // Only one value is allowed (ipam.mode): nothing can change.
                continue
            }
            if readers.isEmpty && agentSettings[key.path] == nil && !flags.contains(key.path) {
                unread.append(key.path)
            }
            if agentSettings[key.path] == .appliedByAgent {
                #expect(readers.isEmpty, "\(key.path) is applied by the agent but also read by \(readers)")
            }
        }
        #expect(unread.isEmpty, "settings no subsystem reads and the agent does not declare: \(unread)")
        for key in agentSettings.keys {
            #expect(schema.keys.contains { $0.path == key }, "\(key) is declared but not in the schema")
        }
    }

    @Test func settingsThatNameWhereTheAgentLivesAreRefusedLive() throws {
        for (path, meaning) in agentSettings {
            let key = try #require(schema.keys.first { $0.path == path })
            let new = try AgentConfig().replacing(path, with: try #require(anyOtherValue(for: key)))
            let plan = ReloadPlan(from: AgentConfig(), to: new, subsystems: subsystems)
            #expect(plan.changed == [path])
            if meaning == .needsAgentRestart {
                #expect(plan.refusal?.contains("restart the agent") == true, "\(path): \(plan)")
            } else {
                #expect(plan.refusal == nil && plan.restart.isEmpty, "\(path): \(plan)")
            }
        }
    }

    /// The keys that drifted from the hand-kept lists (issue 14, defect 3).
    @Test(arguments: [
        ("agent.resourceDirectory", ["networking", "loadbalancer", "policy"]),
        ("devices", ["networking", "loadbalancer", "hostfirewall", "encryption"]),
        // Cluster mesh routes to remote pod CIDRs as Networking does, and publishes in the cluster's etcd.
        ("routingMode", ["networking", "hubble", "clustermesh"]),
        ("etcd.endpoints", ["networking", "clustermesh"]),
        ("maglev.tableSize", ["loadbalancer"]),
        ("hubble.ui.port", ["hubble"]),
        ("policyAuditMode", ["policy"]),
    ])
    func aChangeRestartsExactlyItsReaders(key: String, expected: [String]) throws {
        let k = try #require(schema.keys.first { $0.path == key })
        #expect(Set(try #require(try readers(of: k))) == Set(expected))
        // With every subsystem on, a reload restarts exactly those (in start order).
        var on = AgentConfig()
        on.kubeProxyReplacement = true
        on.hostFirewall.enabled = true
        on.encryption.enabled = true
        on.clustermesh.enabled = true
        let plan = ReloadPlan(from: on, to: try on.replacing(key, with: try #require(anyOtherValue(for: k))), subsystems: subsystems)
        #expect(plan.refusal == nil)
        #expect(Set(plan.restart) == Set(expected))
    }

    @Test func aSubsystemTurnedOnOrOffIsNotAlsoRestarted() throws {
        var new = AgentConfig()
        new.kubeProxyReplacement = true
        new.devices = ["eth0"]
        let plan = ReloadPlan(from: AgentConfig(), to: new, subsystems: subsystems)
        #expect(!plan.restart.contains("loadbalancer"), "loadbalancer starts fresh; \(plan)")
        #expect(plan.restart.contains("networking"))
    }
}
