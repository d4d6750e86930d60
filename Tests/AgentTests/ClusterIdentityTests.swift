import Foundation
@testable import Networking
import Testing
import TestSupport

/// Issue 19: a node's endpoints carry identities numbered in its cluster ID's range; another cluster.id (or name)
/// while it has endpoints is refused with the reason, and accepted once it has none.
@Suite struct ClusterIdentityTests {
    @Test func anotherClusterIDIsRefusedWhileEndpointsExist() throws {
        let dir = try TempDir("cluster-identity")
        try EndpointManager.checkClusterIdentity(stateDir: dir.path, name: "cluster1", id: 1)
        // No endpoints yet: a change is taken (and remembered).
        try EndpointManager.checkClusterIdentity(stateDir: dir.path, name: "cluster1", id: 3)
        let ep = Endpoint(id: 7, containerID: "c1", netns: "/run/netns/x", ifName: "eth0", hostIfName: "lxc1", hostIfIndex: 5,
                          address: "10.0.0.5", mac: "02:00:00:00:00:01", hostMac: "02:00:00:00:00:02", labels: ["k8s:app=a"],
                          identity: 3 << 16 | 1, podNamespace: "default", podName: "a")
        try JSONEncoder().encode([ep]).write(to: URL(fileURLWithPath: dir.path + "/endpoints.json"))
        #expect(throws: (any Error).self) { try EndpointManager.checkClusterIdentity(stateDir: dir.path, name: "cluster1", id: 4) }
        do {
            try EndpointManager.checkClusterIdentity(stateDir: dir.path, name: "cluster1", id: 4)
        } catch {
            #expect("\(error)".contains("cluster.id 4") && "\(error)".contains("cluster.id 3") && "\(error)".contains("1 endpoints")
                    && "\(error)".contains("Set cluster.id back to 3"), "\(error)")
        }
        // The same cluster again: fine.
        try EndpointManager.checkClusterIdentity(stateDir: dir.path, name: "cluster1", id: 3)
    }
}
