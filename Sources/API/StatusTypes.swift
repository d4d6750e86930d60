import Reconciler

/// One subsystem as `cilium status -o json` shows it.
public struct SubsystemStatus: Codable, Sendable, Equatable {
    public var enabled: Bool
    public var state: HealthState
    public var message: String
    /// The text after the subsystem's label in `cilium status`.
    public var summary: String
    /// Extra lines for `cilium status --verbose`.
    public var details: [String]
    /// Further top-level `cilium status` lines this subsystem owns, by label (e.g. "IPAM").
    public var lines: [String: String]

    public init(enabled: Bool, state: HealthState, message: String, summary: String, details: [String] = [],
                lines: [String: String] = [:]) {
        self.enabled = enabled
        self.state = state
        self.message = message
        self.summary = summary
        self.details = details
        self.lines = lines
    }
}

public struct ReconcilerStatus: Codable, Sendable, Equatable {
    public var name: String
    public var subsystem: String
    public var state: HealthState
    public var message: String
    public var objects: Int
    public var pending: Int
    public var errors: Int

    public init(name: String, subsystem: String, state: HealthState, message: String, objects: Int, pending: Int, errors: Int) {
        self.name = name
        self.subsystem = subsystem
        self.state = state
        self.message = message
        self.objects = objects
        self.pending = pending
        self.errors = errors
    }
}

/// GET /v1/status
public struct StatusResponse: Codable, Sendable {
    public var node: String
    public var cluster: String
    public var version: String
    public var pid: Int32
    public var uptimeSeconds: Double
    public var configFile: String
    public var bpfRoot: String
    /// Overall: ok, degraded or error.
    public var state: HealthState
    public var message: String
    public var subsystems: [String: SubsystemStatus]
    public var reconcilers: [ReconcilerStatus]
    /// The last refused reload, if the running config is not the file's.
    public var lastReloadError: String?
    public var reloads: Int

    public init(node: String, cluster: String, version: String, pid: Int32, uptimeSeconds: Double, configFile: String,
                bpfRoot: String, state: HealthState, message: String, subsystems: [String: SubsystemStatus],
                reconcilers: [ReconcilerStatus], lastReloadError: String?, reloads: Int) {
        self.node = node
        self.cluster = cluster
        self.version = version
        self.pid = pid
        self.uptimeSeconds = uptimeSeconds
        self.configFile = configFile
        self.bpfRoot = bpfRoot
        self.state = state
        self.message = message
        self.subsystems = subsystems
        self.reconcilers = reconcilers
        self.lastReloadError = lastReloadError
        self.reloads = reloads
    }
}

/// PUT /v1/config
public struct ConfigSetRequest: Codable, Sendable {
    public var settings: [String]  // "key=value"
    public init(settings: [String]) { self.settings = settings }
}

/// GET /v1/config
public struct ConfigResponse: Codable, Sendable {
    public var file: String
    public var values: [ConfigEntry]
    public init(file: String, values: [ConfigEntry]) {
        self.file = file
        self.values = values
    }
}

public struct ConfigEntry: Codable, Sendable, Equatable {
    public var key: String
    public var value: String
    public init(key: String, value: String) {
        self.key = key
        self.value = value
    }
}

public struct APIErrorBody: Codable, Sendable {
    public var error: String
}

public enum AgentVersion {
    public static let string = "0.1.0"
}
