import Datapath
import Foundation
import Testing
import TestSupport

/// `cilium connectivity test` against real sandboxes: the whole suite as CI runs it, and a broken datapath.
@Suite(.serialized) struct ConnectivityEndToEndTests {
    /// Every test on a temporary two-node sandbox the command makes and removes (unsafe ones included:
    /// the sandbox's outside host is the node without Cilium). The JUnit file says the same.
    @Test func wholeSuitePassesOnATemporarySandbox() throws {
        let junit = NSTemporaryDirectory() + "cct-\(getpid()).xml"
        defer { try? FileManager.default.removeItem(atPath: junit) }
        let before = Set((try? FileManager.default.contentsOfDirectory(atPath: "/run/cilium-sandbox")) ?? [])
        let (code, out) = try runCapturing([buildDirectory() + "/cilium", "connectivity", "test", "--include-unsafe-tests",
                                            "--junit-file", junit])
        print(out)
        #expect(code == 0)
        #expect(out.contains("✅ [cilium-test-1] All "), "no success line")
        #expect(out.contains("[=] [cilium-test-1] Test [no-policies] [1/"))
        // Every test runs here but those of a feature this sandbox leaves off (encryption) and multi-cluster mode's own.
        let skipped = out.split(separator: "\n").filter { $0.contains("Skipping test") }
        #expect(skipped.filter { $0.contains("(Feature encryption-") }.count == 2, "\(skipped)")
        #expect(skipped.filter { $0.contains("[cluster-entity-multi-cluster]") && $0.contains("multi-cluster mode only") }.count == 1, "\(skipped)")
        #expect(skipped.count == 3, "\(skipped)")
        #expect(out.contains("🧹 Removing sandbox cct-"))
        let after = Set((try? FileManager.default.contentsOfDirectory(atPath: "/run/cilium-sandbox")) ?? [])
        #expect(after.subtracting(before).isEmpty, "left behind: \(after.subtracting(before))")
        let xml = try String(contentsOfFile: junit, encoding: .utf8)
        #expect(xml.contains("<testcase name=\"no-policies\" classname=\"connectivity test\" status=\"passed\""))
        #expect(xml.contains("<testcase name=\"check-log-errors\" classname=\"connectivity test\" status=\"passed\""))
        #expect(!xml.contains("status=\"failed\""))
    }

    /// --multi-cluster on a temporary sandbox: two clusters of one node each, meshed; the cross-cluster tests pass
    /// (pod to pod and to the global service across clusters, policies by cluster, and cluster-entity-multi-cluster's
    /// drop of the client's egress to the other cluster), the world and outside-host ones are skipped with the reason.
    @Test func multiClusterModeOnATemporarySandbox() throws {
        let junit = NSTemporaryDirectory() + "cct-mc-\(getpid()).xml"
        defer { try? FileManager.default.removeItem(atPath: junit) }
        let before = Set((try? FileManager.default.contentsOfDirectory(atPath: "/run/cilium-sandbox")) ?? [])
        let start = ContinuousClock.now
        let (code, out) = try runCapturing([buildDirectory() + "/cilium", "connectivity", "test", "--multi-cluster", "--junit-file", junit])
        print(out)
        print("multi-cluster run: \(ContinuousClock.now - start)")
        #expect(code == 0)
        #expect(out.contains("(two clusters of one node each)"))
        #expect(out.contains("Deploying cilium-test-1/echo-other-node on node2"))
        #expect(!out.contains("Deploying cilium-test-1/client3"))
        #expect(out.contains("✅ [cilium-test-1] All "), "no success line")
        #expect(out.contains("[=] [cilium-test-1] Test [cluster-entity-multi-cluster] ["))
        let skipped = out.split(separator: "\n").filter { $0.contains("Skipping test") }
        #expect(skipped.allSatisfy { $0.contains("(skipped by condition: multi-cluster mode:") || $0.contains("(Feature encryption-") }, "\(skipped)")
        #expect(skipped.contains { $0.contains("[to-entities-world]") })
        #expect(out.contains("Skipping Scenario [no-policies/pod-to-world] (multi-cluster mode:"))
        #expect(out.contains("🧹 Removing sandbox cct-"))
        let after = Set((try? FileManager.default.contentsOfDirectory(atPath: "/run/cilium-sandbox")) ?? [])
        #expect(after.subtracting(before).isEmpty, "left behind: \(after.subtracting(before))")
        let xml = try String(contentsOfFile: junit, encoding: .utf8)
        for name in ["no-policies", "no-policies-extra", "allow-all-except-world", "client-egress", "client-egress-expression", "cluster-entity",
                     "cluster-entity-multi-cluster", "echo-ingress", "all-egress-deny", "no-unexpected-packet-drops", "check-log-errors"] {
            #expect(xml.contains("<testcase name=\"\(name)\" classname=\"connectivity test\" status=\"passed\""), "\(name)")
        }
        #expect(!xml.contains("status=\"failed\""))
    }

    /// With node1's policy slot emptied (the policy stage gone from its pipeline: the datapath fails open there), the
    /// tests that expect node1 to drop fail, name the actions, and the command exits 1; node2's drops still pass.
    @Test func anEmptiedPolicySlotFailsTheTestsThatNeedIt() throws {
        let name = "cb" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let sandbox = buildDirectory() + "/cilium-sandbox", cilium = buildDirectory() + "/cilium"
        defer { _ = try? runCapturing([sandbox, "down", "--name", name]) }
        let up = try runCapturing([sandbox, "up", "--name", name, "--nodes", "2", "--set", "kubeProxyReplacement=true"])
        try #require(up.0 == 0, "\(up.1)")
        let healthy = try runCapturing([cilium, "connectivity", "test", "--sandbox", name, "--test", "^client-ingress$"])
        #expect(healthy.0 == 0, "\(healthy.1)")
        #expect(healthy.1.contains("All 1 tests (6 actions) successful"), "\(healthy.1)")

        try ProgramArray(pinned: "/sys/fs/bpf/csbx-\(name)-node1/cilium_calls").clear(slot: 1)
        let broken = try runCapturing([cilium, "connectivity", "test", "--sandbox", name, "--test", "^client-ingress$", "-v"])
        print(broken.1)
        #expect(broken.0 == 1)
        #expect(broken.1.contains("❌ 1/1 tests failed"), "\(broken.1)")
        // client3 (node2) -> client (node1): node1 must drop at ingress and does not.
        #expect(broken.1.contains("client-ingress/client-to-client:ping-ipv4-"), "\(broken.1)")
        #expect(broken.1.contains("-> cilium-test-1/client ("), "\(broken.1)")
        #expect(broken.1.contains("expected no answer, got echo reply"), "\(broken.1)")
        #expect(broken.1.contains("Hubble on node1 has no DROPPED flow with reason POLICY_DENIED"), "\(broken.1)")
        #expect(broken.1.contains("the drop counters of node1 show no POLICY_DENIED drop"), "\(broken.1)")
        // The deployment stays for the next run; the sandbox is the caller's.
        #expect(FileManager.default.fileExists(atPath: "/run/cilium-sandbox/\(name)/state.json"))
    }
}
