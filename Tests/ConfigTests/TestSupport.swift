import Config
import Foundation

/// The error `ConfigLoader.parse` throws for the text, or nil when it parses.
func parseError(_ yaml: String, overrides: [String] = []) -> ConfigError? {
    do {
        _ = try ConfigLoader.parse(yaml: yaml, file: "node.yaml", overrides: overrides)
        return nil
    } catch {
        return error
    }
}

/// `parseError(...)?.description`.
func message(_ yaml: String, overrides: [String] = []) -> String? {
    parseError(yaml, overrides: overrides)?.description
}

/// The error `ConfigEditor.set` throws, or nil.
func setError(_ key: String, _ value: String, in text: String) -> ConfigError? {
    do {
        _ = try ConfigEditor.set(key, to: value, in: text, file: "node.yaml")
        return nil
    } catch {
        return error
    }
}

/// The repository's config/values.yaml, found from this file's real (symlink-resolved) location.
var valuesYAMLPath: String {
    URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("config/values.yaml").path
}
